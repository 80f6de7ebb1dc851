-- Outbox of finished attempts for trust (as trust_pending_events is for registry events).
-- The transaction that finishes an attempt queues it here; a worker's trust feeder (or,
-- in a process without a worker, the same request right after its commit) claims rows with
-- SKIP LOCKED and records them with trust.events.record_attempts in a transaction of its
-- own. Recording trust in the outcome's own transaction locked the agent's trust rows until
-- that commit, so every commit that completed work for one agent waited for the previous
-- one (a popular agent serialized all of them); queued, an outcome commits at once and
-- nothing is lost if the process dies before its trust is recorded: the rows stay until a
-- feeder takes them. finished_at is when the outcome committed (trust weighs it by then).
CREATE TABLE trust_feedback (
  subtask_id      UUID NOT NULL,
  attempt         SMALLINT NOT NULL,
  agent_id        VARCHAR(64) NOT NULL,
  capability_id   VARCHAR(64),
  outcome         VARCHAR(9) NOT NULL CHECK (outcome IN ('success', 'failure', 'cancelled')),
  caused_by_agent BOOLEAN NOT NULL,
  latency_ms      INTEGER,
  finished_at     TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  PRIMARY KEY (subtask_id, attempt)
);
