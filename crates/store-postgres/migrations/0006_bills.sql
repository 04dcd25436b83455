-- Bill payments, as in the SQLite backend (0008_bills.sql): billers registered by the operator
-- with the rule their customer references follow, each bill payment (a hold in the ledger,
-- posted when the biller confirms, voided when it refuses) and the billers users saved.
-- Written with the batch of the request that made them, like migration 3's.
CREATE TABLE billers (
    id                   BIGINT PRIMARY KEY,
    -- The biller's code at the connector that reaches it.
    code                 TEXT   NOT NULL UNIQUE,
    name                 TEXT   NOT NULL,
    category             TEXT   NOT NULL CHECK (category IN ('electricity', 'water', 'gas',
                                    'phone', 'internet', 'television')),
    reference_label      TEXT   NOT NULL,
    reference_charset    TEXT   NOT NULL CHECK (reference_charset IN ('digits', 'alphanumeric')),
    reference_length_min BIGINT NOT NULL CHECK (reference_length_min >= 1),
    reference_length_max BIGINT NOT NULL
        CHECK (reference_length_max BETWEEN reference_length_min AND 32),
    reference_prefix     TEXT   NOT NULL,
    check_digit          TEXT   NOT NULL CHECK (check_digit IN ('none', 'luhn', 'mod11')),
    -- The only amounts accepted, minor units, ascending and comma-separated; '' for any amount.
    denominations        TEXT   NOT NULL,
    account_id           BIGINT NOT NULL UNIQUE,
    created_at           BIGINT NOT NULL
);
CREATE INDEX billers_by_category ON billers (category, id);

CREATE TABLE bill_payments (
    id            BIGINT PRIMARY KEY,
    user_id       BIGINT NOT NULL,
    biller_id     BIGINT NOT NULL REFERENCES billers (id),
    reference     TEXT   NOT NULL,
    amount        BIGINT NOT NULL CHECK (amount > 0),
    currency      TEXT   NOT NULL,
    state         TEXT   NOT NULL CHECK (state IN ('pending', 'succeeded', 'failed')),
    customer_name TEXT,
    -- The biller's confirmation number, the payer's receipt: there exactly when it succeeded.
    confirmation  TEXT,
    failure       TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    CHECK ((state = 'succeeded') = (confirmation IS NOT NULL))
);
CREATE INDEX bill_payments_by_user ON bill_payments (user_id, id);
CREATE INDEX bill_payments_pending ON bill_payments (id) WHERE state = 'pending';

CREATE TABLE saved_billers (
    id         BIGINT PRIMARY KEY,
    user_id    BIGINT NOT NULL,
    biller_id  BIGINT NOT NULL REFERENCES billers (id),
    reference  TEXT   NOT NULL,
    nickname   TEXT   NOT NULL,
    state      TEXT   NOT NULL CHECK (state IN ('active', 'deleted')),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
-- A user saves a biller and reference once (again after deleting it).
CREATE UNIQUE INDEX saved_billers_active ON saved_billers (user_id, biller_id, reference)
    WHERE state = 'active';
