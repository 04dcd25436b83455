-- Nonces of signed merchant requests, as in the SQLite backend (0010_nonces.sql): several
-- nodes serve one database, so a nonce accepted by one is refused by every other.
CREATE TABLE request_nonces (
    key_id   BIGINT NOT NULL,
    nonce    TEXT   NOT NULL,
    seen_at  BIGINT NOT NULL,
    PRIMARY KEY (key_id, nonce)
);

CREATE INDEX request_nonces_seen ON request_nonces (seen_at);
