-- Trust scores change on every finished attempt and in every periodic recomputation.
--
-- With trust_score indexed, none of those UPDATEs of agents could be a HOT update: each one
-- added a new entry to all eight of the table's indexes. In the full recomputation of
-- 100,000 agents that was about half of the time spent storing scores. No query looks agents
-- up by trust score alone: listings page by created_at and apply min_trust on the way,
-- selection starts from capabilities, and search keeps its own copy of the score in
-- capability_search. So the design's idx_agents_trust_score is dropped, and agents pages
-- keep 10% free so that an updated row fits on its page (the condition for HOT).
--
-- idx_trust_agent (agent_id) is a prefix of idx_trust_agent_record (agent_id, record_id
-- DESC), which serves every lookup it served; dropping it saves one index insert per trust
-- record.
DROP INDEX IF EXISTS idx_agents_trust_score;
ALTER TABLE agents SET (fillfactor = 90);
DROP INDEX IF EXISTS idx_trust_agent;
