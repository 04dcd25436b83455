-- QR payments: merchant-presented codes registered in the trust log, payers' reports of
-- fraudulent codes, wallet devices enrolled for offline payment codes, and each payment code's
-- single use. Written with the batch of the request that made them, like migration 5's.

CREATE TABLE merchant_codes (
    id              INTEGER PRIMARY KEY,
    merchant_id     INTEGER NOT NULL REFERENCES merchants (id),
    outlet_id       INTEGER,
    order_id        INTEGER,
    kind            TEXT    NOT NULL CHECK (kind IN ('static', 'dynamic')),
    payload         TEXT    NOT NULL,
    -- The trust-log registration of SHA-256(payload), made when the code was issued.
    registration_id INTEGER NOT NULL REFERENCES registrations (id),
    state           TEXT    NOT NULL CHECK (state IN ('active', 'revoked', 'flagged')),
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER,
    updated_at      INTEGER NOT NULL,
    -- Where the payments of a static code are notified.
    notify_url      TEXT,
    CHECK ((kind = 'dynamic') = (order_id IS NOT NULL))
) STRICT;
CREATE INDEX merchant_codes_by_merchant ON merchant_codes (merchant_id, id);

CREATE TABLE code_reports (
    id             INTEGER PRIMARY KEY,
    code_id        INTEGER REFERENCES merchant_codes (id),
    payload_digest BLOB    NOT NULL CHECK (length(payload_digest) = 32),
    payload        TEXT    NOT NULL,
    user_id        INTEGER NOT NULL,
    reason         TEXT    NOT NULL,
    created_at     INTEGER NOT NULL
) STRICT;
CREATE INDEX code_reports_by_code ON code_reports (code_id) WHERE code_id IS NOT NULL;

CREATE TABLE payment_devices (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL,
    number     INTEGER NOT NULL UNIQUE CHECK (number BETWEEN 0 AND 99999999),
    -- The key the device derives its codes with. The platform must hold it to check them:
    -- protect the database as the keys it holds.
    secret     BLOB    NOT NULL CHECK (length(secret) = 32),
    name       TEXT    NOT NULL,
    state      TEXT    NOT NULL CHECK (state IN ('active', 'revoked')),
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
) STRICT;
CREATE INDEX payment_devices_by_user ON payment_devices (user_id);

CREATE TABLE code_uses (
    device_id  INTEGER NOT NULL REFERENCES payment_devices (id),
    step       INTEGER NOT NULL,
    slot       INTEGER NOT NULL CHECK (slot BETWEEN 0 AND 9),
    order_id   INTEGER NOT NULL REFERENCES orders (id),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (device_id, step, slot)
) STRICT, WITHOUT ROWID;

-- Orders a POS charged with a payment code above the no-password amount: bound to their payer,
-- waiting for the payer to confirm.
CREATE INDEX orders_awaiting_payer ON orders (payer_user_id, id)
    WHERE state = 'NOTPAY' AND payer_user_id IS NOT NULL;
