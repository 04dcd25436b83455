-- QR payments, as in the SQLite backend (0006_qr.sql): merchant-presented codes registered in
-- the trust log, payers' reports of fraudulent codes, wallet devices enrolled for offline
-- payment codes, and each payment code's single use. Written with the batch of the request
-- that made them, like migration 3's.
CREATE TABLE merchant_codes (
    id              BIGINT PRIMARY KEY,
    merchant_id     BIGINT NOT NULL REFERENCES merchants (id),
    outlet_id       BIGINT,
    order_id        BIGINT,
    kind            TEXT   NOT NULL CHECK (kind IN ('static', 'dynamic')),
    payload         TEXT   NOT NULL,
    -- The trust-log registration of SHA-256(payload), made when the code was issued.
    registration_id BIGINT NOT NULL REFERENCES registrations (id),
    state           TEXT   NOT NULL CHECK (state IN ('active', 'revoked', 'flagged')),
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT,
    updated_at      BIGINT NOT NULL,
    -- Where the payments of a static code are notified.
    notify_url      TEXT,
    CHECK ((kind = 'dynamic') = (order_id IS NOT NULL))
);
CREATE INDEX merchant_codes_by_merchant ON merchant_codes (merchant_id, id);

CREATE TABLE code_reports (
    id             BIGINT PRIMARY KEY,
    code_id        BIGINT REFERENCES merchant_codes (id),
    payload_digest BYTEA  NOT NULL CHECK (length(payload_digest) = 32),
    payload        TEXT   NOT NULL,
    user_id        BIGINT NOT NULL,
    reason         TEXT   NOT NULL,
    created_at     BIGINT NOT NULL
);
CREATE INDEX code_reports_by_code ON code_reports (code_id) WHERE code_id IS NOT NULL;

CREATE TABLE payment_devices (
    id         BIGINT  PRIMARY KEY,
    user_id    BIGINT  NOT NULL,
    number     INTEGER NOT NULL UNIQUE CHECK (number BETWEEN 0 AND 99999999),
    -- The key the device derives its codes with. The platform must hold it to check them:
    -- protect the database as the keys it holds.
    secret     BYTEA   NOT NULL CHECK (length(secret) = 32),
    name       TEXT    NOT NULL,
    state      TEXT    NOT NULL CHECK (state IN ('active', 'revoked')),
    created_at BIGINT  NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX payment_devices_by_user ON payment_devices (user_id);

CREATE TABLE code_uses (
    device_id  BIGINT   NOT NULL REFERENCES payment_devices (id),
    step       BIGINT   NOT NULL,
    slot       SMALLINT NOT NULL CHECK (slot BETWEEN 0 AND 9),
    order_id   BIGINT   NOT NULL REFERENCES orders (id),
    created_at BIGINT   NOT NULL,
    PRIMARY KEY (device_id, step, slot)
);

-- Orders a POS charged with a payment code above the no-password amount: bound to their payer,
-- waiting for the payer to confirm.
CREATE INDEX orders_awaiting_payer ON orders (payer_user_id, id)
    WHERE state = 'NOTPAY' AND payer_user_id IS NOT NULL;
