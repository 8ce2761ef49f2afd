-- Holds: stock set aside while a shopper checks out, until the hold expires, is released, or
-- becomes an order. Orders can be cancelled, which returns their stock.
--
-- What a product has reserved lives on the product's row (`holds`), so that every change of a
-- reservation is a change of the row: it raises the version (the trigger below), leaves an
-- outbox row, and reaches every cache through the one publish path products already have. An
-- expiry is not a change: a hold stops counting at `expires_at`, whoever reads the row, and the
-- sweeper removes lapsed entries later (`holds`'s module says why that is only housekeeping).

-- One entry per live hold on the product: {"hold": "<uuid>", "quantity": n, "expires_at": <ms>}
-- (milliseconds since the Unix epoch, by this server's clock).
ALTER TABLE products ADD COLUMN holds jsonb NOT NULL DEFAULT '[]'
    CHECK (jsonb_typeof(holds) = 'array');

-- The time expiries are judged by: the transaction's start, as every statement of it sees it.
CREATE FUNCTION shopnow_now_ms() RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT (extract(epoch FROM now()) * 1000)::bigint
$$;

-- The units held by entries that have not expired.
CREATE FUNCTION shopnow_reserved(holds jsonb) RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT coalesce(sum((entry->>'quantity')::bigint), 0)::bigint
    FROM jsonb_array_elements(holds) AS entry
    WHERE (entry->>'expires_at')::bigint > shopnow_now_ms()
$$;

-- The entries that have not expired, in expiry order.
CREATE FUNCTION shopnow_live_holds(holds jsonb) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_agg(entry ORDER BY (entry->>'expires_at')::bigint), '[]'::jsonb)
    FROM jsonb_array_elements(holds) AS entry
    WHERE (entry->>'expires_at')::bigint > shopnow_now_ms()
$$;

-- The entries of every hold but `hold`.
CREATE FUNCTION shopnow_without_hold(holds jsonb, hold uuid) RETURNS jsonb LANGUAGE sql
IMMUTABLE AS $$
    SELECT coalesce(jsonb_agg(entry ORDER BY (entry->>'expires_at')::bigint), '[]'::jsonb)
    FROM jsonb_array_elements(holds) AS entry
    WHERE entry->>'hold' <> hold::text
$$;

-- Products with entries, for the sweeper.
CREATE INDEX products_with_holds_idx ON products (id) WHERE holds <> '[]'::jsonb;

-- The version follows every change a reader sees, reservations included.
CREATE OR REPLACE FUNCTION products_own_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.sku, NEW.name, NEW.description, NEW.price_cents, NEW.currency, NEW.stock,
        NEW.deleted_at, NEW.holds)
       IS NOT DISTINCT FROM
       (OLD.sku, OLD.name, OLD.description, OLD.price_cents, OLD.currency, OLD.stock,
        OLD.deleted_at, OLD.holds) THEN
        NEW.version := OLD.version;
        NEW.updated_at := OLD.updated_at;
    ELSE
        NEW.version := OLD.version + 1;
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END
$$;

-- A hold as its holder reads it. `items` is what it set aside: [{"product_id", "quantity"}].
-- A hold never changes its items; it ends released, converted (into `order_id`), or by its
-- expiry, which needs no write.
CREATE TABLE holds (
    id           uuid        PRIMARY KEY,
    access_token text        NOT NULL,
    status       text        NOT NULL DEFAULT 'held'
                             CHECK (status IN ('held', 'released', 'converted')),
    items        jsonb       NOT NULL,
    expires_at   timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    ended_at     timestamptz,
    order_id     bigint      REFERENCES orders (id)
);
CREATE INDEX holds_expires_at_idx ON holds (expires_at);

-- An Idempotency-Key of POST /v1/holds finds its hold.
ALTER TABLE idempotency_keys ADD COLUMN hold_id uuid REFERENCES holds (id) ON DELETE CASCADE;

-- Orders are confirmed or cancelled; a cancelled order returned its stock.
ALTER TABLE orders ADD CONSTRAINT orders_status_known CHECK (status IN ('confirmed', 'cancelled'));
ALTER TABLE orders ADD COLUMN cancelled_at timestamptz;
ALTER TABLE orders ADD COLUMN hold_id uuid REFERENCES holds (id);
