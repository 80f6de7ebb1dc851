-- Uptime arithmetic in one place. Agent lookups and listings, search, the per-event trust
-- evidence and the full trust recomputation all turn uptime stretches
-- (agent_uptime_intervals) into seconds inside a window; these functions are that one
-- definition. Both are plain SQL, so the planner inlines them into the calling query.

-- Seconds of the stretch [started_at, ended_at) that fall inside [since, until); 0 if none.
CREATE FUNCTION dukenet_seconds_within(
  started_at TIMESTAMPTZ, ended_at TIMESTAMPTZ, since TIMESTAMPTZ, until TIMESTAMPTZ
) RETURNS NUMERIC
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT GREATEST(0, EXTRACT(EPOCH FROM LEAST(ended_at, until) - GREATEST(started_at, since)))
$$;

-- An agent's seconds up in the last 30 days, the last 90 days and since it was created
-- (windows never start before registered_at, its created_at), as of the transaction's NOW().
CREATE FUNCTION dukenet_agent_uptime(agent VARCHAR, registered_at TIMESTAMPTZ)
RETURNS TABLE (up_30d DOUBLE PRECISION, up_90d DOUBLE PRECISION, up_all DOUBLE PRECISION)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  SELECT
    COALESCE(SUM(dukenet_seconds_within(i.started_at, i.ended_at,
                 GREATEST(registered_at, NOW() - INTERVAL '30 days'), NOW())), 0)::float8,
    COALESCE(SUM(dukenet_seconds_within(i.started_at, i.ended_at,
                 GREATEST(registered_at, NOW() - INTERVAL '90 days'), NOW())), 0)::float8,
    COALESCE(SUM(dukenet_seconds_within(i.started_at, i.ended_at, registered_at, NOW())), 0)::float8
  FROM agent_uptime_intervals i
  WHERE i.agent_id = agent
$$;
