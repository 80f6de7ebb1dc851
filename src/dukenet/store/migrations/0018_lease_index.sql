-- The reaper's index holds the rows that have a lease, keyed by its expiry; it was the
-- rows whose status is ASSIGNED or RUNNING.
--
-- With that predicate, a statement that looks subtasks up by key and fences them by
-- status (the completion: `s.subtask_id = u.subtask_id AND s.attempt = u.attempt AND
-- s.status = 'RUNNING'`) could also be answered from this index, and the planner chose it:
-- statistics say few rows are RUNNING, but every attempt of a busy queue leaves an entry
-- behind until vacuum reaches it. In a 10,000-subtask drain one completion of 16 answers
-- read 6,017 index entries and 583 heap pages to find its 16 rows, where 16 primary-key
-- lookups read 48 pages. A lease is set when an attempt starts and cleared by every change
-- that ends it (completed, retried, failed, cancelled), so "has a lease" selects the same
-- live rows; a status condition no longer implies the predicate, so those statements go
-- by key. The reaper's `lease_expires_at < NOW()` implies it (a strict comparison is never
-- true of NULL).
DROP INDEX IF EXISTS idx_subtasks_leases;
CREATE INDEX idx_subtasks_leases ON subtasks (lease_expires_at)
  WHERE lease_expires_at IS NOT NULL;
