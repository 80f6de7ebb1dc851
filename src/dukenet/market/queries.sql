-- Marketplace queries. Every value is a bind parameter. Balances change only through
-- ledger_entries (a trigger applies each statement's entries to the balance rows).

-- name: hold
-- Locks the buyer's balance row if it covers the amount and, only then (and, with $12, only
-- if the seller is registered and not suspended), claims the Idempotency-Key (with $13) and,
-- only if the key was free, creates the PENDING transaction, its HOLD movement (available ->
-- held) and its first history row. No row comes back otherwise. One statement, so without
-- an open transaction around it the purchase commits at once and the row lock is held for
-- no round trip; a request repeating an in-flight key waits on the key's unique index and
-- then finds it taken. The key's record stores no body: a purchase's response is the
-- transaction as created (see ``purchase_by_key``).
-- $1 buyer, $2 seller, $3 type, $4 item_id, $5 amount, $6 currency, $7 payment_method,
-- $8 metadata, $9 subtask_id, $10 idempotency_key, $11 actor, $12 check the seller,
-- $13 idempotency scope (NULL: no key to claim), $14 request fingerprint, $15 status code
WITH funds AS (
  SELECT agent_id FROM balances
  WHERE agent_id = $1 AND currency = $6 AND available >= $5
    AND (NOT $12::boolean
         OR EXISTS (SELECT 1 FROM agents
                    WHERE agent_id = $2 AND status <> 'SUSPENDED' AND deregistered_at IS NULL))
  FOR UPDATE OF balances
), claim AS (
  INSERT INTO idempotency_records (scope, idempotency_key, fingerprint, status_code)
  SELECT $13::varchar, $10, $14, $15 FROM funds WHERE $13::varchar IS NOT NULL
  ON CONFLICT DO NOTHING
  RETURNING scope
), txn AS (
  INSERT INTO transactions (buyer_agent_id, seller_agent_id, transaction_type, item_id, amount,
                            held_amount, currency, payment_method, metadata, subtask_id,
                            idempotency_key)
  SELECT $1, $2, $3, $4, $5, $5, $6, $7, $8, $9, $10 FROM funds
  WHERE $13::varchar IS NULL OR EXISTS (SELECT 1 FROM claim)
  RETURNING *
), movement AS (
  INSERT INTO ledger_movements (kind, currency, amount, transaction_id, created_at)
  SELECT 'HOLD', currency, amount, transaction_id, created_at FROM txn
  RETURNING movement_id
), entries AS (
  INSERT INTO ledger_entries (movement_id, account, agent_id, currency, amount)
  SELECT movement.movement_id, posting.account, $1, $6, posting.sign * $5
  FROM movement, (VALUES ('AVAILABLE', -1), ('HELD', 1)) AS posting (account, sign)
), history AS (
  INSERT INTO transaction_status_history (transaction_id, status, actor, changed_at)
  SELECT transaction_id, 'PENDING', $11, created_at FROM txn
)
SELECT * FROM txn;

-- name: purchase_by_key
-- The transaction a buyer's purchase with this Idempotency-Key created.
SELECT * FROM transactions WHERE buyer_agent_id = $1 AND idempotency_key = $2;

-- name: available_balance
SELECT available FROM balances WHERE agent_id = $1 AND currency = $2;

-- name: lock_transaction
-- The transaction, locked for a state change, with the statement's clock, the id its next
-- ledger movement will have (so an audit record can name it before it is written), its
-- status history and its ledger movements with their entries. With $2 it first claims the
-- Idempotency-Key (waiting while a request with the same key is in flight) and locks
-- nothing if the key was already used: ``claimed`` is false then. ``transaction_id`` is
-- NULL for an unknown transaction. ``proof`` is $5 as the database stores and returns it.
-- ``audit_head`` is the CID now at the transaction's audit path $6 (the record a new one
-- links as ``previous``): only a status change writes that path, always under this lock.
-- (If the lock had to wait for another change, the row is the new version but history,
-- movements and head are as of the statement's start: the caller sees the last history
-- status differ from the row's and reads again.)
-- $1 transaction_id, $2 idempotency scope (NULL: no key), $3 key, $4 fingerprint, $5 proof,
-- $6 the transaction's audit path
WITH claim AS (
  INSERT INTO idempotency_records (scope, idempotency_key, fingerprint)
  SELECT $2::varchar, $3::varchar, $4::char(64) WHERE $2::varchar IS NOT NULL
  ON CONFLICT DO NOTHING
  RETURNING scope
), locked AS (
  SELECT t.* FROM transactions t
  WHERE t.transaction_id = $1 AND ($2::varchar IS NULL OR EXISTS (SELECT 1 FROM claim))
  FOR UPDATE OF t
)
SELECT ($2::varchar IS NULL OR EXISTS (SELECT 1 FROM claim)) AS claimed,
       t.*, NOW() AS now, $5::jsonb AS proof,
       nextval(pg_get_serial_sequence('ledger_movements', 'movement_id')) AS next_movement_id,
       (SELECT cid FROM audit_paths WHERE path = $6::text) AS audit_head,
       ARRAY(
         SELECT ROW(h.status, h.actor, h.reason, h.changed_at)
         FROM transaction_status_history h
         WHERE h.transaction_id = t.transaction_id
         ORDER BY h.history_id
       ) AS history,
       ARRAY(
         SELECT ROW(m.movement_id, m.kind, m.currency, m.amount, m.created_at,
                    ARRAY(SELECT ROW(e.account, e.agent_id, e.amount)
                          FROM ledger_entries e
                          WHERE e.movement_id = m.movement_id
                          ORDER BY e.entry_id))
         FROM ledger_movements m
         WHERE m.transaction_id = t.transaction_id
         ORDER BY m.movement_id
       ) AS movements
FROM (SELECT 1) AS one LEFT JOIN locked t ON true;

-- name: transition
-- Moves a locked transaction to its next status with its ledger movement and history row,
-- stores the response of the request that made the change under its Idempotency-Key
-- (claimed by ``lock_transaction``; $15 NULL: none) and, with $6, the change's audit record
-- as audit's store_record stores one (block, path, log queue entry; see
-- audit.trail.seal_transaction_record). Returns the transaction's id.
-- $1 transaction_id, $2 status, $3 amount, $4 platform_fee, $5 completion_proof,
-- $6 audit_cid (NULL: no record), $7 reason, $8 movement kind, $9 movement id,
-- $10 accounts, $11 agent ids, $12 amounts, $13 actor, $14 now, $15 idempotency scope,
-- $16 key, $17 status code, $18 response body, $19 record block bytes, $20 its links,
-- $21 its path
WITH txn AS (
  UPDATE transactions
  SET status = $2::varchar, amount = $3::numeric, platform_fee = $4::numeric,
      completion_proof = COALESCE($5::jsonb, completion_proof),
      audit_cid = COALESCE($6::text, audit_cid),
      status_reason = $7::text,
      completed_at = CASE WHEN $2::varchar = 'COMPLETED' THEN $14::timestamptz
                          ELSE completed_at END,
      refunded_at = CASE WHEN $2::varchar = 'REFUNDED' THEN $14::timestamptz
                         ELSE refunded_at END,
      updated_at = $14::timestamptz
  WHERE transaction_id = $1
  RETURNING transaction_id, currency
), movement AS (
  INSERT INTO ledger_movements (movement_id, kind, currency, amount, transaction_id, created_at)
  SELECT $9::bigint, $8::varchar, currency, $3::numeric, transaction_id, $14::timestamptz
  FROM txn
  RETURNING movement_id, currency
), entries AS (
  INSERT INTO ledger_entries (movement_id, account, agent_id, currency, amount)
  SELECT movement.movement_id, posting.account, posting.agent_id, movement.currency,
         posting.amount
  FROM movement, unnest($10::text[], $11::text[], $12::numeric[])
                 AS posting (account, agent_id, amount)
), history AS (
  INSERT INTO transaction_status_history (transaction_id, status, actor, reason, changed_at)
  SELECT transaction_id, $2::varchar, $13::varchar, $7::text, $14::timestamptz FROM txn
), response AS (
  UPDATE idempotency_records SET status_code = $17::smallint, response = $18::text
  WHERE scope = $15::varchar AND idempotency_key = $16::varchar
    AND EXISTS (SELECT 1 FROM txn)
), block AS (
  INSERT INTO audit_blocks (cid, data, links)
  SELECT $6::text, $19::bytea, $20::text[] FROM txn WHERE $6::text IS NOT NULL
  ON CONFLICT (cid) DO NOTHING
  RETURNING cid
), audit_path AS (
  INSERT INTO audit_paths (path, cid)
  SELECT $21::text, $6::text FROM txn WHERE $6::text IS NOT NULL
  ON CONFLICT (path) DO UPDATE SET cid = EXCLUDED.cid, updated_at = NOW()
), queued AS (
  INSERT INTO audit_log_queue (cid) SELECT cid FROM block
)
SELECT transaction_id FROM txn;

-- name: as_stored_json
-- A JSON value as a JSONB column stores and returns it (key order, numbers).
SELECT $1::jsonb;

-- name: get_transaction
SELECT * FROM transactions WHERE transaction_id = $1;

-- name: lock_balances
-- Locks agents' balance rows in a fixed order (the ledger trigger uses the same order).
SELECT agent_id, currency, available, held FROM balances
WHERE agent_id = ANY($1::text[]) AND currency = $2
ORDER BY agent_id, currency
FOR UPDATE;

-- name: agent_status
SELECT status, deregistered_at FROM agents WHERE agent_id = $1;

-- name: fund
-- A deposit or payout: the movement with its two entries (agent available vs. external).
-- $1 kind, $2 agent_id, $3 currency, $4 amount, $5 payment_method, $6 payment_reference,
-- $7 sign of the agent's entry (+1 deposit, -1 payout)
WITH movement AS (
  INSERT INTO ledger_movements (kind, currency, amount, agent_id, payment_method,
                                payment_reference)
  VALUES ($1, $3, $4, $2, $5, $6)
  RETURNING *
), entries AS (
  INSERT INTO ledger_entries (movement_id, account, agent_id, currency, amount)
  SELECT movement.movement_id, posting.account, posting.agent_id, $3, posting.sign * $7 * $4
  FROM movement, (VALUES ('AVAILABLE', $2::varchar, 1), ('EXTERNAL', NULL, -1))
                 AS posting (account, agent_id, sign)
)
SELECT * FROM movement;

-- name: balance
SELECT agent_id, currency, available, held, updated_at FROM balances
WHERE agent_id = $1 AND currency = $2;

-- name: agent_balances
SELECT agent_id, currency, available, held, updated_at FROM balances
WHERE agent_id = $1
ORDER BY currency;

-- name: list_as_buyer
-- $1 agent, $2 status or NULL, $3 type or NULL, $4/$5 keyset cursor, $6 limit
SELECT * FROM transactions
WHERE buyer_agent_id = $1
  AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR transaction_type = $3)
  AND (created_at, transaction_id) < ($4::timestamptz, $5::uuid)
ORDER BY created_at DESC, transaction_id DESC
LIMIT $6;

-- name: list_as_seller
SELECT * FROM transactions
WHERE seller_agent_id = $1
  AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR transaction_type = $3)
  AND (created_at, transaction_id) < ($4::timestamptz, $5::uuid)
ORDER BY created_at DESC, transaction_id DESC
LIMIT $6;

-- name: list_as_party
-- Both roles: two index range scans merged (an agent is never both parties of one).
SELECT * FROM (
  (SELECT * FROM transactions
   WHERE buyer_agent_id = $1
     AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR transaction_type = $3)
     AND (created_at, transaction_id) < ($4::timestamptz, $5::uuid)
   ORDER BY created_at DESC, transaction_id DESC
   LIMIT $6)
  UNION ALL
  (SELECT * FROM transactions
   WHERE seller_agent_id = $1
     AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR transaction_type = $3)
     AND (created_at, transaction_id) < ($4::timestamptz, $5::uuid)
   ORDER BY created_at DESC, transaction_id DESC
   LIMIT $6)
) AS party
ORDER BY created_at DESC, transaction_id DESC
LIMIT $6;

-- name: claim_expired
-- One PENDING transaction older than the expiry that no one else is working on.
SELECT transaction_id FROM transactions
WHERE status = 'PENDING' AND created_at < NOW() - make_interval(secs => $1::float8)
ORDER BY created_at
LIMIT 1
FOR UPDATE SKIP LOCKED;

-- name: claim_idempotency_key
-- Waits while another request with the same key is in flight; no row comes back when the
-- key was already used (the caller then reads the stored response).
INSERT INTO idempotency_records (scope, idempotency_key, fingerprint)
VALUES ($1, $2, $3)
ON CONFLICT DO NOTHING
RETURNING fingerprint;

-- name: stored_response
SELECT fingerprint, status_code, response FROM idempotency_records
WHERE scope = $1 AND idempotency_key = $2;

-- name: remember_response
UPDATE idempotency_records SET status_code = $3, response = $4
WHERE scope = $1 AND idempotency_key = $2;

-- name: purge_idempotency_records
DELETE FROM idempotency_records
WHERE created_at < NOW() - make_interval(secs => $1::float8);

-- name: entry_totals
-- Sums of the ledger per currency and account (the source of truth for every balance).
SELECT currency, account, SUM(amount) AS total FROM ledger_entries GROUP BY currency, account;

-- name: funding_totals
SELECT currency,
       COALESCE(SUM(amount) FILTER (WHERE kind = 'DEPOSIT'), 0) AS deposits,
       COALESCE(SUM(amount) FILTER (WHERE kind = 'PAYOUT'), 0) AS payouts
FROM ledger_movements
WHERE kind IN ('DEPOSIT', 'PAYOUT')
GROUP BY currency;

-- name: balance_totals
SELECT currency, SUM(available) AS available, SUM(held) AS held FROM balances GROUP BY currency;

-- name: pending_totals
SELECT currency, SUM(held_amount) AS held FROM transactions
WHERE status = 'PENDING'
GROUP BY currency;

-- name: balance_mismatches
-- Agents whose balance row differs from the sum of their entries (must be none).
SELECT COUNT(*) FROM balances b
FULL JOIN (
  SELECT agent_id, currency,
         COALESCE(SUM(amount) FILTER (WHERE account = 'AVAILABLE'), 0) AS available,
         COALESCE(SUM(amount) FILTER (WHERE account = 'HELD'), 0) AS held
  FROM ledger_entries
  WHERE agent_id IS NOT NULL
  GROUP BY agent_id, currency
) s USING (agent_id, currency)
WHERE b.available IS DISTINCT FROM COALESCE(s.available, 0)
   OR b.held IS DISTINCT FROM COALESCE(s.held, 0);
