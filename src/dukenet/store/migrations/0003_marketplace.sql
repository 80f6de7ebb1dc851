-- Phase 3, marketplace: transactions.

CREATE TABLE transactions (
  transaction_id    UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  buyer_agent_id    VARCHAR(64) NOT NULL REFERENCES agents(agent_id),
  seller_agent_id   VARCHAR(64) NOT NULL REFERENCES agents(agent_id),
  transaction_type  VARCHAR(20) NOT NULL
                    CHECK (transaction_type IN ('SKILL_RENTAL', 'DATA_PURCHASE', 'COMPUTE_TIME')),
  item_id           VARCHAR(100),
  amount            DECIMAL(10,4) NOT NULL CHECK (amount >= 0),
  currency          VARCHAR(10) NOT NULL DEFAULT 'USD',
  platform_fee      DECIMAL(10,4) CHECK (platform_fee >= 0 AND platform_fee <= amount),
  status            VARCHAR(20) NOT NULL DEFAULT 'PENDING'
                    CHECK (status IN ('PENDING', 'COMPLETED', 'FAILED', 'REFUNDED')),
  created_at        TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  completed_at      TIMESTAMPTZ,
  payment_method    VARCHAR(50),
  payment_reference VARCHAR(100),
  metadata          JSONB,
  -- added for the product
  idempotency_key   VARCHAR(255),
  subtask_id        UUID REFERENCES subtasks(subtask_id),
  audit_cid         TEXT,
  UNIQUE (buyer_agent_id, idempotency_key),
  CHECK (buyer_agent_id <> seller_agent_id)
);
CREATE INDEX idx_transactions_buyer ON transactions(buyer_agent_id);
CREATE INDEX idx_transactions_seller ON transactions(seller_agent_id);
CREATE INDEX idx_transactions_status ON transactions(status);
