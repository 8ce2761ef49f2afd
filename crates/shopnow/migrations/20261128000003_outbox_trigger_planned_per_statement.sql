-- The outbox trigger's query is planned for the rows at hand.
--
-- PL/pgSQL keeps the plan of a query after a few calls, planned for the transition tables of
-- then. After a session's single-row UPDATEs (an ERP sync changing products one by one) that
-- plan is a nested loop over the old and new rows, which makes a later UPDATE of n rows in the
-- same session cost n²: 10,000 rows took 5.6 s instead of 0.1 s, 100,000 would take minutes,
-- holding the row lock of every product meanwhile. A statement of many rows now has its query
-- planned for it (EXECUTE: the planner knows each transition table's row count). Planning costs
-- more than a single-row write's whole trigger (EXECUTE on every statement cost API writes 15%
-- of their rate), so statements of a few rows keep the kept plan, a nested loop that suits them.
CREATE OR REPLACE FUNCTION products_record_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    by_instance boolean := coalesce(current_setting('shopnow.writer', true), '') = 'instance';
    recorded bigint;
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO cache_outbox (product_id, version, written_by_instance)
        SELECT id, version, by_instance FROM changed;
    ELSIF (SELECT count(*) FROM changed) <= 64 THEN
        INSERT INTO cache_outbox (product_id, version, written_by_instance)
        SELECT changed.id, changed.version, by_instance
        FROM changed JOIN previous ON previous.id = changed.id
        WHERE changed.version <> previous.version;
    ELSE
        EXECUTE 'INSERT INTO cache_outbox (product_id, version, written_by_instance)
                 SELECT changed.id, changed.version, $1
                 FROM changed JOIN previous ON previous.id = changed.id
                 WHERE changed.version <> previous.version'
            USING by_instance;
    END IF;
    -- EXECUTE leaves FOUND alone; the row count says whether anything was recorded.
    GET DIAGNOSTICS recorded = ROW_COUNT;
    IF recorded > 0 AND NOT by_instance THEN
        PERFORM pg_notify('shopnow_outbox', '');
    END IF;
    RETURN NULL;
END
$$;
