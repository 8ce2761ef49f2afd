-- Categories: a tree of slugs, and the products each one lists (issue: category pages at cache
-- speed, never stale).
--
-- A product names its own categories (`category_ids`); `listed_in` adds every ancestor of
-- them: the categories whose pages list the product. Both are columns of the product row, so
-- a change of membership, whether a product's categories change or a category moves to
-- another parent, is a change of the product: a new version, an outbox row, a publish, the one
-- path every copy already takes (docs/design.md, "Category pages").

CREATE TABLE categories (
    id          BIGSERIAL PRIMARY KEY,
    -- Never changes: links, cursors and cached pages name a category by it.
    slug        TEXT NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$' AND length(slug) <= 64),
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    parent_id   BIGINT REFERENCES categories (id),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (parent_id <> id)
);
CREATE INDEX categories_parent_idx ON categories (parent_id);

ALTER TABLE products ADD COLUMN category_ids bigint[] NOT NULL DEFAULT '{}';
ALTER TABLE products ADD COLUMN listed_in bigint[] NOT NULL DEFAULT '{}';
-- The same two lists as slugs, which never change: what a product shows and what a page
-- filters by, with no lookup on the write path (every write returns the row).
ALTER TABLE products ADD COLUMN category_slugs text[] NOT NULL DEFAULT '{}';
ALTER TABLE products ADD COLUMN listed_in_slugs text[] NOT NULL DEFAULT '{}';
-- A move finds the products under a category by id; a page, by slug.
CREATE INDEX products_listed_in_idx ON products USING gin (listed_in);
CREATE INDEX products_listed_in_slugs_idx ON products USING gin (listed_in_slugs);

-- The categories `ids` and all their ancestors, sorted. An id no category has is refused: the
-- API checks slugs first, and this holds SQL writers to the same.
CREATE FUNCTION shopnow_listed_in(ids bigint[]) RETURNS bigint[] LANGUAGE plpgsql STABLE AS $$
DECLARE
    listed bigint[];
BEGIN
    IF cardinality(ids) = 0 THEN
        RETURN '{}';
    END IF;
    IF (SELECT count(*) FROM categories WHERE id = ANY(ids)) <> cardinality(ARRAY(
            SELECT DISTINCT unnest(ids))) THEN
        RAISE EXCEPTION 'no category has one of the ids %', ids USING ERRCODE = 'foreign_key_violation';
    END IF;
    WITH RECURSIVE up(id, parent_id) AS (
        SELECT id, parent_id FROM categories WHERE id = ANY(ids)
        UNION
        SELECT c.id, c.parent_id FROM categories c JOIN up ON c.id = up.parent_id
    )
    SELECT coalesce(array_agg(DISTINCT id ORDER BY id), '{}') INTO listed FROM up;
    RETURN listed;
END
$$;

CREATE FUNCTION products_list_in_categories() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.category_ids := ARRAY(SELECT DISTINCT unnest(NEW.category_ids) ORDER BY 1);
    NEW.listed_in := shopnow_listed_in(NEW.category_ids);
    NEW.category_slugs := shopnow_slugs(NEW.category_ids);
    NEW.listed_in_slugs := shopnow_slugs(NEW.listed_in);
    RETURN NEW;
END
$$;
-- Runs before `products_own_version` (triggers of one event run in name order), so that the
-- version sees the membership it leaves; only for statements that set the membership (a hold or
-- a stock change pays nothing). A category's move sets `listed_in` of the products it lists,
-- which recomputes it here.
CREATE TRIGGER products_list_in_categories BEFORE INSERT OR UPDATE OF category_ids, listed_in ON products
    FOR EACH ROW EXECUTE FUNCTION products_list_in_categories();

CREATE OR REPLACE FUNCTION products_own_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.sku, NEW.name, NEW.description, NEW.price_cents, NEW.currency, NEW.stock,
        NEW.deleted_at, NEW.holds, NEW.purchase_limit, NEW.category_ids, NEW.listed_in)
       IS NOT DISTINCT FROM
       (OLD.sku, OLD.name, OLD.description, OLD.price_cents, OLD.currency, OLD.stock,
        OLD.deleted_at, OLD.holds, OLD.purchase_limit, OLD.category_ids, OLD.listed_in) THEN
        NEW.version := OLD.version;
        NEW.updated_at := OLD.updated_at;
    ELSE
        NEW.version := OLD.version + 1;
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END
$$;

-- The first time a hold of the row lapses, in ms (NULL without live holds): until then its
-- `available` cannot grow without a new version. A cached page that left out a product for
-- having none available is served until then at most.
CREATE FUNCTION shopnow_next_lapse(holds jsonb) RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT min((entry->>'expires_at')::bigint)
    FROM jsonb_array_elements(holds) AS entry
    WHERE (entry->>'expires_at')::bigint > shopnow_now_ms()
$$;

-- Sorts of list pages (keyset: the sort key, then the id).
CREATE INDEX products_live_price_idx ON products (price_cents, id) WHERE deleted_at IS NULL;
-- Names sort by code point (`COLLATE "C"`): the same order on every server, and the order a
-- cached page is checked in.
CREATE INDEX products_live_name_idx ON products ((name COLLATE "C"), id) WHERE deleted_at IS NULL;

-- The slugs of `ids`, sorted by code point.
CREATE FUNCTION shopnow_slugs(ids bigint[]) RETURNS text[] LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN cardinality(ids) = 0 THEN '{}'::text[] ELSE ARRAY(
        SELECT slug FROM categories WHERE id = ANY(ids) ORDER BY slug COLLATE "C") END
$$;

-- The ids of the categories `slugs`; a slug no category has is refused, named.
CREATE FUNCTION shopnow_category_ids(slugs text[]) RETURNS bigint[] LANGUAGE plpgsql STABLE AS $$
DECLARE
    ids bigint[];
    unknown text;
BEGIN
    SELECT s INTO unknown FROM unnest(slugs) AS s
    WHERE NOT EXISTS (SELECT 1 FROM categories WHERE slug = s) LIMIT 1;
    IF unknown IS NOT NULL THEN
        RAISE EXCEPTION 'no category has the slug "%"', unknown USING ERRCODE = 'foreign_key_violation';
    END IF;
    SELECT coalesce(array_agg(DISTINCT id ORDER BY id), '{}') INTO ids FROM categories WHERE slug = ANY(slugs);
    RETURN ids;
END
$$;
