-- The full trust recomputation. Every value is a bind parameter. The run numbers agents in a
-- temporary table so bulk reads return integers that numpy reads directly.

-- name: try_lock
SELECT pg_try_advisory_lock($1);

-- name: unlock
SELECT pg_advisory_unlock($1);

-- name: start_run
INSERT INTO trust_recompute_runs DEFAULT VALUES RETURNING run_id, started_at;

-- name: finish_run
-- $1 run_id, $2 agents, $3 records, $4 flags, $5 rebuilt, $6 details
UPDATE trust_recompute_runs
SET finished_at = NOW(), agents = $2, records_appended = $3, flags_raised = $4,
    rebuilt_stats = $5, details = $6
WHERE run_id = $1;

-- name: last_finished_run
SELECT EXTRACT(EPOCH FROM NOW() - max(finished_at))::float8 AS age FROM trust_recompute_runs;

-- name: create_run_tables
DROP TABLE IF EXISTS trust_run_agents, trust_run_network, trust_run_scores;
CREATE TEMP TABLE trust_run_agents (
  idx      INTEGER PRIMARY KEY,
  agent_id VARCHAR(64) NOT NULL UNIQUE,
  owner    TEXT
);
CREATE TEMP TABLE trust_run_network (
  agent_id     VARCHAR(64) PRIMARY KEY,
  global_trust DOUBLE PRECISION NOT NULL,
  rater_weight DOUBLE PRECISION NOT NULL,
  pre_trusted  BOOLEAN NOT NULL
);
CREATE TEMP TABLE trust_run_scores (
  idx INTEGER NOT NULL, agent_id VARCHAR(64) NOT NULL, trust_score DOUBLE PRECISION,
  reputation_score DOUBLE PRECISION, rating DOUBLE PRECISION, total_ratings INTEGER,
  successful INTEGER, failed INTEGER, uptime_30d DOUBLE PRECISION, uptime_90d DOUBLE PRECISION,
  uptime_all_time DOUBLE PRECISION, avg_latency_ms INTEGER, p99_latency_ms INTEGER,
  success_rate DOUBLE PRECISION, verified_signer BOOLEAN, rate_limited BOOLEAN,
  fraud_flags INTEGER
);

-- name: drop_run_tables
DROP TABLE IF EXISTS trust_run_agents, trust_run_network, trust_run_scores;

-- name: fill_run_agents
INSERT INTO trust_run_agents (idx, agent_id, owner)
SELECT (row_number() OVER (ORDER BY agent_id) - 1)::int, agent_id, lower(owner_address)
FROM agents WHERE deregistered_at IS NULL;

-- name: analyze_run_agents
ANALYZE trust_run_agents;

-- name: run_agent_ids
SELECT agent_id FROM trust_run_agents ORDER BY idx;

-- name: run_snapshot
SELECT COALESCE(max(record_id), 0) AS max_record_id, EXTRACT(EPOCH FROM NOW())::float8 AS now,
       (SELECT EXTRACT(EPOCH FROM epoch)::float8 FROM trust_stats_state) AS epoch,
       (SELECT half_life_days FROM trust_stats_state) AS half_life_days
FROM trust_records;

-- name: run_agent_evidence
-- One row per agent (binary COPY). $1 rate-limit window hours, $2 pre-trust minimum age
-- (days), $3 pre-trust minimum successes, $4 pre-trust minimum score, $5 clean record (days)
SELECT r.idx,
       EXTRACT(EPOCH FROM a.created_at)::float8 AS created_at,
       (a.status = 'INACTIVE') AS inactive,
       (a.status = 'SUSPENDED') AS suspended,
       (a.owner_address IS NOT NULL) AS owner_given,
       EXISTS (SELECT 1 FROM agent_owner_proofs p
               WHERE p.agent_id = a.agent_id AND lower(p.owner_address) = r.owner)
         AS owner_proven,
       EXISTS (SELECT 1 FROM agent_registrations g WHERE g.agent_id = a.agent_id)
         AS registration_verified,
       (SELECT count(*) FROM trust_fraud_flags f
        WHERE f.agent_id = a.agent_id AND f.cleared_at IS NULL)::int AS open_flags,
       EXISTS (SELECT 1 FROM trust_rate_limits l
               WHERE l.agent_id = a.agent_id
                 AND l.last_limited_at > NOW() - make_interval(secs => $1::float8 * 3600))
         AS rate_limited,
       (a.created_at <= NOW() - make_interval(days => $2::int)
        AND COALESCE(st.successful, 0) >= $3::int
        AND a.trust_score >= $4::numeric
        AND a.status <> 'SUSPENDED'
        AND NOT EXISTS (SELECT 1 FROM trust_fraud_flags f
                        WHERE f.agent_id = a.agent_id
                          AND (f.cleared_at IS NULL
                               OR f.created_at > NOW() - make_interval(days => $5::int))))
         AS long_clean_record,
       a.trust_score::float8 AS current_score,
       COALESCE(st.successful, 0)::int AS successful,
       COALESCE(st.failed, 0)::int AS failed,
       COALESCE(st.success_weight, 0)::float8 AS success_weight,
       COALESCE(st.failure_weight, 0)::float8 AS failure_weight,
       COALESCE(st.declared_weight, 0)::float8 AS declared_weight,
       COALESCE(st.within_weight, 0)::float8 AS within_weight,
       COALESCE(st.measured, 0)::int AS measured,
       COALESCE(st.measured_weight, 0)::float8 AS measured_weight,
       COALESCE(st.latency_weighted, 0)::float8 AS latency_weighted
FROM trust_run_agents r
JOIN agents a ON a.agent_id = r.agent_id
LEFT JOIN trust_agent_stats st ON st.agent_id = r.agent_id
ORDER BY r.idx;

-- name: run_uptime
-- Seconds up in each window, for agents with any uptime history (binary COPY).
SELECT r.idx,
  SUM(dukenet_seconds_within(i.started_at, i.ended_at,
      GREATEST(a.created_at, NOW() - INTERVAL '30 days'), NOW()))::float8 AS up_30d,
  SUM(dukenet_seconds_within(i.started_at, i.ended_at,
      GREATEST(a.created_at, NOW() - INTERVAL '90 days'), NOW()))::float8 AS up_90d,
  SUM(dukenet_seconds_within(i.started_at, i.ended_at, a.created_at, NOW()))::float8 AS up_all
FROM trust_run_agents r
JOIN agents a ON a.agent_id = r.agent_id
JOIN agent_uptime_intervals i ON i.agent_id = r.agent_id
GROUP BY r.idx;

-- name: run_histograms
-- Non-empty latency histogram buckets (1-based) of every agent (binary COPY).
SELECT r.idx, h.bucket::int AS bucket, h.weight::float8 AS weight
FROM trust_run_agents r
JOIN trust_agent_stats st ON st.agent_id = r.agent_id
CROSS JOIN LATERAL unnest(st.latency_histogram) WITH ORDINALITY AS h(weight, bucket)
WHERE h.weight > 0;

-- name: run_ratings
-- Every rating between registered agents (binary COPY).
SELECT ra.idx AS agent, rr.idx AS rater, r.rating::float8 AS rating,
       EXTRACT(EPOCH FROM r.created_at)::float8 AS at,
       COALESCE(r.task_value,
                (SELECT sum(s.cost) FROM subtasks s
                 WHERE s.parent_task_id = r.task_id AND s.assigned_agent_id = r.agent_id
                   AND s.status = 'COMPLETED'),
                0)::float8 AS value,
       COALESCE(ra.owner = rr.owner, FALSE) AS same_owner
FROM agent_ratings r
JOIN trust_run_agents ra ON ra.agent_id = r.agent_id
JOIN trust_run_agents rr ON rr.agent_id = r.rater_agent_id;

-- name: open_flag_counts
SELECT r.idx, count(*)::int AS open_flags
FROM trust_fraud_flags f JOIN trust_run_agents r ON r.agent_id = f.agent_id
WHERE f.cleared_at IS NULL
GROUP BY r.idx;

-- name: replace_network_scores
-- $1 run_id
WITH gone AS (
  DELETE FROM trust_network_scores n
  WHERE NOT EXISTS (SELECT 1 FROM trust_run_network t WHERE t.agent_id = n.agent_id)
)
INSERT INTO trust_network_scores (agent_id, global_trust, rater_weight, pre_trusted, run_id)
SELECT agent_id, global_trust, rater_weight, pre_trusted, $1 FROM trust_run_network
ON CONFLICT (agent_id) DO UPDATE
SET global_trust = EXCLUDED.global_trust, rater_weight = EXCLUDED.rater_weight,
    pre_trusted = EXCLUDED.pre_trusted, run_id = EXCLUDED.run_id;

-- name: apply_scores
-- Store the run's scores for agents idx in [$1, $2): agents recomputed by an event since the
-- run's snapshot ($3 = the newest record id then) keep their fresher score.
-- $4 last_audit (the run's time)
WITH fresh AS (
  SELECT s.* FROM trust_run_scores s
  WHERE s.idx >= $1 AND s.idx < $2
    AND NOT EXISTS (SELECT 1 FROM trust_records t
                    WHERE t.agent_id = s.agent_id AND t.record_id > $3)
), updated AS (
  UPDATE agents a SET trust_score = round(f.trust_score::numeric, 2)
  FROM fresh f
  WHERE a.agent_id = f.agent_id AND a.deregistered_at IS NULL
  RETURNING a.agent_id
)
INSERT INTO trust_records (agent_id, trust_score, reputation_score, rating, total_ratings,
    successful_transactions, failed_transactions, uptime_30d, uptime_90d, uptime_all_time,
    avg_latency_ms, p99_latency_ms, success_rate, verified_signer, rate_limited, fraud_flags,
    last_audit, reason)
SELECT f.agent_id, round(f.trust_score::numeric, 2), round(f.reputation_score::numeric, 2),
       round(f.rating::numeric, 2), f.total_ratings, f.successful, f.failed,
       round(f.uptime_30d::numeric, 2), round(f.uptime_90d::numeric, 2),
       round(f.uptime_all_time::numeric, 2), f.avg_latency_ms, f.p99_latency_ms,
       round(f.success_rate::numeric, 2), f.verified_signer, f.rate_limited, f.fraud_flags,
       $4::timestamptz, 'periodic'
FROM fresh f JOIN updated u ON u.agent_id = f.agent_id
RETURNING agent_id;

-- name: stats_parameters
SELECT half_life_days, value_reference, value_floor FROM trust_stats_state;

-- name: lock_attempts_for_rebuild
LOCK TABLE agent_attempts, trust_agent_stats IN SHARE ROW EXCLUSIVE MODE;

-- name: rebuild_sums
-- Aggregates of every agent's attempts with the given epoch-anchored decay and value weight.
-- One scan: sums per (agent, latency bucket) first (a parallel-safe aggregate over the raw
-- rows), then per agent over its few bucket groups (bucket NULL: attempts without latency).
-- $1 epoch (seconds), $2 half-life days, $3 value reference, $4 value floor,
-- $5 histogram buckets, $6 histogram growth
WITH per_bucket AS (
  SELECT agent_id, bucket,
         count(*) FILTER (WHERE outcome = 'success') AS successful,
         count(*) FILTER (WHERE outcome = 'failure' AND caused_by_agent) AS failed,
         sum(w * vw) FILTER (WHERE outcome = 'success') AS success_weight,
         sum(w * vw) FILTER (WHERE outcome = 'failure' AND caused_by_agent) AS failure_weight,
         sum(w) FILTER (WHERE declared_p99_ms IS NOT NULL) AS declared_weight,
         sum(w) FILTER (WHERE latency_ms <= declared_p99_ms) AS within_weight,
         count(latency_ms) AS measured,
         sum(w) FILTER (WHERE latency_ms IS NOT NULL) AS measured_weight,
         sum(w * latency_ms) AS latency_weighted,
         max(finished_at) AS last_attempt_at
  FROM (
    SELECT agent_id, outcome, caused_by_agent, latency_ms, declared_p99_ms, finished_at,
           CASE WHEN latency_ms IS NOT NULL THEN
             LEAST($5::int - 1, floor(ln(GREATEST(latency_ms, 1)) / ln($6::float8))::int) + 1
           END AS bucket,
           power(2::float8, (EXTRACT(EPOCH FROM finished_at)::float8 - $1::float8)
                            / ($2::float8 * 86400)) AS w,
           LEAST(1::float8, GREATEST($4::float8, value::float8 / $3::float8)) AS vw
    FROM agent_attempts
    WHERE outcome <> 'cancelled'
  ) raw
  GROUP BY agent_id, bucket
)
SELECT agent_id,
       sum(successful)::int AS successful,
       sum(failed)::int AS failed,
       COALESCE(sum(success_weight), 0) AS success_weight,
       COALESCE(sum(failure_weight), 0) AS failure_weight,
       COALESCE(sum(declared_weight) FILTER (WHERE bucket IS NOT NULL), 0) AS declared_weight,
       COALESCE(sum(within_weight), 0) AS within_weight,
       sum(measured)::int AS measured,
       COALESCE(sum(measured_weight), 0) AS measured_weight,
       COALESCE(sum(latency_weighted), 0) AS latency_weighted,
       max(last_attempt_at) AS last_attempt_at,
       array_agg(bucket ORDER BY bucket) FILTER (WHERE bucket IS NOT NULL) AS buckets,
       array_agg(measured_weight ORDER BY bucket) FILTER (WHERE bucket IS NOT NULL) AS weights
FROM per_bucket
GROUP BY agent_id;

-- name: clear_stats
DELETE FROM trust_agent_stats;

-- name: set_stats_parameters
UPDATE trust_stats_state
SET half_life_days = $1, value_reference = $2, value_floor = $3, rebuilt_at = NOW();
