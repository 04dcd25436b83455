-- Red envelopes and escrow, as in the SQLite backend (0007_envelopes.sql): groups and their members, and
-- envelopes with their packets fixed when sent. Grabs are ledger transfers (packet k of
-- envelope e is transfer (e + 1 + k) × 16 + 1, kind 9), so no row is written per grab.
CREATE TABLE groups (
    id            BIGINT PRIMARY KEY,
    owner_user_id BIGINT NOT NULL,
    name          TEXT   NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE TABLE group_members (
    group_id  BIGINT NOT NULL REFERENCES groups (id),
    user_id   BIGINT NOT NULL,
    joined_at BIGINT NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_by_user ON group_members (user_id, group_id);

CREATE TABLE envelopes (
    id                BIGINT PRIMARY KEY,
    sender_user_id    BIGINT NOT NULL,
    group_id          BIGINT REFERENCES groups (id),
    recipient_user_id BIGINT,
    kind              TEXT   NOT NULL CHECK (kind IN ('ordinary', 'lucky')),
    total             BIGINT NOT NULL CHECK (total > 0),
    currency          TEXT   NOT NULL,
    -- The packets' amounts in grabbing order, comma-separated; they sum to total.
    packets           TEXT   NOT NULL,
    greeting          TEXT   NOT NULL,
    -- The trust-log registration of the packets' digest, made before anyone could grab.
    registration_id   BIGINT NOT NULL REFERENCES registrations (id),
    state             TEXT   NOT NULL CHECK (state IN ('open', 'finished', 'expired')),
    created_at        BIGINT NOT NULL,
    expires_at        BIGINT NOT NULL,
    returned          BIGINT NOT NULL DEFAULT 0,
    closed_at         BIGINT,
    CHECK ((group_id IS NULL) <> (recipient_user_id IS NULL))
);
CREATE INDEX envelopes_open ON envelopes (expires_at) WHERE state = 'open';

-- Orders paid into escrow ("guaranteed trade"): the money waits in the escrow account.
ALTER TABLE orders ADD COLUMN escrow BOOLEAN NOT NULL DEFAULT false;

CREATE TABLE escrows (
    order_id         BIGINT  PRIMARY KEY REFERENCES orders (id),
    merchant_id      BIGINT  NOT NULL,
    buyer_user_id    BIGINT  NOT NULL,
    amount           BIGINT  NOT NULL CHECK (amount > 0),
    state            TEXT    NOT NULL
        CHECK (state IN ('held', 'shipped', 'disputed', 'released', 'refunded', 'split')),
    carrier          TEXT,
    tracking_no      TEXT,
    ship_by          BIGINT  NOT NULL,
    shipped_at       BIGINT,
    release_at       BIGINT,
    -- The next timer: ship_by while held, release_at while shipped.
    due_at           BIGINT,
    dispute_reason   TEXT,
    dispute_evidence TEXT,
    released         BIGINT  NOT NULL DEFAULT 0,
    refunded         BIGINT  NOT NULL DEFAULT 0 CHECK (released + refunded <= amount),
    settled_by       TEXT,
    note             TEXT,
    created_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL,
    version          BIGINT  NOT NULL
);
CREATE INDEX escrows_due ON escrows (due_at) WHERE due_at IS NOT NULL;
