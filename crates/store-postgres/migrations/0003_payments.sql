-- The payment business, as in the SQLite backend (0005_payments.sql): merchants, their API
-- keys, stores and terminals; orders and refunds; P2P transfers; bank cards (token, BIN and
-- last four digits only, never the number); top-ups and withdrawals; the notification outbox;
-- idempotency records. Each row is written in the same transaction as the ledger batch that
-- moves its money. Ids, amounts and times are BIGINT (minor units, Unix seconds), states are
-- text held to their values by CHECK constraints, so that the same queries run on both
-- backends.
CREATE TABLE merchants (
    id                 BIGINT  PRIMARY KEY,
    name               TEXT    NOT NULL,
    mcc                TEXT    NOT NULL CHECK (char_length(mcc) = 4),
    country            TEXT    NOT NULL CHECK (char_length(country) = 2),
    city               TEXT    NOT NULL,
    settlement_account TEXT    NOT NULL,
    fee_rate_bps       INTEGER NOT NULL CHECK (fee_rate_bps BETWEEN 0 AND 10000),
    account_id         BIGINT  NOT NULL UNIQUE,
    -- Keys the HMAC of the notifications sent to the merchant.
    notify_key         BYTEA   NOT NULL CHECK (length(notify_key) = 32),
    created_at         BIGINT  NOT NULL
);

CREATE TABLE merchant_keys (
    id          BIGINT PRIMARY KEY,
    merchant_id BIGINT NOT NULL REFERENCES merchants (id),
    -- SHA-256 of the secret, which is never stored; it keys the requests' HMAC.
    signing_key BYTEA  NOT NULL CHECK (length(signing_key) = 32),
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX merchant_keys_by_merchant ON merchant_keys (merchant_id);

CREATE TABLE outlets (
    id          BIGINT PRIMARY KEY,
    merchant_id BIGINT NOT NULL REFERENCES merchants (id),
    kind        TEXT   NOT NULL CHECK (kind IN ('store', 'terminal')),
    parent_id   BIGINT REFERENCES outlets (id),
    name        TEXT   NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX outlets_by_merchant ON outlets (merchant_id);

CREATE TABLE orders (
    id                  BIGINT PRIMARY KEY,
    merchant_id         BIGINT NOT NULL REFERENCES merchants (id),
    outlet_id           BIGINT,
    out_trade_no        TEXT   NOT NULL,
    amount              BIGINT NOT NULL CHECK (amount > 0),
    currency            TEXT   NOT NULL,
    description         TEXT   NOT NULL,
    notify_url          TEXT,
    state               TEXT   NOT NULL CHECK (state IN ('NOTPAY', 'SUCCESS', 'CLOSED', 'REFUND')),
    payer_user_id       BIGINT,
    fee                 BIGINT NOT NULL DEFAULT 0,
    refunded            BIGINT NOT NULL DEFAULT 0 CHECK (refunded <= amount),
    created_at          BIGINT NOT NULL,
    expires_at          BIGINT NOT NULL,
    paid_at             BIGINT,
    closed_at           BIGINT,
    version             BIGINT NOT NULL,
    -- Derived from the id (services::ids::transfer_id), so unique without an index of its own.
    payment_transfer_id BIGINT NOT NULL,
    UNIQUE (merchant_id, out_trade_no)
);
CREATE INDEX orders_by_merchant ON orders (merchant_id, id);
CREATE INDEX orders_by_paid_at ON orders (merchant_id, paid_at) WHERE paid_at IS NOT NULL;
CREATE INDEX orders_open ON orders (expires_at) WHERE state = 'NOTPAY';

CREATE TABLE refunds (
    id            BIGINT PRIMARY KEY,
    order_id      BIGINT NOT NULL REFERENCES orders (id),
    merchant_id   BIGINT NOT NULL,
    out_refund_no TEXT   NOT NULL,
    amount        BIGINT NOT NULL CHECK (amount > 0),
    fee_refunded  BIGINT NOT NULL,
    reason        TEXT   NOT NULL,
    created_at    BIGINT NOT NULL,
    UNIQUE (merchant_id, out_refund_no)
);
CREATE INDEX refunds_by_order ON refunds (order_id);
CREATE INDEX refunds_by_time ON refunds (merchant_id, created_at);

CREATE TABLE p2p_transfers (
    id           BIGINT PRIMARY KEY,
    from_user_id BIGINT NOT NULL,
    to_user_id   BIGINT NOT NULL,
    amount       BIGINT NOT NULL CHECK (amount > 0),
    currency     TEXT   NOT NULL,
    note         TEXT   NOT NULL,
    created_at   BIGINT NOT NULL
);

CREATE TABLE cards (
    id         BIGINT PRIMARY KEY,
    user_id    BIGINT NOT NULL,
    token      TEXT   NOT NULL,
    bin        TEXT   NOT NULL CHECK (char_length(bin) = 6),
    last4      TEXT   NOT NULL CHECK (char_length(last4) = 4),
    bank       TEXT   NOT NULL,
    state      TEXT   NOT NULL CHECK (state IN ('active', 'unbound')),
    created_at BIGINT NOT NULL
);
CREATE INDEX cards_by_user ON cards (user_id);

CREATE TABLE bank_transfers (
    id             BIGINT PRIMARY KEY,
    user_id        BIGINT NOT NULL,
    card_id        BIGINT NOT NULL,
    direction      TEXT   NOT NULL CHECK (direction IN ('top_up', 'withdrawal')),
    amount         BIGINT NOT NULL CHECK (amount > 0),
    currency       TEXT   NOT NULL,
    state          TEXT   NOT NULL CHECK (state IN ('pending', 'succeeded', 'failed')),
    bank_reference TEXT,
    failure        TEXT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE INDEX bank_transfers_pending ON bank_transfers (id) WHERE state = 'pending';

CREATE TABLE events (
    id              BIGINT PRIMARY KEY,
    merchant_id     BIGINT NOT NULL,
    object_id       BIGINT NOT NULL,
    object_sequence BIGINT NOT NULL,
    kind            TEXT   NOT NULL,
    payload         TEXT   NOT NULL,
    notify_url      TEXT,
    created_at      BIGINT NOT NULL,
    delivery        TEXT   NOT NULL CHECK (delivery IN ('none', 'pending', 'delivered', 'failed')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_result     TEXT,
    UNIQUE (object_id, object_sequence)
);
CREATE INDEX events_by_merchant ON events (merchant_id, id);
CREATE INDEX events_due ON events (next_attempt_at) WHERE delivery = 'pending';

CREATE TABLE idempotency_keys (
    principal      TEXT    NOT NULL,
    key            TEXT    NOT NULL,
    request_digest BYTEA   NOT NULL CHECK (length(request_digest) = 32),
    status         INTEGER NOT NULL,
    response       TEXT    NOT NULL,
    created_at     BIGINT  NOT NULL,
    PRIMARY KEY (principal, key)
);
