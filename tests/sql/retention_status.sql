-- retention_status(window_s): what the workers' gauges and `ledgerctl
-- status` report of the bookkeeping's partitions (docs/ledger.md#retention):
-- how far ahead the newest pair reaches (the table that ends first
-- counts), how long the oldest partition has outlived the window, the
-- horizon and the number of processed partitions.
BEGIN;
SELECT plan(8);

-- a fresh ledger: the legacy partitions and those migrate made ahead
SELECT ok((SELECT ahead_s > 0 FROM retention_status(604800)),
          'retention_status: a migrated ledger has partitions ahead of now');
SELECT is((SELECT overdue_s FROM retention_status(604800)), 0::double precision,
          'retention_status: nothing is overdue while the legacy partition holds only the past (its end is the migration)');
SELECT is((SELECT horizon FROM retention_status(604800)), '-infinity'::timestamptz,
          'retention_status: the horizon is -infinity while the legacy partition is there');
SELECT is((SELECT partitions FROM retention_status(604800)),
          (SELECT count(*)::integer FROM retention_bounds('processed')),
          'retention_status: partitions counts processed''s partitions, the legacy one included');

-- two weeks of daily partitions (tests/sql/lib/retention.sql)
SELECT pg_temp.past_partitions(14);
CREATE TEMP TABLE lo0 ON COMMIT DROP AS
    SELECT min(lo) + interval '14 days' AS t FROM retention_bounds('processed');
SELECT is((SELECT horizon FROM retention_status(604800)), (SELECT t - interval '14 days' FROM lo0),
          'retention_status: the horizon is the oldest partition''s start');
-- the oldest partition ends 13 days before lo0: with a window of 7 days it
-- is overdue by (now - 7 days) - (lo0 - 13 days)
SELECT ok((SELECT abs(s.overdue_s - extract(epoch FROM now() - interval '7 days'
                                            - (l.t - interval '13 days'))) < 1
           FROM retention_status(604800) s, lo0 l),
          'retention_status: overdue_s is how long the oldest partition''s end is past the window');
SELECT is((SELECT overdue_s FROM retention_status(60 * 86400)), 0::double precision,
          'retention_status: nothing is overdue when every partition ends inside the window');
-- outbox's newest partition gone: outbox now ends first, and counts
DO $$ BEGIN
    EXECUTE format('DROP TABLE %I', (SELECT part FROM retention_bounds('outbox')
                                     ORDER BY hi DESC LIMIT 1));
END $$;
SELECT ok((SELECT abs(s.ahead_s - extract(epoch FROM (SELECT max(hi) FROM retention_bounds('outbox'))
                                                     - now())) < 1
           FROM retention_status(604800) s),
          'retention_status: ahead_s is how far the table whose partitions end first reaches');

SELECT * FROM finish();
ROLLBACK;
