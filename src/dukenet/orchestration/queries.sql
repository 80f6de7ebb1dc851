-- Queries of task orchestration. Every value is a bind parameter.
--
-- Lock order, followed by every transaction that changes a task, so they do not deadlock:
-- subtask rows (several at once: in subtask_id order) -> the task's task_progress row ->
-- balances (escrow holds, settlements and releases; see progress.lock_before_payment) ->
-- the tasks row. Claims take their subtask rows with SKIP LOCKED and never wait for them.

-- name: eligible_capabilities
-- Live capabilities of the given names: agent ACTIVE, registered, reachable, heartbeat
-- fresher than $2 seconds, trust at least $3 (the selection threshold); capability not
-- deprecated.
SELECT c.capability_id, c.agent_id, c.name, c.pricing_model, c.price, c.currency,
       c.latency_p99_ms, c.input_schema, a.trust_score, a.endpoint_url
FROM agent_capabilities c
JOIN agents a ON a.agent_id = c.agent_id
WHERE c.name = ANY($1::text[])
  AND NOT c.deprecated
  AND a.status = 'ACTIVE'
  AND a.deregistered_at IS NULL
  AND a.endpoint_url IS NOT NULL
  AND a.last_heartbeat >= NOW() - make_interval(secs => $2)
  AND a.trust_score >= $3

-- name: capability_output_schema
SELECT output_schema FROM agent_capabilities WHERE capability_id = $1

-- name: queue_feedback
-- Finished attempts for trust (feedback.queue); a repeat of one is queued once.
INSERT INTO trust_feedback (subtask_id, attempt, agent_id, capability_id, outcome,
                            caused_by_agent, latency_ms)
SELECT * FROM unnest($1::uuid[], $2::int[], $3::text[], $4::text[], $5::text[],
                     $6::boolean[], $7::int[])
ON CONFLICT (subtask_id, attempt) DO NOTHING

-- name: claim_feedback
-- Up to $1 queued attempts, oldest first, for one drain (feedback.drain).
DELETE FROM trust_feedback
WHERE (subtask_id, attempt) IN (
  SELECT subtask_id, attempt FROM trust_feedback ORDER BY finished_at LIMIT $1
  FOR UPDATE SKIP LOCKED)
RETURNING subtask_id, attempt, agent_id, capability_id, outcome, caused_by_agent, latency_ms,
          finished_at

-- name: claim_given_feedback
-- The given queued attempts ($1 subtask ids, $2 attempts) that are still queued.
DELETE FROM trust_feedback f
USING unnest($1::uuid[], $2::int[]) AS u(subtask_id, attempt)
WHERE f.subtask_id = u.subtask_id AND f.attempt = u.attempt
RETURNING f.subtask_id, f.attempt, f.agent_id, f.capability_id, f.outcome, f.caused_by_agent,
          f.latency_ms, f.finished_at

-- name: declared_latencies
-- The declared p99 latency of the capabilities whose attempts trust records.
SELECT capability_id, latency_p99_ms FROM agent_capabilities
WHERE capability_id = ANY($1::text[])

-- name: available_balance
SELECT available FROM balances WHERE agent_id = $1 AND currency = $2

-- ------------------------------------------------------------------------- submission

-- name: task_by_idempotency_key
SELECT task_id, request_hash FROM tasks WHERE created_by = $1 AND idempotency_key = $2

-- name: dependency_tasks
-- FOR SHARE: a dependency ending right now waits for this submission to commit, and then
-- finds the new task among those waiting for it.
SELECT task_id, status, created_by FROM tasks WHERE task_id = ANY($1::uuid[])
ORDER BY task_id
FOR SHARE

-- name: store_task
-- A whole submission in one statement: the task row, its subtasks (one row each; JSON
-- values and uuid arrays travel as text), its progress row and its first log rows, and
-- the NOTIFY ($44, on channel $45) that its READY subtasks wait for (delivered at
-- commit). When the Idempotency-Key won a race a moment ago the task row is not inserted
-- and neither is anything else: no row comes back. Otherwise the progress row comes back. The foreign
-- keys between the new rows are checked at the end of the statement, when all exist.
WITH task AS (
  INSERT INTO tasks (
    task_id, name, description, created_by, status, priority, deadline, timeout_seconds,
    started_at, input_schema, output_schema, actual_input, cost_limit, estimated_cost,
    currency, max_retries, backoff_strategy, tags, dependencies, metadata, idempotency_key,
    request_hash
  ) VALUES (
    $1, $2, $3, $4, $5, $6, $7, $8,
    CASE WHEN $5::varchar = 'EXECUTING' THEN NOW() END, $9, $10, $11, $12, $13, $14,
    $15, $16, $17, $18, $19, $20, $21
  )
  ON CONFLICT (created_by, idempotency_key) DO NOTHING
  RETURNING task_id, created_by, cost_limit
), stored_subtasks AS (
  INSERT INTO subtasks (
    subtask_id, parent_task_id, name, description, status, priority, depends_on, dependents,
    input, resolved_input, output_mapping, capability_name, constraints, pinned_agent_id,
    position, next_attempt_at
  )
  SELECT u.subtask_id, t.task_id, u.name, u.description, u.status, $22, u.depends_on::uuid[],
         u.dependents::uuid[], u.input::jsonb, u.resolved_input::jsonb,
         u.output_mapping::jsonb, u.capability_name, u.constraints::jsonb, u.pinned_agent_id,
         u.position, CASE WHEN u.status = 'READY' THEN NOW() END
  FROM task t,
       unnest($23::uuid[], $24::text[], $25::text[], $26::text[], $27::text[], $28::text[],
              $29::text[], $30::text[], $31::text[], $32::text[], $33::text[], $34::text[],
              $35::int[])
         AS u(subtask_id, name, description, status, depends_on, dependents, input,
              resolved_input, output_mapping, capability_name, constraints, pinned_agent_id,
              position)
), progress AS (
  INSERT INTO task_progress (task_id, created_by, total, pending, ready, cost_limit)
  SELECT t.task_id, t.created_by, $36, $37, $38, t.cost_limit FROM task t
  RETURNING *
), events AS (
  INSERT INTO task_execution_log (task_id, subtask_id, event_type, message, error_code, metadata)
  SELECT t.task_id, u.subtask_id, u.event_type, u.message, u.error_code, u.metadata::jsonb
  FROM task t,
       unnest($39::uuid[], $40::text[], $41::text[], $42::text[], $43::text[])
         WITH ORDINALITY AS u(subtask_id, event_type, message, error_code, metadata, n)
  ORDER BY u.n
)
SELECT p.*, CASE WHEN $44::bool THEN pg_notify($45, '') END AS notified
FROM progress p

-- --------------------------------------------------------------------------- progress

-- name: lock_progress
SELECT * FROM task_progress WHERE task_id = ANY($1::uuid[]) ORDER BY task_id FOR UPDATE

-- name: bump_progress
-- Applies counter deltas to locked rows; one version step per task and transaction.
UPDATE task_progress p SET
  version = p.version + 1,
  pending = p.pending + d.pending, ready = p.ready + d.ready,
  assigned = p.assigned + d.assigned, running = p.running + d.running,
  completed = p.completed + d.completed, failed = p.failed + d.failed,
  cancelled = p.cancelled + d.cancelled,
  spent_cost = p.spent_cost + d.spent, reserved_cost = p.reserved_cost + d.reserved,
  updated_at = NOW()
FROM unnest($1::uuid[], $2::int[], $3::int[], $4::int[], $5::int[], $6::int[], $7::int[],
            $8::int[], $9::numeric[], $10::numeric[])
  AS d(task_id, pending, ready, assigned, running, completed, failed, cancelled, spent, reserved)
WHERE p.task_id = d.task_id
RETURNING p.*

-- name: write_changes
-- Log rows in the given order, then the task rows' counters.
WITH events AS (
  INSERT INTO task_execution_log (task_id, subtask_id, event_type, message, error_code, metadata)
  SELECT u.task_id, u.subtask_id, u.event_type, u.message, u.error_code, u.metadata::jsonb
  FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[])
    WITH ORDINALITY AS u(task_id, subtask_id, event_type, message, error_code, metadata, n)
  ORDER BY u.n
)
UPDATE tasks t SET
  current_retries = t.current_retries + u.retries,
  actual_cost = t.actual_cost + u.cost,
  status = CASE WHEN u.started AND t.status = 'PENDING' THEN 'EXECUTING' ELSE t.status END,
  started_at = CASE WHEN u.started THEN COALESCE(t.started_at, NOW()) ELSE t.started_at END
FROM unnest($7::uuid[], $8::int[], $9::numeric[], $10::bool[])
  AS u(task_id, retries, cost, started)
WHERE t.task_id = u.task_id

-- name: flush_changes
-- bump_progress, then write_changes, in one statement: the main query updates (and so
-- locks) the progress rows; the other data-modifying parts run after it to completion,
-- so log ids are taken while the progress rows are held.
WITH progress AS (
  UPDATE task_progress p SET
    version = p.version + 1,
    pending = p.pending + d.pending, ready = p.ready + d.ready,
    assigned = p.assigned + d.assigned, running = p.running + d.running,
    completed = p.completed + d.completed, failed = p.failed + d.failed,
    cancelled = p.cancelled + d.cancelled,
    spent_cost = p.spent_cost + d.spent, reserved_cost = p.reserved_cost + d.reserved,
    updated_at = NOW()
  FROM unnest($1::uuid[], $2::int[], $3::int[], $4::int[], $5::int[], $6::int[], $7::int[],
              $8::int[], $9::numeric[], $10::numeric[])
    AS d(task_id, pending, ready, assigned, running, completed, failed, cancelled, spent, reserved)
  WHERE p.task_id = d.task_id
  RETURNING p.*
), events AS (
  INSERT INTO task_execution_log (task_id, subtask_id, event_type, message, error_code, metadata)
  SELECT u.task_id, u.subtask_id, u.event_type, u.message, u.error_code, u.metadata::jsonb
  FROM unnest($11::uuid[], $12::uuid[], $13::text[], $14::text[], $15::text[], $16::text[])
    WITH ORDINALITY AS u(task_id, subtask_id, event_type, message, error_code, metadata, n)
  ORDER BY u.n
), counters AS (
  UPDATE tasks t SET
    current_retries = t.current_retries + u.retries,
    actual_cost = t.actual_cost + u.cost,
    status = CASE WHEN u.started AND t.status = 'PENDING' THEN 'EXECUTING' ELSE t.status END,
    started_at = CASE WHEN u.started THEN COALESCE(t.started_at, NOW()) ELSE t.started_at END
  FROM unnest($17::uuid[], $18::int[], $19::numeric[], $20::bool[])
    AS u(task_id, retries, cost, started)
  WHERE t.task_id = u.task_id
)
SELECT * FROM progress

-- name: started_attempts
-- Not a statement: the CTE that progress.Changes.flush puts before flush_changes when a
-- claim starts attempts, so the attempts start in the statement that writes their
-- progress and log rows (subtask rows locked by claim_ready). Its parameters follow
-- flush_changes' twenty, per attempt: $21 subtask_id, $22 agent_id, $23 capability_id,
-- $24 price, $25 transaction_id; then $26 worker id, $27 lease seconds.
started AS (
  UPDATE subtasks s SET
    status = 'RUNNING', attempt = s.attempt + 1, assigned_agent_id = u.agent_id,
    capability_id = u.capability_id, quoted_price = u.price, transaction_id = u.transaction_id,
    claimed_by = $26, lease_expires_at = NOW() + make_interval(secs => $27),
    started_at = COALESCE(s.started_at, NOW()), error_code = NULL, error = NULL
  FROM unnest($21::uuid[], $22::text[], $23::text[], $24::numeric[], $25::uuid[])
    AS u(subtask_id, agent_id, capability_id, price, transaction_id)
  WHERE s.subtask_id = u.subtask_id
)

-- name: notify_ready
-- $1 the channel the workers listen on (engine.READY_CHANNEL)
SELECT pg_notify($1, '')

-- ---------------------------------------------------------------------------- claims

-- name: ready_queue
-- Not a statement: the first CTE of a claim (claims.CLAIM_READY): a batch of READY
-- subtasks whose time has come, most urgent first, on the partial index.
claimed AS MATERIALIZED (
  SELECT subtask_id, parent_task_id FROM subtasks
  WHERE status = 'READY' AND next_attempt_at <= NOW()
  ORDER BY priority DESC, next_attempt_at, created_at
  LIMIT $1
  FOR UPDATE SKIP LOCKED
)

-- name: given_ready
-- Not a statement: the first CTE of a claim of given subtasks (claims.CLAIM_GIVEN), those
-- of $2 still READY and due, most urgent first: the recorder claims the subtasks its own
-- transaction just made READY (it holds their rows already).
claimed AS MATERIALIZED (
  SELECT subtask_id, parent_task_id FROM subtasks
  WHERE subtask_id = ANY($2::uuid[]) AND status = 'READY' AND next_attempt_at <= NOW()
  ORDER BY priority DESC, next_attempt_at, created_at
  LIMIT $1
  FOR UPDATE SKIP LOCKED
)

-- name: claim_rows
-- Not a statement: the rest of a claim after its ``claimed`` CTE: the claimed subtasks
-- with their tasks' progress rows locked in id order (the budget left to spend).
progress AS MATERIALIZED (
  SELECT task_id, cost_limit, spent_cost, reserved_cost FROM task_progress
  WHERE task_id IN (SELECT parent_task_id FROM claimed)
  ORDER BY task_id
  FOR UPDATE
)
SELECT s.subtask_id, s.parent_task_id, s.name, s.capability_name, s.constraints,
       s.pinned_agent_id, s.resolved_input, s.attempt, s.failures, s.last_failed_agent_id,
       t.created_by, t.deadline, t.timeout_seconds, t.max_retries, t.backoff_strategy,
       t.currency, p.cost_limit, p.spent_cost, p.reserved_cost
FROM claimed c
JOIN subtasks s ON s.subtask_id = c.subtask_id
JOIN tasks t ON t.task_id = s.parent_task_id
JOIN progress p ON p.task_id = s.parent_task_id
ORDER BY s.priority DESC, s.next_attempt_at, s.created_at

-- name: next_ready_at
SELECT MIN(next_attempt_at) FROM subtasks WHERE status = 'READY'

-- name: defer_attempts
-- No eligible agent right now: stays READY, tried again after its backoff.
UPDATE subtasks s SET
  attempt = s.attempt + 1, failures = s.failures + u.counted,
  next_attempt_at = NOW() + make_interval(secs => u.delay),
  error_code = $4, error = $5
FROM unnest($1::uuid[], $2::int[], $3::float8[]) AS u(subtask_id, counted, delay)
WHERE s.subtask_id = u.subtask_id
RETURNING s.subtask_id, s.attempt, s.next_attempt_at

-- name: renew_leases
-- SKIP LOCKED: a row locked right now is being completed, failed or cancelled; it is
-- looked at again (still_held) rather than waited for.
WITH locked AS (
  SELECT s.subtask_id FROM subtasks s
  JOIN unnest($1::uuid[], $2::int[]) AS u(subtask_id, attempt)
    ON s.subtask_id = u.subtask_id AND s.attempt = u.attempt
  WHERE s.status = 'RUNNING' AND s.claimed_by = $3
  ORDER BY s.subtask_id
  FOR UPDATE OF s SKIP LOCKED
)
UPDATE subtasks s SET lease_expires_at = NOW() + make_interval(secs => $4)
FROM locked WHERE s.subtask_id = locked.subtask_id
RETURNING s.subtask_id

-- name: still_held
SELECT s.subtask_id FROM subtasks s
JOIN unnest($1::uuid[], $2::int[]) AS u(subtask_id, attempt)
  ON s.subtask_id = u.subtask_id AND s.attempt = u.attempt
WHERE s.status = 'RUNNING' AND s.claimed_by = $3

-- name: accept_attempt
-- The agent answered 202: it owns the attempt until the attempt's timeout, and the
-- worker stops renewing the lease.
UPDATE subtasks SET claimed_by = NULL, lease_expires_at = NOW() + make_interval(secs => $3)
WHERE subtask_id = $1 AND attempt = $2 AND status = 'RUNNING'
RETURNING subtask_id

-- ------------------------------------------------------------------- attempt outcomes

-- name: running_attempt
-- The attempt's subtask, locked, if that attempt still holds it.
SELECT s.subtask_id, s.parent_task_id, s.name, s.attempt, s.failures, s.assigned_agent_id,
       s.capability_id, s.quoted_price, s.transaction_id, s.dependents, s.lease_expires_at,
       s.claimed_by, s.status,
       t.created_by, t.deadline, t.max_retries, t.backoff_strategy, t.currency
FROM subtasks s JOIN tasks t ON t.task_id = s.parent_task_id
WHERE s.subtask_id = $1 AND s.attempt = $2 AND s.status = 'RUNNING'
FOR UPDATE OF s

-- name: lock_ready
SELECT subtask_id, parent_task_id, name FROM subtasks
WHERE subtask_id = $1 AND attempt = $2 AND status = 'READY'
FOR UPDATE

-- name: set_transaction
UPDATE subtasks SET transaction_id = $2 WHERE subtask_id = $1

-- name: subtask_owner
SELECT s.subtask_id, s.parent_task_id, s.assigned_agent_id, s.attempt, s.status,
       s.capability_id, s.quoted_price
FROM subtasks s WHERE s.subtask_id = $1

-- name: complete_subtasks
-- Fenced by (subtask_id, attempt): only attempts that still hold their subtask complete.
-- The cost is what the agent charged, else the quoted price.
UPDATE subtasks s SET status = 'COMPLETED', output = u.output::jsonb,
  cost = COALESCE(u.cost, s.quoted_price, 0), completed_at = NOW(),
  lease_expires_at = NULL, claimed_by = NULL
FROM unnest($1::uuid[], $2::int[], $3::text[], $4::numeric[])
  AS u(subtask_id, attempt, output, cost), tasks t
WHERE s.subtask_id = u.subtask_id AND s.attempt = u.attempt AND s.status = 'RUNNING'
  AND t.task_id = s.parent_task_id
RETURNING s.subtask_id, s.parent_task_id, s.name, s.attempt, s.dependents, s.transaction_id,
  s.quoted_price, s.assigned_agent_id, s.capability_id, s.cost, t.created_by, t.currency

-- name: retry_subtask
UPDATE subtasks SET status = 'READY', failures = failures + $2,
  next_attempt_at = NOW() + make_interval(secs => $3), last_failed_agent_id = assigned_agent_id,
  error_code = $4, error = $5, lease_expires_at = NULL, claimed_by = NULL,
  transaction_id = NULL, quoted_price = NULL
WHERE subtask_id = $1
RETURNING next_attempt_at

-- name: fail_subtask
UPDATE subtasks SET status = 'FAILED', failures = failures + $2, completed_at = NOW(),
  error_code = $3, error = $4, lease_expires_at = NULL, claimed_by = NULL,
  last_failed_agent_id = COALESCE(assigned_agent_id, last_failed_agent_id)
WHERE subtask_id = $1


-- name: lock_waiting_dependents
-- Subtasks waiting for a completed one, locked in id order before their other
-- dependencies are checked (so of two completing siblings, the later one sees the other).
SELECT subtask_id FROM subtasks
WHERE subtask_id = ANY($1::uuid[]) AND status = 'PENDING'
ORDER BY subtask_id
FOR UPDATE

-- name: unblocked_subtasks
-- Of the given PENDING subtasks, those whose every dependency completed, with what their
-- references need.
SELECT d.subtask_id, d.parent_task_id, d.name, d.input, d.position
FROM subtasks d
WHERE d.subtask_id = ANY($1::uuid[])
  AND NOT EXISTS (
    SELECT 1 FROM subtasks u WHERE u.subtask_id = ANY(d.depends_on) AND u.status <> 'COMPLETED'
  )
ORDER BY d.parent_task_id, d.position

-- name: subtask_outputs
SELECT s.parent_task_id, s.name, s.output
FROM unnest($1::uuid[], $2::text[]) AS u(task_id, name)
JOIN subtasks s ON s.parent_task_id = u.task_id AND s.name = u.name

-- name: task_inputs
SELECT task_id, actual_input FROM tasks WHERE task_id = ANY($1::uuid[])

-- name: make_ready
UPDATE subtasks s SET status = 'READY', resolved_input = u.resolved_input::jsonb,
  next_attempt_at = NOW()
FROM unnest($1::uuid[], $2::text[]) AS u(subtask_id, resolved_input)
WHERE s.subtask_id = u.subtask_id

-- name: task_input
SELECT actual_input FROM tasks WHERE task_id = $1


-- ---------------------------------------------------------------------- task endings

-- name: lock_open_subtasks
SELECT subtask_id, status, transaction_id, quoted_price FROM subtasks
WHERE parent_task_id = $1 AND status IN ('PENDING', 'READY', 'ASSIGNED', 'RUNNING')
ORDER BY subtask_id
FOR UPDATE

-- name: cancel_subtasks
UPDATE subtasks SET status = 'CANCELLED', completed_at = NOW(), error_code = $2,
  lease_expires_at = NULL, claimed_by = NULL
WHERE subtask_id = ANY($1::uuid[])

-- name: lock_tasks
SELECT *, NOW() AS now FROM tasks WHERE task_id = ANY($1::uuid[]) ORDER BY task_id FOR UPDATE

-- name: end_tasks
-- Ends the tasks and returns the PENDING tasks that wait for them.
WITH ended AS (
  UPDATE tasks t SET status = u.status, error_code = u.code, error = u.message,
    actual_output = u.output::jsonb, audit_cid = u.cid, completed_at = NOW(),
    started_at = COALESCE(t.started_at, NOW())
  FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
    AS u(task_id, status, code, message, output, cid)
  WHERE t.task_id = u.task_id
  RETURNING t.task_id
)
-- (the first two conditions are idx_tasks_dependencies' predicate, see migration 0016)
SELECT w.task_id, e.task_id AS dependency
FROM ended e JOIN tasks w
  ON w.status = 'PENDING' AND cardinality(w.dependencies) > 0
 AND w.dependencies @> ARRAY[e.task_id]
ORDER BY w.task_id

-- name: unfinished_dependencies
SELECT COUNT(*) FROM tasks t, (SELECT dependencies FROM tasks WHERE task_id = $1) w
WHERE t.task_id = ANY(w.dependencies) AND t.status <> 'COMPLETED'

-- name: lock_pending_roots
SELECT subtask_id, name, input, position FROM subtasks
WHERE parent_task_id = $1 AND status = 'PENDING' AND cardinality(depends_on) = 0
ORDER BY subtask_id
FOR UPDATE

-- name: overdue_tasks
SELECT task_id FROM tasks
WHERE status IN ('PENDING', 'EXECUTING') AND deadline IS NOT NULL AND deadline <= NOW()
ORDER BY deadline
LIMIT $1

-- name: expired_leases
SELECT subtask_id, attempt FROM subtasks
WHERE status IN ('ASSIGNED', 'RUNNING') AND lease_expires_at < NOW()
ORDER BY lease_expires_at
LIMIT $1

-- ------------------------------------------------------------------------------ reads

-- name: get_task
SELECT t.*, p.pending, p.ready, p.assigned, p.running, p.completed, p.failed, p.cancelled,
       p.total, p.version, p.reserved_cost, p.spent_cost
FROM tasks t LEFT JOIN task_progress p ON p.task_id = t.task_id
WHERE t.task_id = $1

-- name: task_status
SELECT p.*, t.status, t.error_code
FROM tasks t JOIN task_progress p ON p.task_id = t.task_id
WHERE t.task_id = $1

-- name: task_owner
SELECT task_id, created_by, status FROM tasks WHERE task_id = $1

-- name: task_state
SELECT status FROM tasks WHERE task_id = $1

-- name: task_subtasks
SELECT * FROM subtasks WHERE parent_task_id = $1 AND position >= $2
ORDER BY position LIMIT $3

-- name: task_events
SELECT log_id, task_id, subtask_id, event_type, message, error_code, timestamp, metadata
FROM task_execution_log
WHERE task_id = $1 AND log_id > $2
ORDER BY log_id
LIMIT $3

-- name: list_tasks
-- The caller's tasks, newest first, optionally by status and tag, after a keyset cursor.
SELECT t.*, p.pending, p.ready, p.assigned, p.running, p.completed, p.failed, p.cancelled,
       p.total, p.version, p.reserved_cost, p.spent_cost
FROM tasks t LEFT JOIN task_progress p ON p.task_id = t.task_id
WHERE t.created_by = $1
  AND ($2::text IS NULL OR t.status = $2)
  AND ($3::text IS NULL OR (cardinality(t.tags) > 0 AND t.tags @> ARRAY[$3::text]))
  AND ($4::timestamptz IS NULL OR (t.created_at, t.task_id) < ($4, $5::uuid))
ORDER BY t.created_at DESC, t.task_id DESC
LIMIT $6

-- name: audit_subtasks
SELECT parent_task_id, subtask_id, name, capability_name, status, assigned_agent_id,
       capability_id, attempt, failures, cost, input, resolved_input, output, started_at,
       completed_at, error_code, error, depends_on, transaction_id, output_mapping
FROM subtasks WHERE parent_task_id = ANY($1::uuid[]) ORDER BY parent_task_id, position

-- name: audit_events
SELECT task_id, log_id, subtask_id, event_type, message, error_code, timestamp, metadata
FROM task_execution_log WHERE task_id = ANY($1::uuid[]) ORDER BY task_id, log_id
