-- Audit trail: immutable DAG-CBOR blocks, the path index, and the RFC 9162 Merkle log
-- (queue -> leaves + complete-subtree hashes -> signed checkpoints), plus the IPFS
-- publisher's cursor.

-- Refuses UPDATE, DELETE and TRUNCATE on the append-only audit tables.
CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit table % is append-only: % refused', TG_TABLE_NAME, TG_OP
    USING ERRCODE = 'insufficient_privilege';
END;
$$;

-- Content-addressed blocks. `cid` is the base32 CIDv1 (dag-cbor, sha2-256) of `data`;
-- `links` lists the CIDs the block links to (for CAR export and publishing).
CREATE TABLE audit_blocks (
  cid        TEXT PRIMARY KEY CHECK (cid ~ '^b[a-z2-7]+$'),
  data       BYTEA NOT NULL,
  links      TEXT[] NOT NULL DEFAULT '{}',
  created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE TRIGGER audit_blocks_immutable BEFORE UPDATE OR DELETE ON audit_blocks
  FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_blocks_no_truncate BEFORE TRUNCATE ON audit_blocks
  FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();

-- The design's paths (/dukenet/agents/{id}/registration, ...) to the newest record's CID.
-- Older records stay reachable through each record's `previous` link.
CREATE TABLE audit_paths (
  path       TEXT COLLATE "C" PRIMARY KEY CHECK (path LIKE '/dukenet/%'),
  cid        TEXT NOT NULL REFERENCES audit_blocks(cid),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX idx_audit_paths_cid ON audit_paths(cid);

-- Record CIDs appended by committed events, waiting for the sequencer to give them leaf
-- indexes. Writers only insert here, so appends never contend on a lock.
CREATE TABLE audit_log_queue (
  queue_id  BIGSERIAL PRIMARY KEY,
  cid       TEXT NOT NULL REFERENCES audit_blocks(cid),
  queued_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);

-- Leaves of the log, indexes 0..n-1 with no gaps; leaf data is the binary CID.
CREATE TABLE audit_log_leaves (
  leaf_index    BIGINT PRIMARY KEY CHECK (leaf_index >= 0),
  cid           TEXT NOT NULL UNIQUE,
  queued_at     TIMESTAMPTZ NOT NULL,
  integrated_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
CREATE TRIGGER audit_log_leaves_immutable BEFORE UPDATE OR DELETE ON audit_log_leaves
  FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_log_leaves_no_truncate BEFORE TRUNCATE ON audit_log_leaves
  FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();

-- Hash of every complete subtree: (level, idx) covers leaves [idx*2^level, (idx+1)*2^level).
-- Level 0 holds leaf hashes. Proofs read O(log n) of these rows.
CREATE TABLE audit_log_nodes (
  level SMALLINT NOT NULL CHECK (level BETWEEN 0 AND 63),
  idx   BIGINT NOT NULL CHECK (idx >= 0),
  hash  BYTEA NOT NULL CHECK (octet_length(hash) = 32),
  PRIMARY KEY (level, idx)
);
CREATE TRIGGER audit_log_nodes_immutable BEFORE UPDATE OR DELETE ON audit_log_nodes
  FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_log_nodes_no_truncate BEFORE TRUNCATE ON audit_log_nodes
  FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();

-- Signed checkpoints (C2SP signed notes), one per tree size that was checkpointed.
CREATE TABLE audit_checkpoints (
  tree_size  BIGINT PRIMARY KEY CHECK (tree_size >= 0),
  root_hash  BYTEA NOT NULL CHECK (octet_length(root_hash) = 32),
  note       TEXT NOT NULL,
  created_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
CREATE TRIGGER audit_checkpoints_immutable BEFORE UPDATE OR DELETE ON audit_checkpoints
  FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
  FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();

-- How far each IPFS publishing target has got through the log.
CREATE TABLE audit_publish_cursors (
  target      TEXT PRIMARY KEY,
  next_leaf   BIGINT NOT NULL DEFAULT 0 CHECK (next_leaf >= 0),
  last_error  TEXT,
  updated_at  TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
