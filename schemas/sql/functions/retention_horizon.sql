-- retention_horizon() -> timestamptz: the oldest time from which every
-- processed row is kept (the lower bound of processed's oldest partition;
-- -infinity while the legacy partition of migration 017 is there). A
-- message processed before it has no processed row any more: its outcome
-- is in the books only (docs/ledger.md#retention). verify checks the
-- bookkeeping only from here on.
CREATE OR REPLACE FUNCTION retention_horizon() RETURNS timestamptz
LANGUAGE sql STABLE
SET datestyle = 'ISO, YMD'
SET timezone = 'UTC'
AS $$
    SELECT coalesce(min(b.lo), '-infinity') FROM retention_bounds('processed') b
$$;
