-- The ledger's log size (its leaves) after the last batch indexed here: the history is synced
-- to disk only at checkpoints, so after a power loss it may be several batches behind, and it
-- catches up with every transfer whose leaf lies at or beyond this. NULL: not known yet (a
-- history written before this column; it is set by the next batch).
ALTER TABLE history_head ADD COLUMN log_size INTEGER;
