-- E-invoices: issued by merchants for paid orders, each registered in the trust log (the
-- registration holds SHA-256 of the canonical document), voided by red-letter invoices, and
-- reimbursed by organisations once. Written with the batch of the request that made them,
-- like migration 5's.

CREATE TABLE invoices (
    id              INTEGER PRIMARY KEY,
    merchant_id     INTEGER NOT NULL REFERENCES merchants (id),
    order_id        INTEGER NOT NULL REFERENCES orders (id),
    kind            TEXT    NOT NULL CHECK (kind IN ('standard', 'red_letter')),
    -- The merchant's invoice sequence; `number` is it zero-padded, as printed.
    sequence        INTEGER NOT NULL CHECK (sequence > 0),
    number          TEXT    NOT NULL,
    -- The invoice a red-letter invoice voids.
    original_id     INTEGER REFERENCES invoices (id),
    seller_tax_id   TEXT    NOT NULL,
    buyer_name      TEXT    NOT NULL,
    buyer_tax_id    TEXT,
    currency        TEXT    NOT NULL,
    -- Minor units: net of tax, tax, and both; negative on a red-letter invoice.
    amount          INTEGER NOT NULL,
    tax             INTEGER NOT NULL,
    total           INTEGER NOT NULL,
    -- The canonical document exactly as issued, and its SHA-256.
    document        TEXT    NOT NULL,
    digest          BLOB    NOT NULL CHECK (length(digest) = 32),
    registration_id INTEGER NOT NULL REFERENCES registrations (id),
    state           TEXT    NOT NULL CHECK (state IN ('issued', 'reimbursed', 'voided')),
    issued_at       INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    CHECK (total = amount + tax),
    CHECK ((kind = 'red_letter') = (original_id IS NOT NULL)),
    CHECK (kind = 'standard' OR (state = 'issued' AND total < 0)),
    CHECK (kind = 'red_letter' OR total > 0),
    UNIQUE (merchant_id, sequence),
    UNIQUE (merchant_id, number)
) STRICT;
CREATE INDEX invoices_by_number ON invoices (seller_tax_id, number);
CREATE INDEX invoices_by_order ON invoices (order_id);
-- An invoice is voided by one red-letter invoice at most.
CREATE UNIQUE INDEX invoices_one_red_letter ON invoices (original_id)
    WHERE original_id IS NOT NULL;
-- An order has one invoice in force at most: another only after it is voided.
CREATE UNIQUE INDEX invoices_one_in_force ON invoices (order_id)
    WHERE kind = 'standard' AND state <> 'voided';

CREATE TABLE invoice_reimbursements (
    id              INTEGER PRIMARY KEY,
    -- Unique: an invoice is reimbursed once; a second claim fails its batch.
    invoice_id      INTEGER NOT NULL UNIQUE REFERENCES invoices (id),
    organisation    TEXT    NOT NULL,
    claim_reference TEXT    NOT NULL,
    -- The operator credential that recorded it.
    credential_id   INTEGER NOT NULL,
    created_at      INTEGER NOT NULL
) STRICT;
