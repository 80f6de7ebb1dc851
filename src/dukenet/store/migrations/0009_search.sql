-- Discovery: capability search (GET /v1/search/capabilities).
--
-- Search filters and sorts on values of two tables (the capability's name, price, SLO,
-- version, text; the agent's trust, tags and text), and no index spans two tables. So:
--
-- * `capability_search` is a narrow copy of every value search filters or sorts on except
--   text, one row per capability, kept by triggers. Its indexes are keyed exactly as the
--   ORDER BY of each sort, so a page is an ordered index scan over narrow rows that stops
--   after `limit` matches, and the wide capability row is read only for the rows returned.
--   A trust change rewrites one narrow row per capability of the agent (a few), touching
--   these indexes but not the wide row with its JSONB and text indexes.
-- * `agent_capabilities` gains the agent's text (copied by triggers) and a generated
--   tsvector over capability and agent text, with a GIN index.
--
-- Status and heartbeat freshness stay on `agents` (heartbeats are far too frequent to
-- copy); search joins them by primary key.

-- Full text on agent_capabilities ---------------------------------------------------------

ALTER TABLE agent_capabilities ADD COLUMN agent_text TEXT NOT NULL DEFAULT '';

UPDATE agent_capabilities c SET agent_text = concat_ws(' ', a.display_name, a.description)
FROM agents a
WHERE a.agent_id = c.agent_id;

-- A new capability starts with its agent's current text.
CREATE FUNCTION dukenet_capability_agent_text() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  SELECT concat_ws(' ', a.display_name, a.description) INTO NEW.agent_text
  FROM agents a WHERE a.agent_id = NEW.agent_id;
  NEW.agent_text := COALESCE(NEW.agent_text, '');
  RETURN NEW;
END
$$;

CREATE TRIGGER capability_agent_text BEFORE INSERT ON agent_capabilities
FOR EACH ROW EXECUTE FUNCTION dukenet_capability_agent_text();

-- Profile text changed: copy it to the agent's capabilities.
CREATE FUNCTION dukenet_agent_text_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  UPDATE agent_capabilities SET agent_text = concat_ws(' ', NEW.display_name, NEW.description)
  WHERE agent_id = NEW.agent_id;
  RETURN NULL;
END
$$;

CREATE TRIGGER agent_text_changed AFTER UPDATE OF display_name, description ON agents
FOR EACH ROW
WHEN (OLD.display_name IS DISTINCT FROM NEW.display_name
      OR OLD.description IS DISTINCT FROM NEW.description)
EXECUTE FUNCTION dukenet_agent_text_changed();

-- Full-text search: the capability name's dotted words (weight A), its description (B), the
-- agent's display name and description (C); English stemming, as the queries'
-- websearch_to_tsquery('english', ...).
ALTER TABLE agent_capabilities ADD COLUMN search_vector tsvector GENERATED ALWAYS AS (
  setweight(to_tsvector('english'::regconfig, translate(name, '._-', '   ')), 'A')
  || setweight(to_tsvector('english'::regconfig, COALESCE(description, '')), 'B')
  || setweight(to_tsvector('english'::regconfig, agent_text), 'C')
) STORED;

CREATE INDEX idx_capabilities_search_vector ON agent_capabilities USING GIN (search_vector);

-- Sort keys: capability_search ------------------------------------------------------------

CREATE TABLE capability_search (
  capability_id  VARCHAR(64) PRIMARY KEY
                 REFERENCES agent_capabilities(capability_id) ON DELETE CASCADE,
  agent_id       VARCHAR(64) NOT NULL,
  name           VARCHAR(255) NOT NULL,
  price          DECIMAL(10,4) NOT NULL,
  currency       VARCHAR(10) NOT NULL,
  pricing_model  VARCHAR(20),
  -- The declared p99, with "not declared" sorting last.
  latency_key    INTEGER NOT NULL,
  availability   DECIMAL(5,2),
  -- MAJOR.MINOR.PATCH as numbers, so a version range narrows rows here (prerelease
  -- precedence is then checked exactly by the application).
  version_core   NUMERIC[],
  deprecated     BOOLEAN NOT NULL,
  agent_trust    DECIMAL(5,2) NOT NULL,
  agent_tags     TEXT[] NOT NULL
);

-- What capability_search holds for a capability: its own values and its agent's trust
-- and (sorted) tags.
CREATE VIEW capability_search_source AS
SELECT c.capability_id, c.agent_id, c.name, COALESCE(c.price, 0) AS price, c.currency,
       c.pricing_model, COALESCE(c.latency_p99_ms, 2147483647) AS latency_key,
       c.availability_percent AS availability,
       (regexp_match(c.version, '^(\d+)\.(\d+)\.(\d+)'))::numeric[] AS version_core,
       c.deprecated, a.trust_score AS agent_trust,
       COALESCE((SELECT array_agg(t.tag ORDER BY t.tag) FROM agent_tags t
                 WHERE t.agent_id = c.agent_id), '{}') AS agent_tags
FROM agent_capabilities c JOIN agents a ON a.agent_id = c.agent_id;

INSERT INTO capability_search SELECT * FROM capability_search_source;

CREATE FUNCTION dukenet_capabilities_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO capability_search
  SELECT * FROM capability_search_source
  WHERE capability_id IN (SELECT capability_id FROM inserted_capabilities);
  RETURN NULL;
END
$$;

CREATE TRIGGER capabilities_inserted AFTER INSERT ON agent_capabilities
REFERENCING NEW TABLE AS inserted_capabilities
FOR EACH STATEMENT EXECUTE FUNCTION dukenet_capabilities_inserted();

CREATE FUNCTION dukenet_capability_terms_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  UPDATE capability_search
  SET price = COALESCE(NEW.price, 0), currency = NEW.currency,
      pricing_model = NEW.pricing_model,
      latency_key = COALESCE(NEW.latency_p99_ms, 2147483647),
      availability = NEW.availability_percent, deprecated = NEW.deprecated
  WHERE capability_id = NEW.capability_id;
  RETURN NULL;
END
$$;

CREATE TRIGGER capability_terms_changed
AFTER UPDATE OF price, currency, pricing_model, latency_p99_ms, availability_percent, deprecated
ON agent_capabilities
FOR EACH ROW
WHEN (OLD.price IS DISTINCT FROM NEW.price OR OLD.currency IS DISTINCT FROM NEW.currency
      OR OLD.pricing_model IS DISTINCT FROM NEW.pricing_model
      OR OLD.latency_p99_ms IS DISTINCT FROM NEW.latency_p99_ms
      OR OLD.availability_percent IS DISTINCT FROM NEW.availability_percent
      OR OLD.deprecated IS DISTINCT FROM NEW.deprecated)
EXECUTE FUNCTION dukenet_capability_terms_changed();

CREATE FUNCTION dukenet_agent_trust_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  UPDATE capability_search SET agent_trust = NEW.trust_score WHERE agent_id = NEW.agent_id;
  RETURN NULL;
END
$$;

CREATE TRIGGER agent_trust_changed AFTER UPDATE OF trust_score ON agents
FOR EACH ROW WHEN (OLD.trust_score IS DISTINCT FROM NEW.trust_score)
EXECUTE FUNCTION dukenet_agent_trust_changed();

-- Tags added or removed: recompute the tag arrays of the agents touched, once per statement.
CREATE FUNCTION dukenet_agent_tags_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  UPDATE capability_search s
  SET agent_tags = COALESCE((SELECT array_agg(t.tag ORDER BY t.tag) FROM agent_tags t
                             WHERE t.agent_id = s.agent_id), '{}')
  WHERE s.agent_id IN (SELECT agent_id FROM changed_tags);
  RETURN NULL;
END
$$;

CREATE TRIGGER agent_tags_inserted AFTER INSERT ON agent_tags
REFERENCING NEW TABLE AS changed_tags
FOR EACH STATEMENT EXECUTE FUNCTION dukenet_agent_tags_changed();
CREATE TRIGGER agent_tags_deleted AFTER DELETE ON agent_tags
REFERENCING OLD TABLE AS changed_tags
FOR EACH STATEMENT EXECUTE FUNCTION dukenet_agent_tags_changed();

-- Trust descending is written as the negated score, so every sort key is ascending and a
-- keyset cursor is one row comparison that the index serves as a range. Names compare in
-- the "C" collation, so a prefix (`text.*`) is a range of the same index. Searching by
-- name is the common case, so each sort order also has a by-name index.
CREATE INDEX idx_capability_search_agent ON capability_search (agent_id);
-- The default order also covers every column search reads from this table, so a scan
-- that filters out most rows (several tags, a version range) reads only index pages,
-- in order, instead of a heap row per candidate.
CREATE INDEX idx_capability_search_trust
  ON capability_search ((-agent_trust), price, capability_id)
  INCLUDE (agent_trust, agent_id, name, currency, pricing_model, latency_key, availability,
           version_core, deprecated, agent_tags);
CREATE INDEX idx_capability_search_price
  ON capability_search (price, (-agent_trust), capability_id);
CREATE INDEX idx_capability_search_latency
  ON capability_search (latency_key, (-agent_trust), capability_id);
CREATE INDEX idx_capability_search_name_trust
  ON capability_search ((name COLLATE "C"), (-agent_trust), price, capability_id);
CREATE INDEX idx_capability_search_name_price
  ON capability_search ((name COLLATE "C"), price, (-agent_trust), capability_id);
CREATE INDEX idx_capability_search_name_latency
  ON capability_search ((name COLLATE "C"), latency_key, (-agent_trust), capability_id);
-- Tags (the agent has all of them): array containment.
CREATE INDEX idx_capability_search_tags ON capability_search USING GIN (agent_tags);
