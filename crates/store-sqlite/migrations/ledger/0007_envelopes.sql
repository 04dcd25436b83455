-- Red envelopes and escrow: groups and their members; envelopes with their packets fixed when
-- sent (grabs are ledger transfers: packet k of envelope e is transfer (e + 1 + k) × 16 + 1, kind
-- 9, so no row is written per grab); orders paid into escrow, and their escrows.

CREATE TABLE groups (
    id            INTEGER PRIMARY KEY,
    owner_user_id INTEGER NOT NULL,
    name          TEXT    NOT NULL,
    created_at    INTEGER NOT NULL
) STRICT;

CREATE TABLE group_members (
    group_id  INTEGER NOT NULL REFERENCES groups (id),
    user_id   INTEGER NOT NULL,
    joined_at INTEGER NOT NULL,
    PRIMARY KEY (group_id, user_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX group_members_by_user ON group_members (user_id, group_id);

CREATE TABLE envelopes (
    id                INTEGER PRIMARY KEY,
    sender_user_id    INTEGER NOT NULL,
    group_id          INTEGER REFERENCES groups (id),
    recipient_user_id INTEGER,
    kind              TEXT    NOT NULL CHECK (kind IN ('ordinary', 'lucky')),
    total             INTEGER NOT NULL CHECK (total > 0),
    currency          TEXT    NOT NULL,
    -- The packets' amounts in grabbing order, comma-separated; they sum to total.
    packets           TEXT    NOT NULL,
    greeting          TEXT    NOT NULL,
    -- The trust-log registration of the packets' digest, made before anyone could grab.
    registration_id   INTEGER NOT NULL REFERENCES registrations (id),
    state             TEXT    NOT NULL CHECK (state IN ('open', 'finished', 'expired')),
    created_at        INTEGER NOT NULL,
    expires_at        INTEGER NOT NULL,
    returned          INTEGER NOT NULL DEFAULT 0,
    closed_at         INTEGER,
    CHECK ((group_id IS NULL) <> (recipient_user_id IS NULL))
) STRICT;
CREATE INDEX envelopes_open ON envelopes (expires_at) WHERE state = 'open';

-- Orders paid into escrow ("guaranteed trade"): the money waits in the escrow account.
ALTER TABLE orders ADD COLUMN escrow INTEGER NOT NULL DEFAULT 0 CHECK (escrow IN (0, 1));

CREATE TABLE escrows (
    order_id         INTEGER PRIMARY KEY REFERENCES orders (id),
    merchant_id      INTEGER NOT NULL,
    buyer_user_id    INTEGER NOT NULL,
    amount           INTEGER NOT NULL CHECK (amount > 0),
    state            TEXT    NOT NULL
        CHECK (state IN ('held', 'shipped', 'disputed', 'released', 'refunded', 'split')),
    carrier          TEXT,
    tracking_no      TEXT,
    ship_by          INTEGER NOT NULL,
    shipped_at       INTEGER,
    release_at       INTEGER,
    -- The next timer: ship_by while held, release_at while shipped.
    due_at           INTEGER,
    dispute_reason   TEXT,
    dispute_evidence TEXT,
    released         INTEGER NOT NULL DEFAULT 0,
    refunded         INTEGER NOT NULL DEFAULT 0 CHECK (released + refunded <= amount),
    settled_by       TEXT,
    note             TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    version          INTEGER NOT NULL
) STRICT;
CREATE INDEX escrows_due ON escrows (due_at) WHERE due_at IS NOT NULL;
