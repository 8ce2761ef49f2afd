-- Transactional outbox of cache publishes (DESIGN step 6).
--
-- Every product change inserts a row here in its own transaction; the row is removed once the
-- change is published to the cache. Rows left behind (the process died between commit and
-- publish, or Redis was unreachable) are published by the relay of any instance.
CREATE TABLE cache_outbox (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    product_id BIGINT      NOT NULL,
    version    BIGINT      NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX cache_outbox_created_at_idx ON cache_outbox (created_at);
