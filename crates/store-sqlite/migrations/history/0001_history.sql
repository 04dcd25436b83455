-- The history index: an account's transfers by time, derived from the ledger's transfers and
-- written by its own thread in parallel with the ledger database (see ARCHITECTURE.md).
--
-- Each batch appends its postings as one JSON row per slice of the account space
-- (slice = account_id % 64): [[account_id, timestamp, transfer_id], ...]. Each batch also
-- merges one slice's earlier recent rows into `account_postings`, one row per account and run
-- of postings: [[timestamp, transfer_id], ...] (at most 1,024 per row). Indexing a batch thus
-- costs a few dozen rows instead of two per transfer.

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

-- One row: the last ledger batch whose postings are indexed here.
CREATE TABLE history_head (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    batches   INTEGER NOT NULL
) STRICT;

INSERT INTO history_head (singleton, batches) VALUES (1, 0);
