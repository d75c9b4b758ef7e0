-- retention_status(window_s) -> (ahead_s, overdue_s, horizon, partitions):
-- the bookkeeping's partitions as the operators see them
-- (docs/ledger.md#retention), one definition for the workers' gauges
-- (ledgerline_partitions_ahead_seconds, ledgerline_bookkeeping_overdue_seconds)
-- and `ledgerctl status`:
--   ahead_s     seconds until the newest partition of processed or outbox,
--               whichever ends first, ends (negative: already past; 0 when
--               there is none)
--   overdue_s   seconds the oldest partition of either table has outlived
--               window_s (0 when none has)
--   horizon     retention_horizon()
--   partitions  processed's partitions, the legacy one included
CREATE OR REPLACE FUNCTION retention_status(p_window_s bigint)
RETURNS TABLE (ahead_s double precision, overdue_s double precision, horizon timestamptz,
               partitions integer)
LANGUAGE sql STABLE
AS $$
    SELECT coalesce(extract(epoch FROM least(max(b.hi) FILTER (WHERE b.t = 'processed'),
                                             max(b.hi) FILTER (WHERE b.t = 'outbox')) - now()),
                    0)::double precision,
           coalesce(greatest(0, extract(epoch FROM now() - make_interval(secs => p_window_s)
                                                   - min(b.hi))), 0)::double precision,
           retention_horizon(),
           (count(*) FILTER (WHERE b.t = 'processed'))::integer
    FROM (SELECT 'processed' AS t, x.hi FROM retention_bounds('processed') x
          UNION ALL SELECT 'outbox', y.hi FROM retention_bounds('outbox') y) b
$$;
