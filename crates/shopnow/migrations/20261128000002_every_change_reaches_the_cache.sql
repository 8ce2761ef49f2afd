-- Every change to a product reaches the cache, whoever makes it: the API, an ERP sync, a bulk
-- import, an admin in psql, a data migration.

-- 1. Postgres owns the version, for every writer. A statement that changes anything a reader
--    sees raises it by exactly one, whatever the statement says about it (nothing, a lower
--    value, the same value); a statement that changes nothing keeps it. The API's statements
--    leave version and updated_at to this trigger.
CREATE FUNCTION products_own_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.sku, NEW.name, NEW.description, NEW.price_cents, NEW.currency, NEW.stock,
        NEW.deleted_at)
       IS NOT DISTINCT FROM
       (OLD.sku, OLD.name, OLD.description, OLD.price_cents, OLD.currency, OLD.stock,
        OLD.deleted_at) THEN
        NEW.version := OLD.version;
        NEW.updated_at := OLD.updated_at;
    ELSE
        NEW.version := OLD.version + 1;
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER products_own_version BEFORE UPDATE ON products
    FOR EACH ROW EXECUTE FUNCTION products_own_version();

-- 2. A product is never deleted: orders keep their history, and a deleted row would leave its
--    cached copy behind. Deleting is setting deleted_at, which is a version like any change:
--    every instance then answers 404 for it.
CREATE FUNCTION products_refuse_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'products are never deleted from the table'
        USING ERRCODE = 'restrict_violation',
              HINT = 'UPDATE products SET deleted_at = now() WHERE id = ...; every instance '
                     'then answers 404 for it (this is what DELETE /v1/products/{id} does)';
END
$$;

CREATE TRIGGER products_refuse_delete BEFORE DELETE ON products
    FOR EACH ROW EXECUTE FUNCTION products_refuse_delete();
CREATE TRIGGER products_refuse_truncate BEFORE TRUNCATE ON products
    FOR EACH STATEMENT EXECUTE FUNCTION products_refuse_delete();

-- 3. Every committed change leaves a row in the cache outbox, in its own transaction, one
--    INSERT per statement however many rows it changed. shopnow instances mark their sessions
--    (shopnow.writer = instance): they publish their own changes and remove the rows, and the
--    relay takes a row of theirs only if it is left behind. For any other writer the trigger
--    wakes the relays at commit (NOTIFY), which publish at once.
ALTER TABLE cache_outbox ADD COLUMN written_by_instance boolean NOT NULL DEFAULT false;
CREATE INDEX cache_outbox_product_version_idx ON cache_outbox (product_id, version);

CREATE FUNCTION products_record_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    by_instance boolean := coalesce(current_setting('shopnow.writer', true), '') = 'instance';
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO cache_outbox (product_id, version, written_by_instance)
        SELECT id, version, by_instance FROM changed;
    ELSE
        INSERT INTO cache_outbox (product_id, version, written_by_instance)
        SELECT changed.id, changed.version, by_instance
        FROM changed JOIN previous ON previous.id = changed.id
        WHERE changed.version <> previous.version;
    END IF;
    IF FOUND AND NOT by_instance THEN
        PERFORM pg_notify('shopnow_outbox', '');
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER products_record_update AFTER UPDATE ON products
    REFERENCING OLD TABLE AS previous NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION products_record_change();
CREATE TRIGGER products_record_insert AFTER INSERT ON products
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION products_record_change();
