-- Orchestration: what the scheduler and workers need beyond the designed columns.

-- A task's money is in one currency (agents priced in another are not eligible), and a
-- repeated Idempotency-Key is matched against the hash of the body it first came with.
ALTER TABLE tasks
  ADD COLUMN currency     VARCHAR(10) NOT NULL DEFAULT 'USD',
  ADD COLUMN request_hash VARCHAR(64);

-- Per subtask: its place in the submitted list, the subtasks waiting for it (so completing
-- it finds them without a search), failed attempts that used up a retry (``attempt`` is the
-- fencing token and also counts attempts that did not fail), and the running attempt's
-- capability, quoted price and escrow hold.
ALTER TABLE subtasks
  ADD COLUMN position       INTEGER NOT NULL DEFAULT 0 CHECK (position >= 0),
  ADD COLUMN dependents     UUID[] NOT NULL DEFAULT '{}',
  ADD COLUMN failures       INTEGER NOT NULL DEFAULT 0 CHECK (failures >= 0),
  ADD COLUMN capability_id  VARCHAR(64),
  ADD COLUMN quoted_price   DECIMAL(10,4) CHECK (quoted_price >= 0),
  ADD COLUMN transaction_id UUID REFERENCES transactions(transaction_id);

-- Live counters of a task, one narrow row per task. Every transaction that changes a task's
-- subtasks updates this row, so:
--  * it serializes the decisions that need it (the last subtask completes the task; two
--    attempts may not both spend the last of the budget);
--  * ``version`` grows with every change, which orders the writes of the Redis status cache;
--  * execution-log rows are appended only while holding it, so a task's log ids grow in
--    commit order and `Last-Event-ID` resumption never skips a row.
CREATE TABLE task_progress (
  task_id       UUID PRIMARY KEY REFERENCES tasks(task_id) ON DELETE CASCADE,
  created_by    VARCHAR(64) NOT NULL,  -- copied from tasks: the status cache authorizes by it
  version       BIGINT NOT NULL DEFAULT 1,
  total         INTEGER NOT NULL CHECK (total >= 0),
  pending       INTEGER NOT NULL DEFAULT 0 CHECK (pending >= 0),
  ready         INTEGER NOT NULL DEFAULT 0 CHECK (ready >= 0),
  assigned      INTEGER NOT NULL DEFAULT 0 CHECK (assigned >= 0),
  running       INTEGER NOT NULL DEFAULT 0 CHECK (running >= 0),
  completed     INTEGER NOT NULL DEFAULT 0 CHECK (completed >= 0),
  failed        INTEGER NOT NULL DEFAULT 0 CHECK (failed >= 0),
  cancelled     INTEGER NOT NULL DEFAULT 0 CHECK (cancelled >= 0),
  cost_limit    DECIMAL(10,4) CHECK (cost_limit >= 0),
  spent_cost    DECIMAL(10,4) NOT NULL DEFAULT 0 CHECK (spent_cost >= 0),
  reserved_cost DECIMAL(10,4) NOT NULL DEFAULT 0 CHECK (reserved_cost >= 0),
  updated_at    TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  CHECK (pending + ready + assigned + running + completed + failed + cancelled = total),
  CHECK (cost_limit IS NULL OR spent_cost + reserved_cost <= cost_limit)
);

-- A result that arrived for an attempt that no longer holds the subtask is logged as IGNORED.
ALTER TABLE task_execution_log DROP CONSTRAINT task_execution_log_event_type_check;
ALTER TABLE task_execution_log ADD CONSTRAINT task_execution_log_event_type_check
  CHECK (event_type IN ('SUBMITTED', 'STARTED', 'READY', 'ASSIGNED', 'COMPLETED', 'FAILED',
                        'RETRYING', 'TIMEOUT', 'CANCELLED', 'IGNORED'));

-- Log rows carry the moment they were written, not the start of their transaction, so the
-- events of one transaction keep their order in time and latencies can be read from them.
ALTER TABLE task_execution_log ALTER COLUMN timestamp SET DEFAULT clock_timestamp();

-- Event pages and SSE resumption read one task's log in log_id order after a cursor.
CREATE INDEX idx_log_task_log_id ON task_execution_log (task_id, log_id);
-- The deadline sweeper looks only at open tasks that have a deadline.
CREATE INDEX idx_tasks_open_deadline ON tasks (deadline)
  WHERE status IN ('PENDING', 'EXECUTING') AND deadline IS NOT NULL;
-- A creator's tasks by status, newest first (GET /v1/tasks?status=).
CREATE INDEX idx_tasks_created_by_status ON tasks (created_by, status, created_at DESC);
