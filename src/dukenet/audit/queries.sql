-- Queries of the audit trail. Every value is a bind parameter.

-- name: lock_path
-- Serializes writers of one path until commit. The head is read by the next statement
-- (resolve_path): a statement sees the data committed when it started, so one that waited
-- here for another writer would still see the head as it was before that writer committed.
SELECT pg_advisory_xact_lock($1::int, hashtext($2))

-- name: store_record
-- Stores a record block, points its path at it and queues it for the log, in one round
-- trip. A block that already existed is not queued twice.
WITH block AS (
  INSERT INTO audit_blocks (cid, data, links) VALUES ($1, $2, $3)
  ON CONFLICT (cid) DO NOTHING
  RETURNING cid
), path AS (
  INSERT INTO audit_paths (path, cid) VALUES ($4, $1)
  ON CONFLICT (path) DO UPDATE SET cid = EXCLUDED.cid, updated_at = NOW()
), queued AS (
  INSERT INTO audit_log_queue (cid) SELECT cid FROM block
)
SELECT EXISTS (SELECT 1 FROM block) AS created

-- name: heads
-- The current record of each path that has one (for callers that hold the paths' owners
-- locked; see trail.record_task_executions).
SELECT path, cid FROM audit_paths WHERE path = ANY($1::text[])

-- name: store_records
-- store_record for several records at once ($3: each record's links as JSON array text;
-- the paths are distinct). The log queue takes the new blocks in the order given.
WITH item AS (
  SELECT * FROM unnest($1::text[], $2::bytea[], $3::text[], $4::text[])
    WITH ORDINALITY AS i (cid, data, links, path, n)
), block AS (
  INSERT INTO audit_blocks (cid, data, links)
  SELECT cid, data, ARRAY(SELECT jsonb_array_elements_text(links::jsonb)) FROM item ORDER BY n
  ON CONFLICT (cid) DO NOTHING
  RETURNING cid
), path AS (
  INSERT INTO audit_paths (path, cid) SELECT path, cid FROM item
  ON CONFLICT (path) DO UPDATE SET cid = EXCLUDED.cid, updated_at = NOW()
)
INSERT INTO audit_log_queue (cid)
SELECT i.cid FROM item i JOIN block b ON b.cid = i.cid ORDER BY i.n

-- name: store_block
INSERT INTO audit_blocks (cid, data, links) VALUES ($1, $2, $3)
ON CONFLICT (cid) DO NOTHING

-- name: get_block
SELECT data FROM audit_blocks WHERE cid = $1

-- name: get_blocks
SELECT cid, data, links FROM audit_blocks WHERE cid = ANY($1::text[])

-- name: resolve_path
SELECT path, cid, updated_at FROM audit_paths WHERE path = $1

-- name: paths_with_prefix
SELECT path, cid FROM audit_paths WHERE path LIKE $1 ESCAPE '\' ORDER BY path

-- name: paths_for_cids
SELECT path, cid FROM audit_paths WHERE cid = ANY($1::text[]) ORDER BY path

-- name: try_sequencer_lock
SELECT pg_try_advisory_xact_lock($1::int, 0)

-- name: tree_size
SELECT COALESCE(MAX(leaf_index) + 1, 0) FROM audit_log_leaves

-- name: pending_entries
SELECT queue_id, cid, queued_at FROM audit_log_queue ORDER BY queue_id LIMIT $1

-- name: existing_leaves
SELECT cid FROM audit_log_leaves WHERE cid = ANY($1::text[])

-- name: delete_pending
DELETE FROM audit_log_queue WHERE queue_id = ANY($1::bigint[])

-- name: get_nodes
SELECT n.level, n.idx, n.hash
FROM unnest($1::smallint[], $2::bigint[]) AS k(level, idx)
JOIN audit_log_nodes n ON n.level = k.level AND n.idx = k.idx

-- name: leaf_by_cid
SELECT leaf_index FROM audit_log_leaves WHERE cid = $1

-- name: entries
SELECT leaf_index, cid, integrated_at FROM audit_log_leaves
WHERE leaf_index >= $1 AND leaf_index < $2 ORDER BY leaf_index

-- name: latest_checkpoint
SELECT tree_size, root_hash, note, created_at FROM audit_checkpoints
ORDER BY tree_size DESC LIMIT 1

-- name: checkpoint_at
SELECT tree_size, root_hash, note, created_at FROM audit_checkpoints WHERE tree_size = $1

-- name: insert_checkpoint
INSERT INTO audit_checkpoints (tree_size, root_hash, note) VALUES ($1, $2, $3)
ON CONFLICT (tree_size) DO NOTHING

-- name: publish_cursor
INSERT INTO audit_publish_cursors (target) VALUES ($1)
ON CONFLICT (target) DO UPDATE SET target = EXCLUDED.target
RETURNING next_leaf

-- name: lock_publish_cursor
SELECT next_leaf FROM audit_publish_cursors WHERE target = $1 FOR UPDATE SKIP LOCKED

-- name: advance_publish_cursor
UPDATE audit_publish_cursors SET next_leaf = $2, last_error = NULL, updated_at = NOW()
WHERE target = $1

-- name: publish_failed
UPDATE audit_publish_cursors SET last_error = $2, updated_at = NOW() WHERE target = $1
