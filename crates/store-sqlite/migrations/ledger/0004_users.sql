-- People: users (phone number, Argon2id login password, wallet account), one-time codes that
-- prove a phone (only their SHA-256 is kept), the development SMS gateway's outbox, and login
-- sessions (only the SHA-256 of each token is kept).
CREATE TABLE users (
    id                INTEGER PRIMARY KEY,
    phone             TEXT    NOT NULL UNIQUE,
    password_hash     TEXT    NOT NULL,
    wallet_account_id INTEGER NOT NULL UNIQUE,
    tier              INTEGER NOT NULL DEFAULT 0 CHECK (tier BETWEEN 0 AND 2),
    created_at        INTEGER NOT NULL,
    -- The 6-digit payment password (Argon2id), wrong tries in a row, and until when paying is
    -- locked after too many.
    payment_password_hash TEXT,
    payment_failures      INTEGER NOT NULL DEFAULT 0,
    payment_locked_until  INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE TABLE one_time_codes (
    phone      TEXT    NOT NULL,
    purpose    TEXT    NOT NULL,
    digest     BLOB    NOT NULL CHECK (length(digest) = 32),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (phone, purpose)
) STRICT;

CREATE TABLE sms_outbox (
    id         INTEGER PRIMARY KEY,
    phone      TEXT    NOT NULL,
    text       TEXT    NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE sessions (
    digest     BLOB    PRIMARY KEY CHECK (length(digest) = 32),
    user_id    INTEGER NOT NULL REFERENCES users (id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked    INTEGER NOT NULL DEFAULT 0
) STRICT;
