-- Orders are private: reading one takes the access token its creation answered (or the admin
-- token). Orders placed before this migration have none, so only the admin token reads them.
ALTER TABLE orders ADD COLUMN access_token TEXT;

-- Idempotency keys are kept for a retention period (SHOPNOW_IDEMPOTENCY_KEY_RETENTION_HOURS), then
-- deleted in the background, oldest first.
CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);
