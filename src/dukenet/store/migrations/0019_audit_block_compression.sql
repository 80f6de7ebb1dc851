-- Record blocks (about 3.3 KB of DAG-CBOR for a finished single-subtask task) are above
-- the size at which PostgreSQL compresses a row, so every stored block is compressed,
-- with pglz by default. With lz4 they are as small (1,446 bytes on average against
-- pglz's 1,419, for 10,000 execution records), inserting them takes 93-105 ms instead of
-- 247-263 ms, and the gateway, verification and CAR export decompress them faster. Only
-- blocks written from now on use it; both kinds read the same. A server built without lz4
-- (the embedded one) keeps pglz.
DO $$
BEGIN
  IF EXISTS (
    SELECT 1 FROM pg_settings
    WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)
  ) THEN
    ALTER TABLE audit_blocks ALTER COLUMN data SET COMPRESSION lz4;
  END IF;
END
$$;
