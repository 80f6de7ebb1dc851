-- A subtask row is updated at least twice (claimed, then completed) and its task once
-- when it ends; each of these changes an indexed status, so none is a HOT update: every
-- new row version costs one entry in every index of the table (subtasks had eight, tasks
-- twelve), and every execution-log row one in each of the log's five.
--
-- Seven of these indexes serve no query that another index does not serve better:
-- idx_subtasks_parent (parent_task_id) is the prefix of subtasks_parent_task_id_name_key;
-- idx_tasks_created_by (created_by) the prefix of idx_tasks_created_by_created and of
-- idx_tasks_created_by_status, which the task listing uses; idx_log_task (task_id) the
-- prefix of idx_log_task_log_id, which the event pages and the audit record use.
-- idx_subtasks_status and idx_tasks_status split their tables into a few large parts:
-- the queries that need few rows of one status have partial indexes
-- (idx_subtasks_claimable for READY, idx_subtasks_leases for running attempts,
-- idx_tasks_open_deadline for open tasks with a deadline), and the listing filters a
-- creator's tasks by status through idx_tasks_created_by_status. No query filters or
-- sorts tasks by priority (idx_tasks_priority) or reads the log by subtask
-- (idx_log_subtask). Dropping the seven saves about eleven index entries per completed
-- single-subtask task.
DROP INDEX IF EXISTS idx_subtasks_parent;
DROP INDEX IF EXISTS idx_subtasks_status;
DROP INDEX IF EXISTS idx_tasks_created_by;
DROP INDEX IF EXISTS idx_tasks_status;
DROP INDEX IF EXISTS idx_tasks_priority;
DROP INDEX IF EXISTS idx_log_task;
DROP INDEX IF EXISTS idx_log_subtask;
