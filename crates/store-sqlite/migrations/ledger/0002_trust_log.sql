-- The trust log: every committed transfer is a leaf of an append-only Merkle tree (RFC 9162),
-- appended in the same transaction that commits it. See ARCHITECTURE.md, "The trust log".

-- The transfer's leaf number; its leaf bytes are derived from the row (see ledger's
-- `Transfer::log_leaf`), so they are not stored twice.
ALTER TABLE transfers ADD COLUMN leaf_index INTEGER;

-- Leaves in the log.
ALTER TABLE ledger_head ADD COLUMN log_size INTEGER NOT NULL DEFAULT 0;

-- The tree's hashes as C2SP tlog-tiles of height 8: level, index, and the tile's width
-- (256 when full; the right edge's partial tiles are replaced as they grow, and a narrower
-- partial tile is a prefix of a wider one). `hashes` is `width` SHA-256 hashes of 32 bytes.
CREATE TABLE log_tiles (
    level      INTEGER NOT NULL,
    tile_index INTEGER NOT NULL,
    width      INTEGER NOT NULL,
    hashes     BLOB    NOT NULL,
    PRIMARY KEY (level, tile_index)
) STRICT;

-- Signed checkpoints (C2SP tlog-checkpoint bodies in C2SP signed notes), one per size.
CREATE TABLE log_checkpoints (
    size      INTEGER PRIMARY KEY,
    root      BLOB    NOT NULL,
    note      TEXT    NOT NULL,
    timestamp INTEGER NOT NULL
) STRICT;
