-- Marketplace speed: the ledger trigger (0007) reaches ledger_movements and balances by key.
--
-- PL/pgSQL plans each query of ledger_apply_entries() once per session, at its first call,
-- and keeps the plan until the tables are analyzed again. A session that first posts while
-- ledger_movements or balances is small (a new database, the first deposits) got plans that
-- scan those tables whole, and kept them while they grew: every posted movement then read
-- the whole ledger, several milliseconds per purchase after a few thousand of them. Each
-- query of the trigger starts from the statement's few new entries and has an index path
-- to every table it touches, so ruling out sequential scans for the function keeps its
-- cost per movement constant whatever the statistics were when it was planned. (JIT is off
-- too: these queries are tiny and must never pay for compilation.)
ALTER FUNCTION ledger_apply_entries() SET enable_seqscan = off;
ALTER FUNCTION ledger_apply_entries() SET jit = off;
