-- A transaction row is inserted at purchase and updated at completion. The completion
-- changes the indexed status, so it is never a HOT update: each of the row's versions
-- costs one entry in every index of transactions, which had ten.
--
-- Three of the design's indexes serve no query that a later index does not serve better:
-- idx_transactions_buyer (buyer_agent_id) and idx_transactions_seller (seller_agent_id)
-- are prefixes of idx_transactions_buyer_created and idx_transactions_seller_created (0007),
-- which the listings and the trust queries use; idx_transactions_status has three values
-- that split the table in large parts, and the one query that needs few of them (PENDING
-- transactions to expire) has idx_transactions_pending_created. Dropping the three saves
-- six index inserts per completed purchase.
DROP INDEX IF EXISTS idx_transactions_buyer;
DROP INDEX IF EXISTS idx_transactions_seller;
DROP INDEX IF EXISTS idx_transactions_status;
