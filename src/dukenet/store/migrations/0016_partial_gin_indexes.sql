-- A GIN index takes new entries into a pending list (fastupdate) that every search of
-- the index reads whole, until a vacuum or 4 MB of entries merges it into the index. The
-- tasks table's three GIN indexes received an entry for every task row version, empty
-- array or object included (a task is inserted, then updated when it ends, and neither
-- is a HOT update): after 5,000 single-subtask tasks the pending list of
-- idx_tasks_dependencies held 10,000 entries, and the lookup of the tasks waiting for an
-- ended one (end_tasks, once per ended task) read all of them, 0.23 ms per ended task and
-- growing with the table.
--
-- Each of these indexes now holds only the rows a search can find in it:
-- idx_tasks_dependencies the PENDING tasks that wait for others (the only rows end_tasks
-- looks for), idx_tasks_tags the tasks with tags, idx_tasks_metadata the tasks with
-- metadata. The queries repeat the predicate so the planner can use the partial index.
-- idx_subtasks_depends_on is dropped: no query searches depends_on by value (children
-- are found through their parent task), yet every subtask row version added an entry.
DROP INDEX IF EXISTS idx_tasks_dependencies;
CREATE INDEX idx_tasks_dependencies ON tasks USING GIN (dependencies)
  WHERE status = 'PENDING' AND cardinality(dependencies) > 0;

DROP INDEX IF EXISTS idx_tasks_tags;
CREATE INDEX idx_tasks_tags ON tasks USING GIN (tags) WHERE cardinality(tags) > 0;

DROP INDEX IF EXISTS idx_tasks_metadata;
CREATE INDEX idx_tasks_metadata ON tasks USING GIN (metadata jsonb_path_ops)
  WHERE metadata <> '{}'::jsonb;

DROP INDEX IF EXISTS idx_subtasks_depends_on;
