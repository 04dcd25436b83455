-- The payment business: merchants, their API keys, stores and terminals; orders and refunds;
-- P2P transfers; bank cards (token, BIN and last four digits only, never the number);
-- top-ups and withdrawals; the notification outbox; idempotency records. Each row is written
-- in the same transaction as the ledger batch that moves its money.
CREATE TABLE merchants (
    id                 INTEGER PRIMARY KEY,
    name               TEXT    NOT NULL,
    mcc                TEXT    NOT NULL CHECK (length(mcc) = 4),
    country            TEXT    NOT NULL CHECK (length(country) = 2),
    city               TEXT    NOT NULL,
    settlement_account TEXT    NOT NULL,
    fee_rate_bps       INTEGER NOT NULL CHECK (fee_rate_bps BETWEEN 0 AND 10000),
    account_id         INTEGER NOT NULL UNIQUE,
    -- Keys the HMAC of the notifications sent to the merchant.
    notify_key         BLOB    NOT NULL CHECK (length(notify_key) = 32),
    created_at         INTEGER NOT NULL
) STRICT;

CREATE TABLE merchant_keys (
    id          INTEGER PRIMARY KEY,
    merchant_id INTEGER NOT NULL REFERENCES merchants (id),
    -- SHA-256 of the secret, which is never stored; it keys the requests' HMAC.
    signing_key BLOB    NOT NULL CHECK (length(signing_key) = 32),
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
) STRICT;
CREATE INDEX merchant_keys_by_merchant ON merchant_keys (merchant_id);

CREATE TABLE outlets (
    id          INTEGER PRIMARY KEY,
    merchant_id INTEGER NOT NULL REFERENCES merchants (id),
    kind        TEXT    NOT NULL CHECK (kind IN ('store', 'terminal')),
    parent_id   INTEGER REFERENCES outlets (id),
    name        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX outlets_by_merchant ON outlets (merchant_id);

CREATE TABLE orders (
    id                  INTEGER PRIMARY KEY,
    merchant_id         INTEGER NOT NULL REFERENCES merchants (id),
    outlet_id           INTEGER,
    out_trade_no        TEXT    NOT NULL,
    amount              INTEGER NOT NULL CHECK (amount > 0),
    currency            TEXT    NOT NULL,
    description         TEXT    NOT NULL,
    notify_url          TEXT,
    state               TEXT    NOT NULL CHECK (state IN ('NOTPAY', 'SUCCESS', 'CLOSED', 'REFUND')),
    payer_user_id       INTEGER,
    fee                 INTEGER NOT NULL DEFAULT 0,
    refunded            INTEGER NOT NULL DEFAULT 0 CHECK (refunded <= amount),
    created_at          INTEGER NOT NULL,
    expires_at          INTEGER NOT NULL,
    paid_at             INTEGER,
    closed_at           INTEGER,
    version             INTEGER NOT NULL,
    -- Derived from the id (services::ids::transfer_id), so unique without an index of its own.
    payment_transfer_id INTEGER NOT NULL,
    UNIQUE (merchant_id, out_trade_no)
) STRICT;
CREATE INDEX orders_by_merchant ON orders (merchant_id, id);
CREATE INDEX orders_by_paid_at ON orders (merchant_id, paid_at) WHERE paid_at IS NOT NULL;
CREATE INDEX orders_open ON orders (expires_at) WHERE state = 'NOTPAY';

CREATE TABLE refunds (
    id            INTEGER PRIMARY KEY,
    order_id      INTEGER NOT NULL REFERENCES orders (id),
    merchant_id   INTEGER NOT NULL,
    out_refund_no TEXT    NOT NULL,
    amount        INTEGER NOT NULL CHECK (amount > 0),
    fee_refunded  INTEGER NOT NULL,
    reason        TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    UNIQUE (merchant_id, out_refund_no)
) STRICT;
CREATE INDEX refunds_by_order ON refunds (order_id);
CREATE INDEX refunds_by_time ON refunds (merchant_id, created_at);

CREATE TABLE p2p_transfers (
    id           INTEGER PRIMARY KEY,
    from_user_id INTEGER NOT NULL,
    to_user_id   INTEGER NOT NULL,
    amount       INTEGER NOT NULL CHECK (amount > 0),
    currency     TEXT    NOT NULL,
    note         TEXT    NOT NULL,
    created_at   INTEGER NOT NULL
) STRICT;

CREATE TABLE cards (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL,
    token      TEXT    NOT NULL,
    bin        TEXT    NOT NULL CHECK (length(bin) = 6),
    last4      TEXT    NOT NULL CHECK (length(last4) = 4),
    bank       TEXT    NOT NULL,
    state      TEXT    NOT NULL CHECK (state IN ('active', 'unbound')),
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX cards_by_user ON cards (user_id);

CREATE TABLE bank_transfers (
    id             INTEGER PRIMARY KEY,
    user_id        INTEGER NOT NULL,
    card_id        INTEGER NOT NULL,
    direction      TEXT    NOT NULL CHECK (direction IN ('top_up', 'withdrawal')),
    amount         INTEGER NOT NULL CHECK (amount > 0),
    currency       TEXT    NOT NULL,
    state          TEXT    NOT NULL CHECK (state IN ('pending', 'succeeded', 'failed')),
    bank_reference TEXT,
    failure        TEXT,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
) STRICT;
CREATE INDEX bank_transfers_pending ON bank_transfers (id) WHERE state = 'pending';

CREATE TABLE events (
    id              INTEGER PRIMARY KEY,
    merchant_id     INTEGER NOT NULL,
    object_id       INTEGER NOT NULL,
    object_sequence INTEGER NOT NULL,
    kind            TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    notify_url      TEXT,
    created_at      INTEGER NOT NULL,
    delivery        TEXT    NOT NULL CHECK (delivery IN ('none', 'pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_result     TEXT,
    UNIQUE (object_id, object_sequence)
) STRICT;
CREATE INDEX events_by_merchant ON events (merchant_id, id);
CREATE INDEX events_due ON events (next_attempt_at) WHERE delivery = 'pending';

CREATE TABLE idempotency_keys (
    principal      TEXT    NOT NULL,
    key            TEXT    NOT NULL,
    request_digest BLOB    NOT NULL CHECK (length(request_digest) = 32),
    status         INTEGER NOT NULL,
    response       TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    PRIMARY KEY (principal, key)
) STRICT, WITHOUT ROWID;
