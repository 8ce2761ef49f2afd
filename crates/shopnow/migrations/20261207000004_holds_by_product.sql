-- The live holds of a product, for an operator (`GET /v1/products/{id}/holds`, and the release
-- of them all): found by their items without reading every hold kept for the retention.
CREATE INDEX holds_live_items_idx ON holds USING gin (items jsonb_path_ops)
    WHERE status = 'held';
