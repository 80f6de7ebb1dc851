-- Registry queries. Every value is a bind parameter.

-- name: register_agent
-- One statement writes the agent, its signed payload, its first status change, its first
-- uptime stretch and its tags. Nothing is written on a key conflict (no row comes back and
-- the caller answers AGENT_EXISTS). Registration counts as the first heartbeat.
-- $1 agent_id, $2 public_key, $3 display_name, $4 description, $5 endpoint_url,
-- $6 owner_address, $7 avatar_url, $8 version, $9 metadata, $10 signed payload,
-- $11 heartbeat ttl seconds, $12 tags,
-- $13 audit record CID, $14 its block bytes, $15 its links, $16 its path.
-- The registration's audit record is stored here too, as audit's store_record stores a
-- record (block, path, log queue entry; see audit.trail.first_registration_record), so a
-- registration without capabilities is one autocommitted statement: one round trip.
WITH agent AS (
  INSERT INTO agents (agent_id, public_key, display_name, description, endpoint_url,
                      owner_address, avatar_url, version, metadata, last_heartbeat, audit_cid)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NOW(), $13)
  ON CONFLICT DO NOTHING
  RETURNING agent_id, created_at, trust_score
), block AS (
  INSERT INTO audit_blocks (cid, data, links) SELECT $13, $14, $15::text[] FROM agent
  ON CONFLICT (cid) DO NOTHING
  RETURNING cid
), audit_path AS (
  INSERT INTO audit_paths (path, cid) SELECT $16, $13 FROM agent
), queued AS (
  INSERT INTO audit_log_queue (cid) SELECT cid FROM block
), registration AS (
  INSERT INTO agent_registrations (agent_id, payload) SELECT agent_id, $10 FROM agent
), status_change AS (
  INSERT INTO agent_status_changes (agent_id, old_status, new_status, actor, event)
  SELECT agent_id, NULL, 'ACTIVE', 'agent', 'REGISTERED' FROM agent
), uptime AS (
  INSERT INTO agent_uptime_intervals (agent_id, started_at, ended_at)
  SELECT agent_id, created_at, created_at + make_interval(secs => $11::float8) FROM agent
), tags AS (
  INSERT INTO agent_tags (agent_id, tag) SELECT agent.agent_id, tag
  FROM agent, unnest($12::text[]) AS tag
)
SELECT agent_id, created_at, trust_score FROM agent;

-- name: get_registration
SELECT r.agent_id, r.payload, r.received_at, a.audit_cid
FROM agent_registrations r JOIN agents a USING (agent_id)
WHERE r.agent_id = $1;

-- name: record_status_change
-- $1 agent_id, $2 old_status, $3 new_status, $4 actor, $5 event, $6 reason
INSERT INTO agent_status_changes (agent_id, old_status, new_status, actor, event, reason)
VALUES ($1, $2, $3, $4, $5, $6);

-- name: get_agent
-- The agent resource: profile, sorted tags and seconds of uptime inside each window.
-- $1 agent_id
SELECT a.agent_id, a.public_key, a.display_name, a.description, a.endpoint_url, a.status,
       a.status_reason, a.created_at, a.updated_at, a.last_heartbeat, a.owner_address,
       a.avatar_url, a.trust_score, a.version, a.metadata, a.audit_cid,
       COALESCE((SELECT array_agg(t.tag ORDER BY t.tag) FROM agent_tags t
                 WHERE t.agent_id = a.agent_id), '{}') AS tags,
       NOW() AS measured_at, u.up_30d, u.up_90d, u.up_all
FROM agents a
CROSS JOIN LATERAL dukenet_agent_uptime(a.agent_id, a.created_at) u
WHERE a.agent_id = $1 AND a.deregistered_at IS NULL;

-- name: list_agents
-- $1 status or NULL, $2 tags (all of) or NULL, $3 min_trust or NULL,
-- $4/$5 cursor (created_at, agent_id) or NULL, $6 limit
SELECT a.agent_id, a.public_key, a.display_name, a.description, a.endpoint_url, a.status,
       a.status_reason, a.created_at, a.updated_at, a.last_heartbeat, a.owner_address,
       a.avatar_url, a.trust_score, a.version, a.metadata, a.audit_cid,
       COALESCE((SELECT array_agg(t.tag ORDER BY t.tag) FROM agent_tags t
                 WHERE t.agent_id = a.agent_id), '{}') AS tags,
       NOW() AS measured_at, u.up_30d, u.up_90d, u.up_all
FROM agents a
CROSS JOIN LATERAL dukenet_agent_uptime(a.agent_id, a.created_at) u
WHERE a.deregistered_at IS NULL
  AND ($1::text IS NULL OR a.status = $1)
  AND ($2::text[] IS NULL OR a.agent_id IN (
        SELECT t.agent_id FROM agent_tags t WHERE t.tag = ANY($2::text[])
        GROUP BY t.agent_id HAVING count(*) = cardinality($2::text[])))
  AND ($3::numeric IS NULL OR a.trust_score >= $3)
  AND ($4::timestamptz IS NULL OR (a.created_at, a.agent_id) < ($4, $5::text))
ORDER BY a.created_at DESC, a.agent_id DESC
LIMIT $6;

-- name: lock_agent
-- The registered agent's row, locked for a state change. $1 agent_id
SELECT agent_id, status, last_heartbeat, NOW() AS now FROM agents
WHERE agent_id = $1 AND deregistered_at IS NULL
FOR UPDATE;

-- name: agent_status
SELECT status FROM agents WHERE agent_id = $1 AND deregistered_at IS NULL;

-- name: agent_public_key
SELECT public_key, status FROM agents WHERE agent_id = $1 AND deregistered_at IS NULL;

-- name: update_agent
-- $1 agent_id; $2..$8 new values; $9 the names of the fields to change (others keep theirs)
UPDATE agents SET
  display_name  = CASE WHEN 'display_name'  = ANY($9::text[]) THEN $2 ELSE display_name END,
  description   = CASE WHEN 'description'   = ANY($9::text[]) THEN $3 ELSE description END,
  endpoint_url  = CASE WHEN 'endpoint_url'  = ANY($9::text[]) THEN $4 ELSE endpoint_url END,
  owner_address = CASE WHEN 'owner_address' = ANY($9::text[]) THEN $5 ELSE owner_address END,
  avatar_url    = CASE WHEN 'avatar_url'    = ANY($9::text[]) THEN $6 ELSE avatar_url END,
  version       = CASE WHEN 'version'       = ANY($9::text[]) THEN $7 ELSE version END,
  metadata      = CASE WHEN 'metadata'      = ANY($9::text[]) THEN $8::jsonb ELSE metadata END,
  updated_at    = NOW()
WHERE agent_id = $1 AND deregistered_at IS NULL;

-- name: set_status
-- $1 agent_id, $2 status, $3 reason
UPDATE agents SET status = $2, status_reason = $3, status_changed_at = NOW(), updated_at = NOW()
WHERE agent_id = $1;

-- name: deregister_agent
UPDATE agents SET status = 'INACTIVE', deregistered_at = NOW(), status_changed_at = NOW(),
                  status_reason = NULL, updated_at = NOW()
WHERE agent_id = $1;

-- name: delete_agent_capabilities
DELETE FROM agent_capabilities WHERE agent_id = $1;

-- name: delete_agent_tags
DELETE FROM agent_tags WHERE agent_id = $1;

-- name: insert_tags
INSERT INTO agent_tags (agent_id, tag) SELECT $1, unnest($2::text[]);

-- name: touch_agent
UPDATE agents SET updated_at = NOW() WHERE agent_id = $1;

-- name: insert_capability
-- Nothing on conflict: the caller turns "no row" into CAPABILITY_EXISTS.
INSERT INTO agent_capabilities (capability_id, agent_id, name, description, version,
    input_schema, output_schema, deprecated, pricing_model, price, currency,
    latency_p99_ms, availability_percent)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
ON CONFLICT (capability_id) DO NOTHING
RETURNING capability_id, agent_id, name, version, description, input_schema, output_schema,
          deprecated, pricing_model, price, currency, latency_p99_ms,
          availability_percent::float8 AS availability_percent, created_at, updated_at;

-- name: get_capability
SELECT capability_id, agent_id, name, version, description, input_schema, output_schema,
       deprecated, pricing_model, price, currency, latency_p99_ms,
       availability_percent::float8 AS availability_percent, created_at, updated_at
FROM agent_capabilities WHERE capability_id = $1;

-- name: lock_capability
SELECT capability_id, agent_id, name, version, description, input_schema, output_schema,
       deprecated, pricing_model, price, currency, latency_p99_ms,
       availability_percent, created_at, updated_at
FROM agent_capabilities WHERE capability_id = $1
FOR UPDATE;

-- name: list_capabilities
-- $1 agent_id, $2 include deprecated, $3/$4 cursor (name, capability_id) or NULL, $5 limit
SELECT capability_id, agent_id, name, version, description, input_schema, output_schema,
       deprecated, pricing_model, price, currency, latency_p99_ms,
       availability_percent::float8 AS availability_percent, created_at, updated_at
FROM agent_capabilities
WHERE agent_id = $1
  AND ($2 OR NOT deprecated)
  AND ($3::text IS NULL OR (name, capability_id) > ($3, $4::text))
ORDER BY name, capability_id
LIMIT $5;

-- name: update_capability
-- $1 capability_id and the complete new values (the caller merges the partial update)
UPDATE agent_capabilities SET
  description = $2, input_schema = $3, output_schema = $4, deprecated = $5,
  pricing_model = $6, price = $7, currency = $8, latency_p99_ms = $9,
  availability_percent = $10, updated_at = NOW()
WHERE capability_id = $1
RETURNING capability_id, agent_id, name, version, description, input_schema, output_schema,
          deprecated, pricing_model, price, currency, latency_p99_ms,
          availability_percent::float8 AS availability_percent, created_at, updated_at;

-- name: delete_capability
DELETE FROM agent_capabilities WHERE capability_id = $1;

-- name: heartbeat
-- Persist a heartbeat; an INACTIVE agent comes back ACTIVE. Returns the status before and
-- after (NULL when the agent is not registered). $1 agent_id
WITH previous AS (
  SELECT agent_id, status, last_heartbeat FROM agents
  WHERE agent_id = $1 AND deregistered_at IS NULL
  FOR UPDATE
)
UPDATE agents a SET
  last_heartbeat = NOW(),
  status = CASE WHEN p.status = 'INACTIVE' THEN 'ACTIVE' ELSE p.status END,
  status_changed_at = CASE WHEN p.status = 'INACTIVE' THEN NOW() ELSE a.status_changed_at END,
  status_reason = CASE WHEN p.status = 'INACTIVE' THEN NULL ELSE a.status_reason END
FROM previous p
WHERE a.agent_id = p.agent_id
RETURNING p.status AS old_status, a.status AS new_status, a.last_heartbeat,
          p.last_heartbeat AS previous_heartbeat;

-- name: extend_uptime
-- Extend the open uptime stretch to NOW() + ttl, or open a new one. The caller holds the
-- agent's row lock, so two heartbeats of one agent never both open a stretch.
-- $1 agent_id, $2 ttl seconds
WITH open_stretch AS (
  SELECT started_at FROM agent_uptime_intervals
  WHERE agent_id = $1 AND ended_at >= NOW()
  ORDER BY started_at DESC
  LIMIT 1
), extended AS (
  UPDATE agent_uptime_intervals i
  SET ended_at = GREATEST(i.ended_at, NOW() + make_interval(secs => $2::float8))
  FROM open_stretch o
  WHERE i.agent_id = $1 AND i.started_at = o.started_at
  RETURNING i.started_at
)
INSERT INTO agent_uptime_intervals (agent_id, started_at, ended_at)
SELECT $1, NOW(), NOW() + make_interval(secs => $2::float8)
WHERE NOT EXISTS (SELECT 1 FROM extended)
ON CONFLICT (agent_id, started_at) DO UPDATE SET ended_at = EXCLUDED.ended_at;

-- name: close_uptime
-- End the open stretch now (deregistration, suspension). $1 agent_id
UPDATE agent_uptime_intervals SET ended_at = GREATEST(started_at, NOW())
WHERE agent_id = $1 AND ended_at > NOW();

-- name: expire_heartbeats
-- Sweeper: ACTIVE agents whose last heartbeat is older than the TTL become INACTIVE.
-- SKIP LOCKED lets several sweepers (API processes, workers) run without blocking.
-- $1 ttl seconds, $2 batch size
WITH expired AS (
  SELECT agent_id FROM agents
  WHERE status = 'ACTIVE' AND last_heartbeat < NOW() - make_interval(secs => $1::float8)
  ORDER BY last_heartbeat
  LIMIT $2
  FOR UPDATE SKIP LOCKED
), changed AS (
  UPDATE agents a SET status = 'INACTIVE', status_changed_at = NOW(), status_reason = NULL
  FROM expired e WHERE a.agent_id = e.agent_id
  RETURNING a.agent_id
), logged AS (
  INSERT INTO agent_status_changes (agent_id, old_status, new_status, actor, event, reason)
  SELECT agent_id, 'ACTIVE', 'INACTIVE', 'sweeper', 'EXPIRED', 'heartbeat expired'
  FROM changed
)
SELECT agent_id FROM changed;
