-- The ledger, as in the SQLite backend: every id, amount and balance is a BIGINT (at most
-- 2^63 - 1), the form `tally sql` prints and every command accepts back, so that auditors can
-- sum() and join them and the same queries run on both backends; amounts are minor units of
-- `currency` (ISO 4217).

CREATE TABLE accounts (
    id              BIGINT  PRIMARY KEY,
    currency        TEXT    NOT NULL,
    kind            INTEGER NOT NULL,
    flags           INTEGER NOT NULL,
    user_data       BIGINT  NOT NULL,
    debits_pending  BIGINT  NOT NULL,
    debits_posted   BIGINT  NOT NULL,
    credits_pending BIGINT  NOT NULL,
    credits_posted  BIGINT  NOT NULL,
    timestamp       BIGINT  NOT NULL
) WITH (fillfactor = 50);
-- Every batch rewrites the balances of the accounts it touched: room left on each page lets
-- the new row version stay on its page without a new index entry (a HOT update).

-- Transfers are appended in id order (ids grow with time), so the heap and the primary key
-- grow at their right edge. `leaf_index` is the transfer's leaf number in the trust log.
CREATE TABLE transfers (
    id                BIGINT  PRIMARY KEY,
    debit_account_id  BIGINT  NOT NULL,
    credit_account_id BIGINT  NOT NULL,
    amount            BIGINT  NOT NULL,
    currency          TEXT    NOT NULL,
    pending_id        BIGINT,
    user_data         BIGINT  NOT NULL,
    timeout_seconds   BIGINT  NOT NULL,
    kind              INTEGER NOT NULL,
    flags             INTEGER NOT NULL,
    timestamp         BIGINT  NOT NULL,
    leaf_index        BIGINT  NOT NULL
);

-- An account's transfers by time. An (account, time) index maintained row by row would cost
-- two random index insertions per transfer, most of a batch's commit (measured: ~100 ms of
-- ~220 ms for 8,190 transfers over 10,000 accounts). Instead each batch writes its postings
-- packed, one row per slice of the account space (slice = account_id % 256): three parallel
-- arrays, in the batch's (time) order, written with one COPY in the batch's own transaction,
-- so the history can never disagree with the ledger. Reading an account's history reads its
-- slice's rows from the cursor's batch on (`timestamp_last` skips the older ones).
CREATE TABLE account_postings (
    slice          INTEGER  NOT NULL,
    batch          BIGINT   NOT NULL,
    timestamp_last BIGINT   NOT NULL,
    account_ids    BIGINT[] NOT NULL,
    timestamps     BIGINT[] NOT NULL,
    transfer_ids   BIGINT[] NOT NULL,
    PRIMARY KEY (slice, batch)
);

-- The postings as plain rows, as the SQLite backend's view of the same name gives them.
CREATE VIEW account_history (account_id, timestamp, transfer_id) AS
    SELECT posting.account_id, posting.timestamp, posting.transfer_id
      FROM account_postings p,
           unnest(p.account_ids, p.timestamps, p.transfer_ids)
               AS posting (account_id, timestamp, transfer_id);

-- Where each pending (two-phase) transfer stands: 'pending', 'posted', 'voided', 'expired'.
CREATE TABLE pending_transfers (
    id         BIGINT PRIMARY KEY,
    status     TEXT   NOT NULL,
    expires_at BIGINT
);

CREATE INDEX pending_transfers_due ON pending_transfers (expires_at)
    WHERE status = 'pending' AND expires_at IS NOT NULL;

-- Balances after every transfer, for accounts created with the `history` flag.
CREATE TABLE account_balances (
    account_id      BIGINT NOT NULL,
    timestamp       BIGINT NOT NULL,
    debits_pending  BIGINT NOT NULL,
    debits_posted   BIGINT NOT NULL,
    credits_pending BIGINT NOT NULL,
    credits_posted  BIGINT NOT NULL,
    PRIMARY KEY (account_id, timestamp)
);

-- One row: where the ledger stands after the last committed batch. Each batch's commit
-- advances it only from the batch before (a second writer, or a stale one, is refused).
CREATE TABLE ledger_head (
    singleton       INTEGER PRIMARY KEY CHECK (singleton = 1),
    batches         BIGINT  NOT NULL,
    timestamp_last  BIGINT  NOT NULL,
    transfer_id_max BIGINT  NOT NULL,
    log_size        BIGINT  NOT NULL
);

INSERT INTO ledger_head (singleton, batches, timestamp_last, transfer_id_max, log_size)
    VALUES (1, 0, 0, 0, 0);

-- The trust log. The tree's hashes as C2SP tlog-tiles of height 8 (see the SQLite backend's
-- migrations and docs/trust-log.md): level, index, width, `width` SHA-256 hashes.
CREATE TABLE log_tiles (
    level      INTEGER NOT NULL,
    tile_index BIGINT  NOT NULL,
    width      INTEGER NOT NULL,
    hashes     BYTEA   NOT NULL,
    PRIMARY KEY (level, tile_index)
);

-- Signed checkpoints (C2SP tlog-checkpoint bodies in C2SP signed notes), one per size.
CREATE TABLE log_checkpoints (
    size      BIGINT PRIMARY KEY,
    root      BYTEA  NOT NULL,
    note      TEXT   NOT NULL,
    timestamp BIGINT NOT NULL
);

-- Registrations: leaves of the trust log beside the transfers.
CREATE TABLE registrations (
    id              BIGINT  PRIMARY KEY,
    kind            INTEGER NOT NULL,
    digest          BYTEA   NOT NULL CHECK (length(digest) = 32),
    registrant      BIGINT  NOT NULL,
    reference       TEXT    NOT NULL,
    timestamp       BIGINT  NOT NULL,
    leaf_index      BIGINT  NOT NULL UNIQUE,
    idempotency_key TEXT    NOT NULL,
    UNIQUE (registrant, idempotency_key)
);

-- Leaf number -> transfer: one row per batch, its first leaf and its transfers' ids in leaf
-- order (8-byte little-endian integers, as in the SQLite backend).
CREATE TABLE log_leaf_runs (
    leaf_first   BIGINT PRIMARY KEY,
    transfer_ids BYTEA  NOT NULL
);
-- Up to 64 KiB of ids that do not compress: stored as they are, not through compression.
ALTER TABLE log_leaf_runs ALTER COLUMN transfer_ids SET STORAGE EXTERNAL;

-- Witness cosignature lines (C2SP tlog-cosignature) for stored checkpoints.
CREATE TABLE log_cosignatures (
    size      BIGINT NOT NULL REFERENCES log_checkpoints (size),
    witness   TEXT   NOT NULL,
    line      TEXT   NOT NULL,
    timestamp BIGINT NOT NULL,
    PRIMARY KEY (size, witness)
);

-- The self-audit's progress.
CREATE TABLE log_audits (
    size       BIGINT PRIMARY KEY,
    root       BYTEA  NOT NULL CHECK (length(root) = 32),
    audited_at BIGINT NOT NULL
);

-- API credentials; only the SHA-256 digest of the secret is kept.
CREATE TABLE api_credentials (
    id            BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    role          TEXT   NOT NULL CHECK (role IN ('auditor', 'depositor', 'operator')),
    label         TEXT   NOT NULL,
    secret_digest BYTEA  NOT NULL CHECK (length(secret_digest) = 32),
    created_at    BIGINT NOT NULL,
    revoked_at    BIGINT
);
