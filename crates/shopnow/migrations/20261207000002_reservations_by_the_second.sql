-- What a product has reserved, as a schedule of when units lapse: one entry per second in
-- which holds of the product expire, not one per hold (issue: a flash sale on one product).
--
-- With an entry per hold, every read fetched and every write rewrote all of a product's live
-- holds: at 10,000 shoppers in checkout, reads ran at a twentieth and new holds at a tenth.
-- A hold now expires at a whole second (its `expires_at` is rounded up when it is made), and
-- its units are added to that second's entry: the list grows with the seconds in which holds
-- lapse, never with the shoppers. Releasing or converting a hold takes its units back out of
-- its second's entry. The entries keep the shape they had ({"quantity", "expires_at"}, ms),
-- so `shopnow_reserved` and `shopnow_live_holds` read both.

-- A hold made now for `ttl_seconds` expires at the next whole second after now() + ttl.
CREATE FUNCTION shopnow_hold_expiry(ttl_seconds float8) RETURNS timestamptz LANGUAGE sql STABLE AS $$
    SELECT to_timestamp(ceil(extract(epoch FROM now()) + ttl_seconds::numeric))
$$;

-- `holds` with `quantity` more units lapsing at `expires_at` (ms; less, when negative): entries
-- of one expiry become one, an entry left with no units goes, the list stays in expiry order.
CREATE FUNCTION shopnow_hold_change(holds jsonb, expires_at bigint, quantity bigint)
RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object('quantity', units, 'expires_at', at)
                              ORDER BY at), '[]'::jsonb)
    FROM (
        SELECT at, sum(units)::bigint AS units
        FROM (
            SELECT (entry->>'expires_at')::bigint AS at, (entry->>'quantity')::bigint AS units
            FROM jsonb_array_elements(holds) AS entry
            UNION ALL
            SELECT expires_at, quantity
        ) AS entries
        GROUP BY at
    ) AS schedule
    WHERE units > 0
$$;

-- A list of one entry per hold, as the build before wrote it, as a schedule by the second.
CREATE FUNCTION shopnow_holds_by_the_second(holds jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object('quantity', units, 'expires_at', at)
                              ORDER BY at), '[]'::jsonb)
    FROM (
        SELECT (ceil((entry->>'expires_at')::numeric / 1000) * 1000)::bigint AS at,
               sum((entry->>'quantity')::bigint)::bigint AS units
        FROM jsonb_array_elements(holds) AS entry
        GROUP BY 1
    ) AS schedule
    WHERE units > 0
$$;

-- The live holds of a running deployment carry over: each expires at the whole second after
-- the time it had (at most a second later), and the products' lists become schedules of their
-- live entries (a new version each, published by the relays). Both statements judge "live" by
-- the same now(), the migration's start, so a hold and its units agree.
UPDATE holds SET expires_at = to_timestamp(ceil(extract(epoch FROM expires_at)))
WHERE status = 'held' AND expires_at > now();
UPDATE products SET holds = shopnow_holds_by_the_second(shopnow_live_holds(holds))
WHERE holds <> '[]'::jsonb;
