-- Registry: signed registration payloads, status history (with operator reasons) and
-- heartbeat history as uptime intervals.

-- Why the agent has its current status (the operator's reason for a suspension) and when
-- that status began. Registration counts as the first sign of life, so `last_heartbeat`
-- is set from the start and the sweeper never has to special-case NULL.
ALTER TABLE agents
  ADD COLUMN status_reason     TEXT CHECK (status_reason IS NULL OR char_length(status_reason) <= 1000),
  ADD COLUMN status_changed_at TIMESTAMPTZ NOT NULL DEFAULT NOW();

-- Sweeper: ACTIVE agents by heartbeat age.
CREATE INDEX idx_agents_active_heartbeat ON agents (last_heartbeat) WHERE status = 'ACTIVE';
-- Listing: newest first among registered (not deregistered) agents, keyset-paginated.
CREATE INDEX idx_agents_listing ON agents (created_at DESC, agent_id DESC)
  WHERE deregistered_at IS NULL;

-- The registration exactly as the agent signed it (public key, profile, timestamp,
-- signature). It is the agent's audit record; agents are never deleted, so neither is it.
CREATE TABLE agent_registrations (
  agent_id    VARCHAR(64) PRIMARY KEY REFERENCES agents(agent_id),
  payload     JSONB NOT NULL CHECK (jsonb_typeof(payload) = 'object' AND payload ? 'signature'),
  received_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

-- Every status transition: who made it and why (suspension reasons live here for good).
CREATE TABLE agent_status_changes (
  change_id   BIGSERIAL PRIMARY KEY,
  agent_id    VARCHAR(64) NOT NULL REFERENCES agents(agent_id),
  old_status  VARCHAR(20) CHECK (old_status IN ('ACTIVE', 'INACTIVE', 'SUSPENDED')),
  new_status  VARCHAR(20) NOT NULL CHECK (new_status IN ('ACTIVE', 'INACTIVE', 'SUSPENDED')),
  actor       VARCHAR(20) NOT NULL CHECK (actor IN ('agent', 'operator', 'sweeper')),
  event       VARCHAR(20) NOT NULL
              CHECK (event IN ('REGISTERED', 'HEARTBEAT', 'EXPIRED', 'SUSPENDED',
                               'REINSTATED', 'DEREGISTERED')),
  reason      TEXT CHECK (reason IS NULL OR char_length(reason) <= 1000),
  created_at  TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX idx_status_changes_agent ON agent_status_changes (agent_id, created_at DESC);

-- Heartbeat history, compactly: one row per unbroken stretch of liveness. A heartbeat
-- extends the open stretch to `now + heartbeat TTL`, or opens a new one if the previous
-- stretch already ended. Uptime over any window is the covered share of that window.
CREATE TABLE agent_uptime_intervals (
  agent_id   VARCHAR(64) NOT NULL REFERENCES agents(agent_id),
  started_at TIMESTAMPTZ NOT NULL,
  ended_at   TIMESTAMPTZ NOT NULL,
  PRIMARY KEY (agent_id, started_at),
  CHECK (ended_at >= started_at)
);
