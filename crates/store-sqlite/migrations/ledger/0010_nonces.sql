-- Nonces of signed merchant requests, for stores several processes serve: a nonce is accepted
-- once per API key, and remembered while a request carrying it could still pass the timestamp
-- window (a process serving a store alone remembers them in memory instead).

CREATE TABLE request_nonces (
    key_id   INTEGER NOT NULL,
    nonce    TEXT    NOT NULL,
    seen_at  INTEGER NOT NULL,
    PRIMARY KEY (key_id, nonce)
) WITHOUT ROWID;

CREATE INDEX request_nonces_seen ON request_nonces (seen_at);
