-- Capability search. One query per sort order, each assembled (once, at import) from the
-- blocks below as search_head + search_filters + search_<sort>. Every value is a bind
-- parameter; an unused filter is passed as NULL, and because search runs with
-- plan_cache_mode = force_custom_plan the planner folds "$n IS NULL OR ..." away and
-- picks the index for the filters actually given (see migration 0009 for the indexes).
--
-- Parameters:
--  $1 status, $2 fresh heartbeat only, $3 heartbeat TTL seconds, $4 name, $5 name LIKE
--  pattern, $6 full-text query (websearch syntax), $7 tags (all of), $8 min trust,
--  $9 max price, $10 currency, $11 pricing model, $12 max declared p99 latency (ms),
--  $13 min availability, $14/$15 lowest/highest MAJOR.MINOR.PATCH, $16 include deprecated,
--  $17/$18/$19 keyset position (the sort key of the last row seen) or NULLs, $20 limit.
--
-- Sort keys are ascending tuples ending in capability_id, so "after the cursor" is one
-- row comparison that the matching index serves as a range: trust is (-trust, price, id),
-- price (price, -trust, id), latency (declared p99 with "not declared" last, -trust, id),
-- relevance (-rank, -trust, id).

-- name: search_head
-- The page is chosen from capability_search and agents alone (agent_capabilities only for
-- full text), then its rows get their capability columns, rank and 30-day uptime.
SELECT page.*, c.name, c.version, c.description, c.input_schema, c.output_schema,
       c.latency_p99_ms, c.availability_percent::float8 AS availability_percent,
       c.created_at, c.updated_at,
       ts_rank(c.search_vector, websearch_to_tsquery('english', $6::text)) AS rank,
       now() AS measured_at,
       (SELECT COALESCE(SUM(dukenet_seconds_within(i.started_at, i.ended_at,
                 GREATEST(page.agent_created_at, now() - INTERVAL '30 days'), now())), 0)::float8
        FROM agent_uptime_intervals i
        WHERE i.agent_id = page.agent_id AND i.ended_at > now() - INTERVAL '30 days') AS up_30d
FROM (
  SELECT s.capability_id, s.agent_id, s.deprecated, s.pricing_model, s.price, s.currency,
         s.agent_trust, s.agent_tags, s.latency_key,
         a.display_name, a.endpoint_url, a.status, a.trust_score, a.last_heartbeat,
         a.created_at AS agent_created_at,
         a.last_heartbeat + make_interval(secs => $3::float8) AS fresh_until
  FROM capability_search s
  JOIN agents a ON a.agent_id = s.agent_id
  -- Joined only when full text is asked for (the planner drops an unused LEFT JOIN on a
  -- primary key, and the text condition turns it into an inner join).
  LEFT JOIN agent_capabilities c ON c.capability_id = s.capability_id

-- name: search_filters
  WHERE a.deregistered_at IS NULL
    AND a.status = $1::text
    AND (NOT $2::bool OR a.last_heartbeat > now() - make_interval(secs => $3::float8))
    AND ($4::text IS NULL OR s.name COLLATE "C" = $4::text)
    AND ($5::text IS NULL OR (s.name COLLATE "C" >= $5::text
                              AND s.name COLLATE "C" < (left($5::text, -1) || '/')))
    AND ($6::text IS NULL OR c.search_vector @@ websearch_to_tsquery('english', $6::text))
    AND ($7::text[] IS NULL OR s.agent_tags @> $7::text[])
    AND ($8::numeric IS NULL OR -s.agent_trust <= -$8::numeric)
    AND ($9::numeric IS NULL OR s.price <= $9::numeric)
    AND ($10::text IS NULL OR s.currency = $10::text)
    AND ($11::text IS NULL OR s.pricing_model = $11::text)
    AND ($12::int IS NULL OR s.latency_key <= $12::int)
    AND ($13::numeric IS NULL OR s.availability >= $13::numeric)
    AND ($14::numeric[] IS NULL OR s.version_core >= $14::numeric[])
    AND ($15::numeric[] IS NULL OR s.version_core <= $15::numeric[])
    AND ($16::bool OR NOT s.deprecated)

-- name: search_trust
    AND ($17::numeric IS NULL
         OR (-s.agent_trust, s.price, s.capability_id) > ($17::numeric, $18::numeric, $19::text))
  ORDER BY -s.agent_trust, s.price, s.capability_id
  LIMIT $20
) page
JOIN agent_capabilities c ON c.capability_id = page.capability_id
ORDER BY -page.agent_trust, page.price, page.capability_id

-- name: search_price
    AND ($17::numeric IS NULL
         OR (s.price, -s.agent_trust, s.capability_id) > ($17::numeric, $18::numeric, $19::text))
  ORDER BY s.price, -s.agent_trust, s.capability_id
  LIMIT $20
) page
JOIN agent_capabilities c ON c.capability_id = page.capability_id
ORDER BY page.price, -page.agent_trust, page.capability_id

-- name: search_latency
    AND ($17::int IS NULL
         OR (s.latency_key, -s.agent_trust, s.capability_id) > ($17::int, $18::numeric, $19::text))
  ORDER BY s.latency_key, -s.agent_trust, s.capability_id
  LIMIT $20
) page
JOIN agent_capabilities c ON c.capability_id = page.capability_id
ORDER BY page.latency_key, -page.agent_trust, page.capability_id

-- name: search_relevance
    AND ($17::real IS NULL
         OR (-ts_rank(c.search_vector, websearch_to_tsquery('english', $6::text)),
             -s.agent_trust, s.capability_id) > ($17::real, $18::numeric, $19::text))
  ORDER BY -ts_rank(c.search_vector, websearch_to_tsquery('english', $6::text)),
           -s.agent_trust, s.capability_id
  LIMIT $20
) page
JOIN agent_capabilities c ON c.capability_id = page.capability_id
ORDER BY rank DESC, -page.agent_trust, page.capability_id

-- name: search_settings
-- Per transaction: plan each search for its actual filters (the catch-all NULL tests need
-- it), and keep JIT compilation and parallel workers, built for analytics, off this path.
SET LOCAL plan_cache_mode = force_custom_plan;
SET LOCAL jit = off;
SET LOCAL max_parallel_workers_per_gather = 0
