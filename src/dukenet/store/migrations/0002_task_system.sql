-- Phase 2, task system: tasks, subtasks, task_execution_log (range-partitioned by month).

CREATE TABLE tasks (
  task_id          UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  name             VARCHAR(255) NOT NULL,
  description      TEXT,
  created_by       VARCHAR(64) NOT NULL REFERENCES agents(agent_id),
  created_at       TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  status           VARCHAR(20) NOT NULL DEFAULT 'PENDING'
                   CHECK (status IN ('PENDING', 'EXECUTING', 'COMPLETED', 'FAILED', 'CANCELLED')),
  priority         VARCHAR(10) NOT NULL DEFAULT 'NORMAL'
                   CHECK (priority IN ('LOW', 'NORMAL', 'HIGH')),
  deadline         TIMESTAMPTZ,
  timeout_seconds  INTEGER CHECK (timeout_seconds > 0),
  started_at       TIMESTAMPTZ,
  completed_at     TIMESTAMPTZ,
  input_schema     JSONB NOT NULL,
  output_schema    JSONB NOT NULL,
  actual_input     JSONB,
  actual_output    JSONB,
  cost_limit       DECIMAL(10,4) CHECK (cost_limit >= 0),
  estimated_cost   DECIMAL(10,4) CHECK (estimated_cost >= 0),
  actual_cost      DECIMAL(10,4) NOT NULL DEFAULT 0 CHECK (actual_cost >= 0),
  max_retries      INTEGER NOT NULL DEFAULT 3 CHECK (max_retries BETWEEN 0 AND 100),
  current_retries  INTEGER NOT NULL DEFAULT 0 CHECK (current_retries >= 0),
  backoff_strategy VARCHAR(20) NOT NULL DEFAULT 'exponential'
                   CHECK (backoff_strategy IN ('exponential', 'linear', 'fixed')),
  tags             TEXT[],
  dependencies     UUID[],
  metadata         JSONB,
  -- added for the product
  idempotency_key  VARCHAR(255),
  error_code       VARCHAR(50),
  error            TEXT,
  audit_cid        TEXT,
  UNIQUE (created_by, idempotency_key),
  CHECK (cost_limit IS NULL OR actual_cost <= cost_limit)
);
CREATE INDEX idx_tasks_status ON tasks(status);
CREATE INDEX idx_tasks_created_by ON tasks(created_by);
CREATE INDEX idx_tasks_created_at ON tasks(created_at DESC);
CREATE INDEX idx_tasks_priority ON tasks(priority);

ALTER TABLE agent_ratings
  ADD CONSTRAINT agent_ratings_task_id_fkey FOREIGN KEY (task_id) REFERENCES tasks(task_id);

CREATE TABLE subtasks (
  subtask_id        UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  parent_task_id    UUID NOT NULL REFERENCES tasks(task_id) ON DELETE CASCADE,
  name              VARCHAR(255) NOT NULL,
  description       TEXT,
  assigned_agent_id VARCHAR(64) REFERENCES agents(agent_id),
  status            VARCHAR(20) NOT NULL DEFAULT 'PENDING'
                    CHECK (status IN ('PENDING', 'READY', 'ASSIGNED', 'RUNNING',
                                      'COMPLETED', 'FAILED', 'CANCELLED')),
  priority          INTEGER NOT NULL DEFAULT 1 CHECK (priority BETWEEN 0 AND 2),
  depends_on        UUID[],
  started_at        TIMESTAMPTZ,
  completed_at      TIMESTAMPTZ,
  input             JSONB NOT NULL,
  output            JSONB,
  output_mapping    JSONB,
  cost              DECIMAL(10,4) NOT NULL DEFAULT 0 CHECK (cost >= 0),
  created_at        TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  -- added for the product
  capability_name   VARCHAR(255) NOT NULL,
  constraints       JSONB,
  pinned_agent_id   VARCHAR(64) REFERENCES agents(agent_id),
  resolved_input    JSONB,
  attempt           INTEGER NOT NULL DEFAULT 0 CHECK (attempt >= 0),
  next_attempt_at   TIMESTAMPTZ,
  lease_expires_at  TIMESTAMPTZ,
  claimed_by        VARCHAR(255),
  last_failed_agent_id VARCHAR(64),
  error_code        VARCHAR(50),
  error             TEXT,
  UNIQUE (parent_task_id, name)
);
CREATE INDEX idx_subtasks_parent ON subtasks(parent_task_id);
CREATE INDEX idx_subtasks_status ON subtasks(status);

CREATE TABLE task_execution_log (
  log_id      BIGSERIAL,
  task_id     UUID NOT NULL REFERENCES tasks(task_id) ON DELETE CASCADE,
  subtask_id  UUID REFERENCES subtasks(subtask_id) ON DELETE CASCADE,
  event_type  VARCHAR(50) NOT NULL
              CHECK (event_type IN ('SUBMITTED', 'STARTED', 'READY', 'ASSIGNED', 'COMPLETED',
                                    'FAILED', 'RETRYING', 'TIMEOUT', 'CANCELLED')),
  message     TEXT,
  error_code  VARCHAR(50),
  timestamp   TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  metadata    JSONB,
  PRIMARY KEY (log_id, timestamp)
) PARTITION BY RANGE (timestamp);
CREATE INDEX idx_log_task ON task_execution_log(task_id);
CREATE INDEX idx_log_timestamp ON task_execution_log(timestamp DESC);

-- Rows outside every monthly partition land here instead of being refused.
CREATE TABLE task_execution_log_default PARTITION OF task_execution_log DEFAULT;

-- Creates the monthly partitions from the current month through `months_ahead` months
-- later. Rows already parked in the DEFAULT partition for a new month are moved into it
-- in the same transaction, so creating a partition never fails and never loses a row.
CREATE FUNCTION dukenet_ensure_log_partitions(months_ahead INTEGER DEFAULT 3)
RETURNS INTEGER LANGUAGE plpgsql AS $$
DECLARE
  month_start DATE;
  month_end   DATE;
  part_name   TEXT;
  created     INTEGER := 0;
BEGIN
  FOR i IN 0..months_ahead LOOP
    month_start := (date_trunc('month', NOW() AT TIME ZONE 'UTC') + make_interval(months => i))::date;
    month_end   := (month_start + INTERVAL '1 month')::date;
    part_name   := format('task_execution_log_%s', to_char(month_start, 'YYYY_MM'));
    IF to_regclass(part_name) IS NULL THEN
      EXECUTE format('CREATE TABLE %I (LIKE task_execution_log INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                     part_name);
      EXECUTE format(
        'WITH moved AS (DELETE FROM task_execution_log_default
                         WHERE timestamp >= %L::timestamptz AND timestamp < %L::timestamptz
                         RETURNING *)
         INSERT INTO %I SELECT * FROM moved',
        month_start::text || ' 00:00:00+00', month_end::text || ' 00:00:00+00', part_name);
      EXECUTE format('ALTER TABLE task_execution_log ATTACH PARTITION %I
                      FOR VALUES FROM (%L) TO (%L)',
                     part_name, month_start::text || ' 00:00:00+00', month_end::text || ' 00:00:00+00');
      created := created + 1;
    END IF;
  END LOOP;
  RETURN created;
END;
$$;

SELECT dukenet_ensure_log_partitions(3);
