-- retention_bounds(table) -> (part, lo, hi): the partitions of a
-- partitioned bookkeeping table (processed, outbox) and the times they
-- hold, created_at in [lo, hi), oldest first. The legacy partition that
-- migration 017 attached holds every time before it: lo = -infinity.
-- Read from the catalog, so a partition created or dropped earlier in the
-- same transaction is seen as it is now. The bounds are printed by
-- pg_get_expr and read back as text: in ISO and UTC, whatever the caller's
-- DateStyle and TimeZone (a zone abbreviation such as IST names two zones).
CREATE OR REPLACE FUNCTION retention_bounds(p_table text)
RETURNS TABLE (part text, lo timestamptz, hi timestamptz)
LANGUAGE sql STABLE
SET datestyle = 'ISO, YMD'
SET timezone = 'UTC'
AS $$
    SELECT c.relname::text,
           CASE WHEN x.b ~ 'FROM \(MINVALUE\)' THEN '-infinity'::timestamptz
                ELSE substring(x.b FROM 'FROM \(''([^'']*)''\)')::timestamptz END,
           CASE WHEN x.b ~ 'TO \(MAXVALUE\)' THEN 'infinity'::timestamptz
                ELSE substring(x.b FROM 'TO \(''([^'']*)''\)')::timestamptz END AS hi
    FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid
    CROSS JOIN LATERAL (SELECT pg_get_expr(c.relpartbound, c.oid) AS b) x
    WHERE i.inhparent = p_table::regclass
    ORDER BY hi
$$;
