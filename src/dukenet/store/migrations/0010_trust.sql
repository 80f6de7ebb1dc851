-- Trust and reputation (SPEC 5): finished attempts and their per-agent aggregates, the
-- value and audit record of each rating, fraud flags, owner-address proofs, rate-limit
-- events, EigenTrust results and the runs of the full recomputation.

-- A rating remembers what the rated agent was paid for the task (its value weight) and the
-- CID of the rating's audit record.
ALTER TABLE agent_ratings
  ADD COLUMN task_value DECIMAL(10,4) CHECK (task_value >= 0),
  ADD COLUMN audit_cid  TEXT;
-- An agent's ratings newest first (GET /v1/agents/{id}/ratings, per-agent recomputation).
CREATE INDEX idx_ratings_agent_created ON agent_ratings (agent_id, created_at DESC, rating_id DESC);

-- One row per finished subtask attempt, written by the orchestration engine in the same
-- transaction that finishes the attempt. Narrow on purpose (about 150 bytes a row, one
-- index): the per-agent aggregates below serve every read; this table is the evidence they
-- are rebuilt from. `value` is what the call was worth (the quoted price); failures count
-- against the agent only when `caused_by_agent` (timeouts, 5xx, schema violations).
CREATE TABLE agent_attempts (
  finished_at      TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  subtask_id       UUID NOT NULL REFERENCES subtasks(subtask_id) ON DELETE CASCADE,
  value            DECIMAL(10,4) NOT NULL DEFAULT 0 CHECK (value >= 0),
  latency_ms       INTEGER CHECK (latency_ms >= 0),
  declared_p99_ms  INTEGER CHECK (declared_p99_ms > 0),
  attempt          SMALLINT NOT NULL CHECK (attempt >= 0),
  caused_by_agent  BOOLEAN NOT NULL,
  outcome          VARCHAR(9) NOT NULL CHECK (outcome IN ('success', 'failure', 'cancelled')),
  agent_id         VARCHAR(64) NOT NULL REFERENCES agents(agent_id),
  capability_id    VARCHAR(64),
  PRIMARY KEY (subtask_id, attempt)
);

-- Per-agent aggregates of agent_attempts, updated by the same statement that records an
-- attempt, so a recomputation reads one row however long the agent's history is.
-- Time decay uses a fixed epoch: an event at time t adds weight * 2^((t - epoch)/half_life),
-- and the decayed total at time `now` is the sum times 2^(-(now - epoch)/half_life). The
-- epoch and half-life in force are in trust_stats_state; when the configured half-life or
-- value weighting changes, the full recomputation rebuilds these rows from agent_attempts.
CREATE TABLE trust_agent_stats (
  agent_id          VARCHAR(64) PRIMARY KEY REFERENCES agents(agent_id),
  successful        INTEGER NOT NULL DEFAULT 0 CHECK (successful >= 0),
  failed            INTEGER NOT NULL DEFAULT 0 CHECK (failed >= 0),
  success_weight    DOUBLE PRECISION NOT NULL DEFAULT 0,
  failure_weight    DOUBLE PRECISION NOT NULL DEFAULT 0,
  -- latency: calls with a declared p99 (and those within it), and all measured calls
  declared_weight   DOUBLE PRECISION NOT NULL DEFAULT 0,
  within_weight     DOUBLE PRECISION NOT NULL DEFAULT 0,
  measured          INTEGER NOT NULL DEFAULT 0 CHECK (measured >= 0),
  measured_weight   DOUBLE PRECISION NOT NULL DEFAULT 0,
  latency_weighted  DOUBLE PRECISION NOT NULL DEFAULT 0,
  latency_histogram DOUBLE PRECISION[] NOT NULL,
  -- failure-burst detector: caused failures and attempts in the current and previous window
  burst_window      BIGINT NOT NULL DEFAULT 0,
  burst_failures    INTEGER NOT NULL DEFAULT 0,
  burst_attempts    INTEGER NOT NULL DEFAULT 0,
  prev_failures     INTEGER NOT NULL DEFAULT 0,
  prev_attempts     INTEGER NOT NULL DEFAULT 0,
  last_attempt_at   TIMESTAMPTZ
);

-- The decay epoch and the parameters the aggregates were built with (one row).
CREATE TABLE trust_stats_state (
  singleton         BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
  epoch             TIMESTAMPTZ NOT NULL,
  half_life_days    DOUBLE PRECISION NOT NULL CHECK (half_life_days > 0),
  value_reference   DOUBLE PRECISION NOT NULL CHECK (value_reference > 0),
  value_floor       DOUBLE PRECISION NOT NULL CHECK (value_floor BETWEEN 0 AND 1),
  rebuilt_at        TIMESTAMPTZ
);
INSERT INTO trust_stats_state (epoch, half_life_days, value_reference, value_floor)
VALUES ('2025-01-01T00:00:00Z', 180, 1.0, 0.1);

-- Fraud signals. Each flag has a kind, a human-readable reason and its evidence; a
-- fingerprint names the evidence so the same finding is never raised twice, even after an
-- operator cleared it (new evidence gets a new fingerprint).
CREATE TABLE trust_fraud_flags (
  flag_id       BIGSERIAL PRIMARY KEY,
  agent_id      VARCHAR(64) NOT NULL REFERENCES agents(agent_id),
  kind          VARCHAR(20) NOT NULL
                CHECK (kind IN ('RATING_RING', 'SELF_DEALING', 'FAILURE_BURST')),
  fingerprint   TEXT NOT NULL,
  reason        TEXT NOT NULL CHECK (char_length(reason) <= 2000),
  evidence      JSONB NOT NULL DEFAULT '{}',
  created_at    TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  cleared_at    TIMESTAMPTZ,
  cleared_reason TEXT CHECK (cleared_reason IS NULL OR char_length(cleared_reason) <= 1000),
  UNIQUE (agent_id, fingerprint),
  CHECK ((cleared_at IS NULL) = (cleared_reason IS NULL))
);
CREATE INDEX idx_fraud_flags_open ON trust_fraud_flags (agent_id) WHERE cleared_at IS NULL;

-- EIP-191 proofs that an agent's owner_address belongs to its owner: `signature` over
-- `message` recovers to `owner_address`. A proof counts while it names the agent's current
-- owner_address.
CREATE TABLE agent_owner_proofs (
  agent_id      VARCHAR(64) PRIMARY KEY REFERENCES agents(agent_id),
  owner_address VARCHAR(42) NOT NULL CHECK (owner_address ~ '^0x[0-9a-fA-F]{40}$'),
  message       TEXT NOT NULL,
  signature     TEXT NOT NULL,
  proven_at     TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

-- When an agent was last refused with 429 (one row per agent, written at most once a minute).
CREATE TABLE trust_rate_limits (
  agent_id        VARCHAR(64) PRIMARY KEY REFERENCES agents(agent_id),
  last_limited_at TIMESTAMPTZ NOT NULL,
  times_limited   INTEGER NOT NULL DEFAULT 1 CHECK (times_limited > 0)
);

-- Runs of the full recomputation (EigenTrust, fraud scan, every agent's score).
CREATE TABLE trust_recompute_runs (
  run_id           BIGSERIAL PRIMARY KEY,
  started_at       TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  finished_at      TIMESTAMPTZ,
  agents           INTEGER NOT NULL DEFAULT 0,
  records_appended INTEGER NOT NULL DEFAULT 0,
  flags_raised     INTEGER NOT NULL DEFAULT 0,
  rebuilt_stats    BOOLEAN NOT NULL DEFAULT FALSE,
  details          JSONB NOT NULL DEFAULT '{}'
);

-- Network trust from the latest EigenTrust run: each agent's global trust (the vector sums
-- to 1 over all agents), the weight its ratings carry, and whether it was pre-trusted.
CREATE TABLE trust_network_scores (
  agent_id      VARCHAR(64) PRIMARY KEY REFERENCES agents(agent_id),
  global_trust  DOUBLE PRECISION NOT NULL CHECK (global_trust >= 0),
  rater_weight  DOUBLE PRECISION NOT NULL CHECK (rater_weight BETWEEN 0 AND 1),
  pre_trusted   BOOLEAN NOT NULL DEFAULT FALSE,
  run_id        BIGINT NOT NULL REFERENCES trust_recompute_runs(run_id)
);

-- Why each trust record was written (rating, attempt, heartbeat_expired, periodic, ...).
ALTER TABLE trust_records ADD COLUMN reason VARCHAR(40);
-- Trust history of one agent newest first, paged by record_id (GET ...?history=1).
CREATE INDEX idx_trust_agent_record ON trust_records (agent_id, record_id DESC);

-- Outbox of registry events that change trust (heartbeat expiry and revival, suspension and
-- reinstatement). A trigger on agent_status_changes queues them in the registry's own
-- transaction and wakes the trust event consumer with NOTIFY; the consumer claims rows with
-- SKIP LOCKED, so with several API processes each event is recomputed exactly once.
CREATE TABLE trust_pending_events (
  event_id   BIGSERIAL PRIMARY KEY,
  agent_id   VARCHAR(64) NOT NULL,
  reason     VARCHAR(40) NOT NULL,
  created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

CREATE FUNCTION dukenet_trust_status_event() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO trust_pending_events (agent_id, reason)
  VALUES (NEW.agent_id, CASE NEW.event WHEN 'HEARTBEAT' THEN 'heartbeat_revived'
                                       WHEN 'EXPIRED' THEN 'heartbeat_expired'
                                       ELSE lower(NEW.event) END);
  PERFORM pg_notify('dukenet_trust_events', NEW.agent_id);
  RETURN NULL;
END
$$;

CREATE TRIGGER trust_status_event AFTER INSERT ON agent_status_changes
FOR EACH ROW WHEN (NEW.event IN ('HEARTBEAT', 'EXPIRED', 'SUSPENDED', 'REINSTATED'))
EXECUTE FUNCTION dukenet_trust_status_event();
