-- Phase 4, optimization: indexes for the product's query patterns.

-- Claim path: only claimable rows are indexed, so the claim query stays fast however many
-- finished subtasks the table holds.
CREATE INDEX idx_subtasks_claimable ON subtasks (priority DESC, next_attempt_at, created_at)
  WHERE status = 'READY';
-- Reaper: running attempts ordered by lease expiry.
CREATE INDEX idx_subtasks_leases ON subtasks (lease_expires_at)
  WHERE status IN ('ASSIGNED', 'RUNNING');
CREATE INDEX idx_subtasks_assigned_agent ON subtasks (assigned_agent_id);

-- GIN indexes on the JSONB and array columns that queries filter on.
CREATE INDEX idx_agents_metadata ON agents USING GIN (metadata jsonb_path_ops);
CREATE INDEX idx_capabilities_input_schema ON agent_capabilities USING GIN (input_schema jsonb_path_ops);
CREATE INDEX idx_tasks_tags ON tasks USING GIN (tags);
CREATE INDEX idx_tasks_dependencies ON tasks USING GIN (dependencies);
CREATE INDEX idx_tasks_metadata ON tasks USING GIN (metadata jsonb_path_ops);
CREATE INDEX idx_subtasks_depends_on ON subtasks USING GIN (depends_on);
CREATE INDEX idx_transactions_metadata ON transactions USING GIN (metadata jsonb_path_ops);

-- Capability lookups by name among live capabilities, cheapest first.
CREATE INDEX idx_capabilities_name_live ON agent_capabilities (name, price)
  WHERE NOT deprecated;
CREATE INDEX idx_tasks_created_by_created ON tasks (created_by, created_at DESC);
CREATE INDEX idx_transactions_subtask ON transactions (subtask_id) WHERE subtask_id IS NOT NULL;
CREATE INDEX idx_ratings_task ON agent_ratings (task_id);
CREATE INDEX idx_log_subtask ON task_execution_log (subtask_id);
