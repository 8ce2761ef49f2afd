-- A change shown before it was published ends every instance's trust in its Redis copy.
--
-- When no instance can publish (Redis paused, restarted, or cut off from every instance), a
-- writer cannot wait for its change to reach Redis for ever: it answers, and when Redis comes
-- back it still holds the copy from before. A handed-off row (handed_off_at) is the mark:
-- every instance looks for such rows every 200 ms and serves no Redis or near-cache copy of
-- their products, under a lease that lapses unless renewed (src/cache/versioned/trust.rs). The
-- writer, or a read that showed the change from Postgres, answers once its row is gone
-- (published) or a whole lease has passed since it marked the row; then it sets
-- trust_ended_at, so that later reads of the same change need not wait again (src/handoff.rs).
ALTER TABLE cache_outbox ADD COLUMN trust_ended_at timestamptz;

-- What every instance's look reads: the products with a handed-off row. Small: such rows are
-- published within milliseconds while any instance reaches Redis.
CREATE INDEX cache_outbox_handed_off_idx ON cache_outbox (product_id)
    WHERE handed_off_at IS NOT NULL;
