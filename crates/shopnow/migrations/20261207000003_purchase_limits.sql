-- A purchase limit per product: the most units of it one hold or one order may take (what
-- shops set for a drop: "2 per customer"). NULL: the deployment's default
-- (SHOPNOW_MAX_LINE_QUANTITY). It is part of what a reader sees, so a change of it is a change
-- of the product: a new version, an outbox row, a publish.
ALTER TABLE products ADD COLUMN purchase_limit bigint
    CHECK (purchase_limit BETWEEN 1 AND 10000);

CREATE OR REPLACE FUNCTION products_own_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.sku, NEW.name, NEW.description, NEW.price_cents, NEW.currency, NEW.stock,
        NEW.deleted_at, NEW.holds, NEW.purchase_limit)
       IS NOT DISTINCT FROM
       (OLD.sku, OLD.name, OLD.description, OLD.price_cents, OLD.currency, OLD.stock,
        OLD.deleted_at, OLD.holds, OLD.purchase_limit) THEN
        NEW.version := OLD.version;
        NEW.updated_at := OLD.updated_at;
    ELSE
        NEW.version := OLD.version + 1;
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END
$$;
