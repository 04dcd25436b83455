-- Registrations (deposited document hashes, merchant codes, e-invoices, device certificates):
-- leaves of the trust log beside the transfers, committed by the sequencer in the same
-- transaction as their batch. The leaf bytes are derived from the row (store's
-- `Registration::log_leaf`), so they are not stored twice. See docs/trust-log.md.
CREATE TABLE registrations (
    id              INTEGER PRIMARY KEY,
    kind            INTEGER NOT NULL,
    digest          BLOB    NOT NULL CHECK (length(digest) = 32),
    registrant      INTEGER NOT NULL,
    reference       TEXT    NOT NULL,
    timestamp       INTEGER NOT NULL,
    leaf_index      INTEGER NOT NULL UNIQUE,
    idempotency_key TEXT    NOT NULL,
    UNIQUE (registrant, idempotency_key)
) STRICT;

-- Leaf number -> transfer, for entry bundles and the self-audit's ranges: one row per batch,
-- its first leaf and its transfers' ids in leaf order (8-byte little-endian integers). One
-- row a batch costs far less than an index entry a transfer (measured: ~9 % of the CPU of a
-- commit).
CREATE TABLE log_leaf_runs (
    leaf_first   INTEGER PRIMARY KEY,
    transfer_ids BLOB    NOT NULL
) STRICT;

-- Witness cosignature lines (C2SP tlog-cosignature) for stored checkpoints.
CREATE TABLE log_cosignatures (
    size      INTEGER NOT NULL REFERENCES log_checkpoints (size),
    witness   TEXT    NOT NULL,
    line      TEXT    NOT NULL,
    timestamp INTEGER NOT NULL,
    PRIMARY KEY (size, witness)
) STRICT;

-- The self-audit's progress: the size up to which `tally serve` re-derived the log from the
-- rows, and the root it found there, so a restart resumes instead of starting over.
CREATE TABLE log_audits (
    size       INTEGER PRIMARY KEY,
    root       BLOB    NOT NULL CHECK (length(root) = 32),
    audited_at INTEGER NOT NULL
) STRICT;

-- API credentials for operators, auditors and depositors. Only the SHA-256 digest of the
-- secret is kept; the secret is shown once, when the credential is created.
CREATE TABLE api_credentials (
    id            INTEGER PRIMARY KEY,
    role          TEXT    NOT NULL CHECK (role IN ('auditor', 'depositor', 'operator')),
    label         TEXT    NOT NULL,
    secret_digest BLOB    NOT NULL CHECK (length(secret_digest) = 32),
    created_at    INTEGER NOT NULL,
    revoked_at    INTEGER
) STRICT;
