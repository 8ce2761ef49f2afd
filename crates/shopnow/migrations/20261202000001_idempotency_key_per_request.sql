-- An Idempotency-Key is remembered together with the request it came with: a retry with the
-- same key and the same items finds its order, and the same key with other items is a request
-- of its own. Answering "this key was used for other items" would confirm to someone guessing
-- keys that a key exists, and then let them guess the items one try at a time until a replay
-- hands them the order's access token.
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
ALTER TABLE idempotency_keys ADD PRIMARY KEY (key, request_hash);
