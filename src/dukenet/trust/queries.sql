-- Trust queries. Every value is a bind parameter.

-- ------------------------------------------------------------------------------ attempts

-- name: record_attempts
-- Records attempts and adds them to their agents' aggregates, in one statement (see
-- migration 0010 for the decay epoch; the weights are those of recompute.sql's
-- rebuild_sums, so a rebuild reproduces them). Per agent the attempts' aggregates are
-- summed first and each agent's row is updated once. Nothing is written on a repeat of the
-- same subtask and attempt: recording is idempotent.
-- One row per given attempt, in the order given: whether the subtask and agent exist
-- (``known``), what it was worth, who bought it (for the self-dealing check), when it
-- finished (``at`` NULL on a repeat) and its agent's failure-burst counters after the
-- statement.
-- $1 subtask_ids, $2 attempts, $3 agent_ids, $4 capability_ids, $5 outcomes,
-- $6 caused_by_agent, $7 latency_ms, $8 declared_p99_ms (arrays, one element per
-- attempt), $9 burst window (seconds), $10 histogram buckets, $11 histogram growth,
-- $12 finished_at (per attempt; NULL: now)
WITH item AS (
  SELECT * FROM unnest($1::uuid[], $2::int[], $3::text[], $4::text[], $5::text[],
                       $6::boolean[], $7::int[], $8::int[], $12::timestamptz[])
    WITH ORDINALITY AS u (subtask_id, attempt, agent_id, capability_id, outcome,
                          caused_by_agent, latency_ms, declared_p99_ms, finished_at, n)
), context AS (
  SELECT i.subtask_id, i.attempt, i.agent_id, i.capability_id, i.outcome,
         i.caused_by_agent, i.latency_ms, i.declared_p99_ms,
         COALESCE(i.finished_at, NOW()) AS finished_at,
         round(COALESCE(s.quoted_price, NULLIF(s.cost, 0), 0), 4) AS value,
         t.created_by AS buyer, buyer.owner_address AS buyer_owner,
         seller.owner_address AS seller_owner
  FROM item i
  JOIN subtasks s ON s.subtask_id = i.subtask_id
  JOIN tasks t ON t.task_id = s.parent_task_id
  JOIN agents buyer ON buyer.agent_id = t.created_by
  JOIN agents seller ON seller.agent_id = i.agent_id
), inserted AS (
  INSERT INTO agent_attempts (subtask_id, attempt, agent_id, capability_id, outcome,
                              caused_by_agent, latency_ms, declared_p99_ms, value, finished_at)
  SELECT subtask_id, attempt, agent_id, capability_id, outcome, caused_by_agent, latency_ms,
         declared_p99_ms, value, finished_at
  FROM context ORDER BY agent_id, subtask_id, attempt
  ON CONFLICT (subtask_id, attempt) DO NOTHING
  RETURNING subtask_id, attempt, agent_id, outcome, caused_by_agent, latency_ms,
            declared_p99_ms, value, finished_at
), attempt AS (
  SELECT i.subtask_id, i.attempt, i.agent_id, i.latency_ms, i.declared_p99_ms, i.finished_at,
         EXTRACT(EPOCH FROM i.finished_at)::float8 AS at,
         power(2::float8, (EXTRACT(EPOCH FROM i.finished_at)::float8
                           - EXTRACT(EPOCH FROM ss.epoch)::float8)
                          / (ss.half_life_days::float8 * 86400)) AS w,
         LEAST(1::float8, GREATEST(ss.value_floor::float8,
                                   i.value::float8 / ss.value_reference::float8)) AS vw,
         i.outcome = 'success' AS success,
         i.outcome = 'failure' AND i.caused_by_agent AS failure,
         i.outcome <> 'cancelled' AS counted,
         i.outcome <> 'cancelled' AND i.latency_ms IS NOT NULL AS measured,
         i.outcome <> 'cancelled' AND i.latency_ms IS NOT NULL
           AND i.declared_p99_ms IS NOT NULL AS declared,
         CASE WHEN i.outcome <> 'cancelled' AND i.latency_ms IS NOT NULL THEN
           LEAST($10::int - 1, floor(ln(GREATEST(i.latency_ms, 1)) / ln($11::float8))::int) + 1
         END AS bucket
  FROM inserted i
  CROSS JOIN (SELECT * FROM trust_stats_state LIMIT 1) ss  -- one row: keeps estimates at 1
), histogram AS (
  SELECT a.agent_id, array_agg(COALESCE(h.weight, 0)::float8 ORDER BY b.n) AS latency_histogram
  FROM (SELECT DISTINCT agent_id FROM attempt) a
  CROSS JOIN generate_series(1, $10::int) AS b (n)
  LEFT JOIN (SELECT agent_id, bucket, sum(w) AS weight FROM attempt
             WHERE bucket IS NOT NULL GROUP BY agent_id, bucket) h
    ON h.agent_id = a.agent_id AND h.bucket = b.n
  GROUP BY a.agent_id
), stats AS (
  INSERT INTO trust_agent_stats AS s (
    agent_id, successful, failed, success_weight, failure_weight, declared_weight,
    within_weight, measured, measured_weight, latency_weighted, latency_histogram,
    burst_window, burst_failures, burst_attempts, last_attempt_at)
  SELECT a.agent_id, count(*) FILTER (WHERE success), count(*) FILTER (WHERE failure),
         COALESCE(sum(w * vw) FILTER (WHERE success), 0),
         COALESCE(sum(w * vw) FILTER (WHERE failure), 0),
         COALESCE(sum(w) FILTER (WHERE declared), 0),
         COALESCE(sum(w) FILTER (WHERE declared AND latency_ms <= declared_p99_ms), 0),
         count(*) FILTER (WHERE measured),
         COALESCE(sum(w) FILTER (WHERE measured), 0),
         COALESCE(sum(w * latency_ms) FILTER (WHERE measured), 0),
         min(h.latency_histogram),
         floor(max(at) / $9::float8)::bigint, count(*) FILTER (WHERE failure),
         count(*) FILTER (WHERE counted), max(finished_at)
  FROM attempt a JOIN histogram h ON h.agent_id = a.agent_id
  GROUP BY a.agent_id
  ORDER BY a.agent_id
  ON CONFLICT (agent_id) DO UPDATE SET
    successful       = s.successful + EXCLUDED.successful,
    failed           = s.failed + EXCLUDED.failed,
    success_weight   = s.success_weight + EXCLUDED.success_weight,
    failure_weight   = s.failure_weight + EXCLUDED.failure_weight,
    declared_weight  = s.declared_weight + EXCLUDED.declared_weight,
    within_weight    = s.within_weight + EXCLUDED.within_weight,
    measured         = s.measured + EXCLUDED.measured,
    measured_weight  = s.measured_weight + EXCLUDED.measured_weight,
    latency_weighted = s.latency_weighted + EXCLUDED.latency_weighted,
    latency_histogram = CASE WHEN EXCLUDED.measured = 0 THEN s.latency_histogram
         ELSE ARRAY(SELECT old + new FROM unnest(s.latency_histogram, EXCLUDED.latency_histogram)
                                         WITH ORDINALITY AS h (old, new, n) ORDER BY n) END,
    prev_failures  = CASE WHEN EXCLUDED.burst_window = s.burst_window THEN s.prev_failures
                          WHEN EXCLUDED.burst_window = s.burst_window + 1 THEN s.burst_failures
                          WHEN EXCLUDED.burst_window > s.burst_window THEN 0
                          ELSE s.prev_failures END,
    prev_attempts  = CASE WHEN EXCLUDED.burst_window = s.burst_window THEN s.prev_attempts
                          WHEN EXCLUDED.burst_window = s.burst_window + 1 THEN s.burst_attempts
                          WHEN EXCLUDED.burst_window > s.burst_window THEN 0
                          ELSE s.prev_attempts END,
    burst_failures = CASE WHEN EXCLUDED.burst_window = s.burst_window
                            THEN s.burst_failures + EXCLUDED.burst_failures
                          WHEN EXCLUDED.burst_window > s.burst_window THEN EXCLUDED.burst_failures
                          ELSE s.burst_failures END,
    burst_attempts = CASE WHEN EXCLUDED.burst_window = s.burst_window
                            THEN s.burst_attempts + EXCLUDED.burst_attempts
                          WHEN EXCLUDED.burst_window > s.burst_window THEN EXCLUDED.burst_attempts
                          ELSE s.burst_attempts END,
    burst_window   = GREATEST(s.burst_window, EXCLUDED.burst_window),
    last_attempt_at = GREATEST(s.last_attempt_at, EXCLUDED.last_attempt_at)
  RETURNING agent_id, burst_window, burst_failures, burst_attempts, prev_failures,
            prev_attempts
)
SELECT i.subtask_id, i.attempt, i.agent_id, c.subtask_id IS NOT NULL AS known,
       c.buyer, c.buyer_owner, c.seller_owner, a.at, st.burst_window, st.burst_failures,
       st.burst_attempts, st.prev_failures, st.prev_attempts
FROM item i
LEFT JOIN context c ON c.subtask_id = i.subtask_id AND c.attempt = i.attempt
LEFT JOIN attempt a ON a.subtask_id = i.subtask_id AND a.attempt = i.attempt
LEFT JOIN stats st ON st.agent_id = i.agent_id
ORDER BY i.n;

-- ------------------------------------------------------------------------ one agent's score

-- name: lock_agent_evidence
-- Everything but the ratings that one agent's score needs; locks the agent's row so
-- recomputations of one agent run one after the other and each sees the one before.
-- FOR NO KEY UPDATE, not FOR UPDATE: transactions that inserted rows referencing the agent
-- (attempts, payments) hold KEY SHARE on it, and two of them upgrading to FOR UPDATE
-- would deadlock.
-- The agent's ratings come along as parallel arrays (one element per rating, each with
-- what it is worth: the rater's network weight, none for a rater under an open fraud flag
-- or with the agent's owner address, and the task's value), so a recomputation reads its
-- evidence in one round trip.
-- $1 agent_id, $2 rate-limit window (hours), $3 weight of a rater without a network score
SELECT a.agent_id, a.status, a.owner_address, a.trust_score AS stored_score,
       EXTRACT(EPOCH FROM a.created_at)::float8 AS created_at,
       EXTRACT(EPOCH FROM NOW())::float8 AS now,
       EXISTS (SELECT 1 FROM agent_registrations r WHERE r.agent_id = a.agent_id)
         AS registration_verified,
       EXISTS (SELECT 1 FROM agent_owner_proofs p
               WHERE p.agent_id = a.agent_id AND lower(p.owner_address) = lower(a.owner_address))
         AS owner_proven,
       (SELECT count(*) FROM trust_fraud_flags f
        WHERE f.agent_id = a.agent_id AND f.cleared_at IS NULL) AS open_flags,
       EXISTS (SELECT 1 FROM trust_rate_limits l
               WHERE l.agent_id = a.agent_id
                 AND l.last_limited_at > NOW() - make_interval(secs => $2::float8 * 3600))
         AS rate_limited,
       COALESCE(st.successful, 0) AS successful, COALESCE(st.failed, 0) AS failed,
       COALESCE(st.success_weight, 0) AS success_weight,
       COALESCE(st.failure_weight, 0) AS failure_weight,
       COALESCE(st.declared_weight, 0) AS declared_weight,
       COALESCE(st.within_weight, 0) AS within_weight,
       COALESCE(st.measured, 0) AS measured,
       COALESCE(st.measured_weight, 0) AS measured_weight,
       COALESCE(st.latency_weighted, 0) AS latency_weighted,
       st.latency_histogram,
       EXTRACT(EPOCH FROM ss.epoch)::float8 AS epoch, ss.half_life_days,
       u.up_30d, u.up_90d, u.up_all,
       (SELECT max(finished_at) FROM trust_recompute_runs) AS last_audit,
       rt.raters, rt.ratings, rt.rated_at, rt.rating_values, rt.rater_weights
FROM agents a
CROSS JOIN (SELECT * FROM trust_stats_state LIMIT 1) ss  -- one row: keeps estimates at 1
LEFT JOIN trust_agent_stats st ON st.agent_id = a.agent_id
CROSS JOIN LATERAL dukenet_agent_uptime(a.agent_id, a.created_at) u
CROSS JOIN LATERAL (
  SELECT array_agg(r.rater_agent_id) AS raters,
         array_agg(r.rating::float8) AS ratings,
         array_agg(EXTRACT(EPOCH FROM r.created_at)::float8) AS rated_at,
         array_agg(COALESCE(r.task_value,
                            (SELECT sum(s.cost) FROM subtasks s
                             WHERE s.parent_task_id = r.task_id
                               AND s.assigned_agent_id = r.agent_id
                               AND s.status = 'COMPLETED'),
                            0)::float8) AS rating_values,
         array_agg(CASE WHEN EXISTS (SELECT 1 FROM trust_fraud_flags f
                                     WHERE f.agent_id = r.rater_agent_id
                                       AND f.cleared_at IS NULL)
                             OR lower(ra.owner_address) = lower(a.owner_address)
                        THEN 0::float8
                        ELSE COALESCE(n.rater_weight, $3::float8) END) AS rater_weights
  FROM agent_ratings r
  JOIN agents ra ON ra.agent_id = r.rater_agent_id
  LEFT JOIN trust_network_scores n ON n.agent_id = r.rater_agent_id
  WHERE r.agent_id = a.agent_id
) rt
WHERE a.agent_id = $1 AND a.deregistered_at IS NULL
FOR NO KEY UPDATE OF a;

-- name: store_score
-- Set the agent's trust_score and append its trust record in one statement.
-- $1 agent_id, $2 trust_score, $3 reputation_score, $4 rating, $5 total_ratings,
-- $6 successful, $7 failed, $8 uptime_30d, $9 uptime_90d, $10 uptime_all_time,
-- $11 avg_latency_ms, $12 p99_latency_ms, $13 success_rate, $14 verified_signer,
-- $15 rate_limited, $16 fraud_flags, $17 last_audit, $18 reason
WITH updated AS (
  UPDATE agents SET trust_score = $2 WHERE agent_id = $1 RETURNING agent_id
)
INSERT INTO trust_records (agent_id, trust_score, reputation_score, rating, total_ratings,
    successful_transactions, failed_transactions, uptime_30d, uptime_90d, uptime_all_time,
    avg_latency_ms, p99_latency_ms, success_rate, verified_signer, rate_limited, fraud_flags,
    last_audit, reason)
SELECT agent_id, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
       COALESCE($17::timestamptz, NOW()), $18
FROM updated
RETURNING record_id, updated_at;

-- name: network_score
SELECT n.global_trust, n.rater_weight, n.pre_trusted, r.finished_at AS computed_at
FROM trust_network_scores n JOIN trust_recompute_runs r USING (run_id)
WHERE n.agent_id = $1;

-- name: trust_history
-- $1 agent_id, $2 before record_id or NULL, $3 limit
SELECT record_id, agent_id, trust_score, reputation_score, rating, total_ratings,
       successful_transactions, failed_transactions, uptime_30d, uptime_90d, uptime_all_time,
       avg_latency_ms, p99_latency_ms, success_rate, verified_signer, rate_limited,
       fraud_flags, last_audit, updated_at, reason
FROM trust_records
WHERE agent_id = $1 AND ($2::int IS NULL OR record_id < $2)
ORDER BY record_id DESC
LIMIT $3;

-- name: agent_exists
SELECT status FROM agents WHERE agent_id = $1 AND deregistered_at IS NULL;

-- ------------------------------------------------------------------------------ ratings

-- name: rating_context
-- Whether ``$2`` (the rater) may rate ``$1`` for task ``$3``: the task, its creator and
-- completion, and what the rated agent completed in it. $1 agent_id, $2 rater, $3 task_id
SELECT t.task_id, t.created_by, t.status, t.completed_at, t.audit_cid,
       NOW() AS now,
       (SELECT count(*) FROM subtasks s
        WHERE s.parent_task_id = t.task_id AND s.assigned_agent_id = $1
          AND s.status = 'COMPLETED') AS completed_subtasks,
       (SELECT COALESCE(sum(s.cost), 0) FROM subtasks s
        WHERE s.parent_task_id = t.task_id AND s.assigned_agent_id = $1
          AND s.status = 'COMPLETED') AS task_value,
       (SELECT lower(owner_address) FROM agents WHERE agent_id = $1) AS agent_owner,
       (SELECT lower(owner_address) FROM agents WHERE agent_id = $2) AS rater_owner
FROM tasks t
WHERE t.task_id = $3;

-- name: insert_rating
-- Nothing on a repeat of (agent, rater, task): the caller answers 409.
-- $1 agent_id, $2 rater_agent_id, $3 task_id, $4 rating, $5 review, $6 task_value
INSERT INTO agent_ratings (agent_id, rater_agent_id, task_id, rating, review, task_value)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (agent_id, rater_agent_id, task_id) DO NOTHING
RETURNING rating_id, agent_id, rater_agent_id, task_id, rating, review, created_at,
          task_value, audit_cid;

-- name: set_rating_audit_cid
UPDATE agent_ratings SET audit_cid = $2 WHERE rating_id = $1;

-- name: list_ratings
-- Newest first, keyset-paginated. $1 agent_id, $2/$3 cursor (created_at, rating_id), $4 limit
SELECT rating_id, agent_id, rater_agent_id, task_id, rating, review, created_at, task_value,
       audit_cid
FROM agent_ratings
WHERE agent_id = $1
  AND ($2::timestamptz IS NULL OR (created_at, rating_id) < ($2, $3::int))
ORDER BY created_at DESC, rating_id DESC
LIMIT $4;

-- --------------------------------------------------------------------------------- fraud

-- name: raise_flag
-- A new flag unless the same evidence was flagged before (open or cleared), or, with $6,
-- unless the agent already has an open flag of this kind.
-- $1 agent_id, $2 kind, $3 fingerprint, $4 reason, $5 evidence, $6 one open flag per kind
INSERT INTO trust_fraud_flags (agent_id, kind, fingerprint, reason, evidence)
SELECT $1::varchar, $2::varchar, $3::text, $4::text, $5::jsonb
WHERE NOT ($6::bool AND EXISTS (
  SELECT 1 FROM trust_fraud_flags f
  WHERE f.agent_id = $1::varchar AND f.kind = $2::varchar AND f.cleared_at IS NULL))
ON CONFLICT (agent_id, fingerprint) DO NOTHING
RETURNING flag_id;

-- name: lock_flag
SELECT flag_id, agent_id, kind, fingerprint, reason, evidence, created_at, cleared_at,
       cleared_reason
FROM trust_fraud_flags WHERE flag_id = $1
FOR UPDATE;

-- name: clear_flag
UPDATE trust_fraud_flags SET cleared_at = NOW(), cleared_reason = $2
WHERE flag_id = $1
RETURNING flag_id, agent_id, kind, fingerprint, reason, evidence, created_at, cleared_at,
          cleared_reason;

-- name: agent_flags
-- $1 agent_id, $2 include cleared
SELECT flag_id, agent_id, kind, fingerprint, reason, evidence, created_at, cleared_at,
       cleared_reason
FROM trust_fraud_flags
WHERE agent_id = $1 AND ($2::bool OR cleared_at IS NULL)
ORDER BY created_at DESC, flag_id DESC;

-- name: flagged_agents
-- Agents with open flags (or any flags with $1), by agent_id after the cursor $2.
-- $1 include cleared, $2 cursor agent_id or NULL, $3 limit
SELECT a.agent_id, a.display_name, a.status, a.trust_score, a.owner_address,
       jsonb_agg(jsonb_build_object(
         'flag_id', f.flag_id, 'kind', f.kind, 'reason', f.reason, 'evidence', f.evidence,
         'created_at', f.created_at, 'cleared_at', f.cleared_at,
         'cleared_reason', f.cleared_reason) ORDER BY f.flag_id DESC) AS flags
FROM trust_fraud_flags f
JOIN agents a ON a.agent_id = f.agent_id
WHERE ($1::bool OR f.cleared_at IS NULL)
  AND ($2::text IS NULL OR f.agent_id > $2)
GROUP BY a.agent_id
ORDER BY a.agent_id
LIMIT $3;

-- name: self_dealing_pairs
-- Sellers whose completed work or transactions were bought by another agent with the same
-- owner address. $1 seller ids to check, or NULL for all
SELECT seller, buyer, lower(owner) AS owner, sum(trades)::int AS trades
FROM (
  SELECT s.assigned_agent_id AS seller, t.created_by AS buyer, sa.owner_address AS owner,
         count(*) AS trades
  FROM subtasks s
  JOIN tasks t ON t.task_id = s.parent_task_id
  JOIN agents sa ON sa.agent_id = s.assigned_agent_id
  JOIN agents ba ON ba.agent_id = t.created_by
  WHERE s.status = 'COMPLETED' AND sa.owner_address IS NOT NULL
    AND lower(sa.owner_address) = lower(ba.owner_address)
    AND sa.agent_id <> ba.agent_id
    AND ($1::text[] IS NULL OR s.assigned_agent_id = ANY($1::text[]))
  GROUP BY 1, 2, 3
  UNION ALL
  SELECT x.seller_agent_id, x.buyer_agent_id, sa.owner_address, count(*)
  FROM transactions x
  JOIN agents sa ON sa.agent_id = x.seller_agent_id
  JOIN agents ba ON ba.agent_id = x.buyer_agent_id
  WHERE x.status = 'COMPLETED' AND sa.owner_address IS NOT NULL
    AND lower(sa.owner_address) = lower(ba.owner_address)
    AND ($1::text[] IS NULL OR x.seller_agent_id = ANY($1::text[]))
  GROUP BY 1, 2, 3
) pairs
GROUP BY seller, buyer, lower(owner);

-- name: trades_of
-- Completed trades (subtasks done for another agent's task, completed transactions) of
-- the given agents within the lookback, per counterparty. $1 agent ids, $2 lookback days
SELECT agent_id, counterparty, sum(trades)::int AS trades
FROM (
  SELECT s.assigned_agent_id AS agent_id, t.created_by AS counterparty, count(*) AS trades
  FROM subtasks s JOIN tasks t ON t.task_id = s.parent_task_id
  WHERE s.status = 'COMPLETED' AND s.assigned_agent_id = ANY($1::text[])
    AND t.created_by <> s.assigned_agent_id
    AND s.completed_at >= NOW() - make_interval(days => $2::int)
  GROUP BY 1, 2
  UNION ALL
  SELECT t.created_by, s.assigned_agent_id, count(*)
  FROM tasks t JOIN subtasks s ON s.parent_task_id = t.task_id
  WHERE s.status = 'COMPLETED' AND t.created_by = ANY($1::text[])
    AND t.created_by <> s.assigned_agent_id
    AND s.completed_at >= NOW() - make_interval(days => $2::int)
  GROUP BY 1, 2
  UNION ALL
  SELECT x.seller_agent_id, x.buyer_agent_id, count(*)
  FROM transactions x
  WHERE x.status = 'COMPLETED' AND x.seller_agent_id = ANY($1::text[])
    AND x.created_at >= NOW() - make_interval(days => $2::int)
  GROUP BY 1, 2
  UNION ALL
  SELECT x.buyer_agent_id, x.seller_agent_id, count(*)
  FROM transactions x
  WHERE x.status = 'COMPLETED' AND x.buyer_agent_id = ANY($1::text[])
    AND x.created_at >= NOW() - make_interval(days => $2::int)
  GROUP BY 1, 2
) trades
GROUP BY agent_id, counterparty;

-- ---------------------------------------------------------------------------- rate limits

-- name: note_rate_limited
INSERT INTO trust_rate_limits AS l (agent_id, last_limited_at) VALUES ($1, NOW())
ON CONFLICT (agent_id) DO UPDATE
SET last_limited_at = NOW(), times_limited = l.times_limited + 1;

-- ---------------------------------------------------------------------------- owner proofs

-- name: owner_of
SELECT owner_address FROM agents WHERE agent_id = $1 AND deregistered_at IS NULL FOR UPDATE;

-- name: upsert_owner_proof
INSERT INTO agent_owner_proofs (agent_id, owner_address, message, signature)
VALUES ($1, $2, $3, $4)
ON CONFLICT (agent_id) DO UPDATE
SET owner_address = EXCLUDED.owner_address, message = EXCLUDED.message,
    signature = EXCLUDED.signature, proven_at = NOW()
RETURNING agent_id, owner_address, message, signature, proven_at;

-- name: get_owner_proof
SELECT p.agent_id, p.owner_address, p.message, p.signature, p.proven_at,
       lower(p.owner_address) = lower(a.owner_address) AS current
FROM agent_owner_proofs p JOIN agents a USING (agent_id)
WHERE p.agent_id = $1;

-- ------------------------------------------------------------------------- event outbox

-- name: claim_pending_events
-- $1 batch size
DELETE FROM trust_pending_events
WHERE event_id IN (SELECT event_id FROM trust_pending_events ORDER BY event_id
                   LIMIT $1 FOR UPDATE SKIP LOCKED)
RETURNING event_id, agent_id, reason;
