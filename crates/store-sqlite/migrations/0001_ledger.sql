-- The ledger. Every id, amount and balance is a native INTEGER (at most 2^63 - 1), so that
-- auditors can sum() and join them; amounts are minor units of `currency` (ISO 4217).

CREATE TABLE accounts (
    id              INTEGER PRIMARY KEY,
    currency        TEXT    NOT NULL,
    kind            INTEGER NOT NULL,
    flags           INTEGER NOT NULL,
    user_data       INTEGER NOT NULL,
    debits_pending  INTEGER NOT NULL,
    debits_posted   INTEGER NOT NULL,
    credits_pending INTEGER NOT NULL,
    credits_posted  INTEGER NOT NULL,
    timestamp       INTEGER NOT NULL
) STRICT;

CREATE TABLE transfers (
    id                INTEGER PRIMARY KEY,
    debit_account_id  INTEGER NOT NULL,
    credit_account_id INTEGER NOT NULL,
    amount            INTEGER NOT NULL,
    currency          TEXT    NOT NULL,
    pending_id        INTEGER,
    user_data         INTEGER NOT NULL,
    timeout_seconds   INTEGER NOT NULL,
    kind              INTEGER NOT NULL,
    flags             INTEGER NOT NULL,
    timestamp         INTEGER NOT NULL
) STRICT;

-- Where each pending (two-phase) transfer stands: 'pending', 'posted', 'voided', 'expired'.
CREATE TABLE pending_transfers (
    id         INTEGER PRIMARY KEY,
    status     TEXT    NOT NULL,
    expires_at INTEGER
) STRICT;

CREATE INDEX pending_transfers_due ON pending_transfers (expires_at)
    WHERE status = 'pending' AND expires_at IS NOT NULL;

-- An account's transfers by time: the history index, packed (see ARCHITECTURE.md).
-- Each batch appends its postings as one JSON row per slice of the account space
-- (slice = account_id % 64): [[account_id, timestamp, transfer_id], ...]. Each batch also
-- merges one slice's recent rows into `account_postings`, one row per account and run of
-- postings: [[timestamp, transfer_id], ...] (at most 1,024 per row). Indexing a batch thus
-- costs a few dozen rows instead of two per transfer. Query the view `account_history`.
CREATE TABLE account_postings (
    account_id      INTEGER NOT NULL,
    timestamp_first INTEGER NOT NULL,
    timestamp_last  INTEGER NOT NULL,
    postings        TEXT    NOT NULL,
    PRIMARY KEY (account_id, timestamp_first)
) STRICT, WITHOUT ROWID;

-- A rowid table (not WITHOUT ROWID): its rows are a batch's postings for one slice, often
-- several KiB, which a rowid table keeps in its leaf pages instead of overflow chains.
CREATE TABLE account_postings_recent (
    slice    INTEGER NOT NULL,
    batch    INTEGER NOT NULL,
    postings TEXT    NOT NULL,
    PRIMARY KEY (slice, batch)
) STRICT;

CREATE VIEW account_history (account_id, timestamp, transfer_id) AS
    SELECT p.account_id, json_extract(entry.value, '$[0]'), json_extract(entry.value, '$[1]')
      FROM account_postings p, json_each(p.postings) entry
    UNION ALL
    SELECT json_extract(entry.value, '$[0]'), json_extract(entry.value, '$[1]'),
           json_extract(entry.value, '$[2]')
      FROM account_postings_recent r, json_each(r.postings) entry;

-- Balances after every transfer, for accounts created with the `history` flag.
CREATE TABLE account_balances (
    account_id      INTEGER NOT NULL,
    timestamp       INTEGER NOT NULL,
    debits_pending  INTEGER NOT NULL,
    debits_posted   INTEGER NOT NULL,
    credits_pending INTEGER NOT NULL,
    credits_posted  INTEGER NOT NULL,
    PRIMARY KEY (account_id, timestamp)
) STRICT, WITHOUT ROWID;

-- One row: where the ledger stands after the last committed batch.
CREATE TABLE ledger_head (
    singleton       INTEGER PRIMARY KEY CHECK (singleton = 1),
    batches         INTEGER NOT NULL,
    timestamp_last  INTEGER NOT NULL,
    transfer_id_max INTEGER NOT NULL
) STRICT;

INSERT INTO ledger_head (singleton, batches, timestamp_last, transfer_id_max) VALUES (1, 0, 0, 0);
