-- Recent postings in batch order, merged slices dropped in bulk.
--
-- Before, a batch inserted its rows at the end of the table but a merge deleted one slice's
-- rows from every batch still recent: one row in each of up to 64 batches' pages, so every
-- page of recent postings was written again at each of the ~35 merges that touched it. Now a
-- row's id is `batch * 64 + slice`, so a batch appends its rows in one place; a merge records
-- how far its slice is merged (`history_slices`) instead of deleting, and the rows every slice
-- has merged are deleted together, a contiguous range of ids, once every 64 batches.

CREATE TABLE account_postings_recent_by_batch (
    id       INTEGER PRIMARY KEY,  -- batch * 64 + slice
    batch    INTEGER NOT NULL,
    slice    INTEGER NOT NULL CHECK (slice BETWEEN 0 AND 63),
    postings TEXT    NOT NULL
) STRICT;

INSERT INTO account_postings_recent_by_batch (id, batch, slice, postings)
    SELECT batch * 64 + slice, batch, slice, postings FROM account_postings_recent;
DROP TABLE account_postings_recent;
ALTER TABLE account_postings_recent_by_batch RENAME TO account_postings_recent;

-- Per slice, the last batch whose postings in that slice are merged into `account_postings`:
-- a slice's recent rows of that batch and earlier are left out by every reader.
CREATE TABLE history_slices (
    slice          INTEGER PRIMARY KEY CHECK (slice BETWEEN 0 AND 63),
    merged_through INTEGER NOT NULL
) STRICT;

-- The rows kept until now were all unmerged (a merge deleted its slice's rows): a slice is
-- merged up to the batch before its first recent row, or, with none, up to the last batch.
WITH RECURSIVE slices (slice) AS (SELECT 0 UNION ALL SELECT slice + 1 FROM slices WHERE slice < 63)
INSERT INTO history_slices (slice, merged_through)
    SELECT slice,
           coalesce((SELECT min(r.batch) - 1 FROM account_postings_recent r
                      WHERE r.slice = slices.slice),
                    (SELECT batches FROM history_head))
      FROM slices;
