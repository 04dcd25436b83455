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

-- An account's transfers by time live in the history database (tally-history.sqlite), written
-- in parallel with this one; see migrations/history and ARCHITECTURE.md.

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

-- One row: where the ledger stands after the last committed batch. `last_batch_transfers`
-- holds the ids of that batch's transfers (8-byte little-endian integers), from which the
-- history database rebuilds its last batch if a crash came between the two commits.
CREATE TABLE ledger_head (
    singleton            INTEGER PRIMARY KEY CHECK (singleton = 1),
    batches              INTEGER NOT NULL,
    timestamp_last       INTEGER NOT NULL,
    transfer_id_max      INTEGER NOT NULL,
    last_batch_transfers BLOB    NOT NULL
) STRICT;

INSERT INTO ledger_head (singleton, batches, timestamp_last, transfer_id_max, last_batch_transfers)
    VALUES (1, 0, 0, 0, x'');
