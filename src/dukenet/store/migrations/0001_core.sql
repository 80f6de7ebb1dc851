-- Phase 1, core tables: agents, agent_capabilities, agent_tags, trust_records, agent_ratings.
-- Follows DATABASE-SCHEMA.md with its deliberate production changes: TIMESTAMPTZ,
-- CHECK constraints on enumerated and ranged columns, required agent_ratings.task_id
-- (its foreign key is added in phase 2, once tasks exists).

CREATE TABLE agents (
  agent_id        VARCHAR(64) PRIMARY KEY CHECK (agent_id ~ '^[0-9a-f]{64}$'),
  public_key      TEXT NOT NULL UNIQUE,
  display_name    VARCHAR(255),
  description     TEXT,
  endpoint_url    TEXT CHECK (endpoint_url IS NULL OR endpoint_url ~* '^https?://'),
  status          VARCHAR(20) NOT NULL DEFAULT 'ACTIVE'
                  CHECK (status IN ('ACTIVE', 'INACTIVE', 'SUSPENDED')),
  created_at      TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  last_heartbeat  TIMESTAMPTZ,
  owner_address   VARCHAR(42) CHECK (owner_address IS NULL OR owner_address ~ '^0x[0-9a-fA-F]{40}$'),
  avatar_url      TEXT,
  trust_score     DECIMAL(5,2) NOT NULL DEFAULT 50.0 CHECK (trust_score BETWEEN 0 AND 100),
  version         VARCHAR(20),
  metadata        JSONB,
  -- added for the product
  audit_cid       TEXT,
  updated_at      TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  deregistered_at TIMESTAMPTZ
);
CREATE INDEX idx_agents_status ON agents(status);
CREATE INDEX idx_agents_trust_score ON agents(trust_score DESC);
CREATE INDEX idx_agents_last_heartbeat ON agents(last_heartbeat DESC);

CREATE TABLE agent_capabilities (
  capability_id   VARCHAR(64) PRIMARY KEY CHECK (capability_id ~ '^[0-9a-f]{64}$'),
  agent_id        VARCHAR(64) NOT NULL REFERENCES agents(agent_id) ON DELETE CASCADE,
  name            VARCHAR(255) NOT NULL,
  description     TEXT,
  version         VARCHAR(20),
  input_schema    JSONB NOT NULL,
  output_schema   JSONB NOT NULL,
  deprecated      BOOLEAN NOT NULL DEFAULT FALSE,
  pricing_model   VARCHAR(20) CHECK (pricing_model IN ('per_call', 'subscription', 'free')),
  price           DECIMAL(10,4) CHECK (price >= 0),
  currency        VARCHAR(10) NOT NULL DEFAULT 'USD',
  latency_p99_ms        INTEGER CHECK (latency_p99_ms > 0),
  availability_percent  DECIMAL(5,2) CHECK (availability_percent BETWEEN 0 AND 100),
  -- added for the product
  created_at      TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  updated_at      TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  CHECK (pricing_model IS DISTINCT FROM 'free' OR price IS NULL OR price = 0)
);
CREATE INDEX idx_capabilities_agent ON agent_capabilities(agent_id);
CREATE INDEX idx_capabilities_name ON agent_capabilities(name);
CREATE INDEX idx_capabilities_deprecated ON agent_capabilities(deprecated);

CREATE TABLE agent_tags (
  agent_id  VARCHAR(64) NOT NULL REFERENCES agents(agent_id) ON DELETE CASCADE,
  tag       VARCHAR(100) NOT NULL CHECK (tag = lower(btrim(tag)) AND tag <> ''),
  PRIMARY KEY (agent_id, tag)
);
CREATE INDEX idx_agent_tags_tag ON agent_tags(tag);

CREATE TABLE trust_records (
  record_id          SERIAL PRIMARY KEY,
  agent_id           VARCHAR(64) NOT NULL REFERENCES agents(agent_id) ON DELETE CASCADE,
  trust_score        DECIMAL(5,2) NOT NULL CHECK (trust_score BETWEEN 0 AND 100),
  reputation_score   DECIMAL(5,2) CHECK (reputation_score BETWEEN 0 AND 100),
  rating             DECIMAL(3,2) CHECK (rating BETWEEN 0 AND 5),
  total_ratings      INTEGER NOT NULL DEFAULT 0 CHECK (total_ratings >= 0),
  successful_transactions INTEGER NOT NULL DEFAULT 0 CHECK (successful_transactions >= 0),
  failed_transactions     INTEGER NOT NULL DEFAULT 0 CHECK (failed_transactions >= 0),
  uptime_30d         DECIMAL(5,2) CHECK (uptime_30d BETWEEN 0 AND 100),
  uptime_90d         DECIMAL(5,2) CHECK (uptime_90d BETWEEN 0 AND 100),
  uptime_all_time    DECIMAL(5,2) CHECK (uptime_all_time BETWEEN 0 AND 100),
  avg_latency_ms     INTEGER CHECK (avg_latency_ms >= 0),
  p99_latency_ms     INTEGER CHECK (p99_latency_ms >= 0),
  success_rate       DECIMAL(5,2) CHECK (success_rate BETWEEN 0 AND 100),
  verified_signer    BOOLEAN NOT NULL DEFAULT FALSE,
  rate_limited       BOOLEAN NOT NULL DEFAULT FALSE,
  fraud_flags        INTEGER NOT NULL DEFAULT 0 CHECK (fraud_flags >= 0),
  last_audit         TIMESTAMPTZ,
  updated_at         TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX idx_trust_agent ON trust_records(agent_id);
CREATE INDEX idx_trust_updated ON trust_records(agent_id, updated_at DESC);

CREATE TABLE agent_ratings (
  rating_id       SERIAL PRIMARY KEY,
  agent_id        VARCHAR(64) NOT NULL REFERENCES agents(agent_id) ON DELETE CASCADE,
  rater_agent_id  VARCHAR(64) NOT NULL REFERENCES agents(agent_id),
  task_id         UUID NOT NULL,
  rating          DECIMAL(3,2) NOT NULL CHECK (rating >= 0 AND rating <= 5),
  review          TEXT CHECK (review IS NULL OR char_length(review) <= 2000),
  created_at      TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  UNIQUE (agent_id, rater_agent_id, task_id),
  CHECK (agent_id <> rater_agent_id)
);
CREATE INDEX idx_ratings_agent ON agent_ratings(agent_id);
CREATE INDEX idx_ratings_rater ON agent_ratings(rater_agent_id);
