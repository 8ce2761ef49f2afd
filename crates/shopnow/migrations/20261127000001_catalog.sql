-- Catalog, orders and idempotency keys.

CREATE TABLE products (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sku         TEXT        NOT NULL,
    name        TEXT        NOT NULL,
    description TEXT        NOT NULL DEFAULT '',
    price_cents BIGINT      NOT NULL CHECK (price_cents >= 0),
    currency    TEXT        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    stock       BIGINT      NOT NULL CHECK (stock >= 0),
    -- Raised by exactly one in the same statement as every change of the row, deletes included.
    -- The cache keys its entries by it, so it must never go back: Postgres is its only owner.
    version     BIGINT      NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Deleted products stay so that orders keep their history; they read as 404.
    deleted_at  TIMESTAMPTZ
);

-- A SKU names one live product; a deleted product's SKU may be reused.
CREATE UNIQUE INDEX products_live_sku_key ON products (sku) WHERE deleted_at IS NULL;

CREATE TABLE orders (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    status      TEXT        NOT NULL DEFAULT 'confirmed',
    total_cents BIGINT      NOT NULL CHECK (total_cents >= 0),
    currency    TEXT        NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE order_items (
    order_id         BIGINT  NOT NULL REFERENCES orders (id),
    product_id       BIGINT  NOT NULL REFERENCES products (id),
    quantity         BIGINT  NOT NULL CHECK (quantity > 0),
    unit_price_cents BIGINT  NOT NULL CHECK (unit_price_cents >= 0),
    PRIMARY KEY (order_id, product_id)
);

CREATE INDEX order_items_product_id_idx ON order_items (product_id);

-- One row per Idempotency-Key: a retry with the same key and request returns the stored order.
CREATE TABLE idempotency_keys (
    key          TEXT        PRIMARY KEY,
    request_hash BYTEA       NOT NULL,
    -- Set in the same transaction that inserts the key, so a committed row always has it.
    order_id     BIGINT      REFERENCES orders (id),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
