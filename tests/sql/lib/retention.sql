-- tests/sql/lib/retention.sql: session helpers (pg_temp, gone with the
-- session) that the retention suites share. tests/sql/run.sh loads every
-- file of tests/sql/lib/ before a suite, in the suite's session; the C
-- suites load this one with llw_past_partitions() (tests/support/ll_ledger.c).

-- pg_temp.past_partitions(days): the ledger as if it had run for `days`
-- days: the legacy partitions of migration 017 (empty in a fresh ledger)
-- dropped, and daily partitions of processed and outbox, in pairs of the
-- same bounds, for the `days` days below the first one `ledgerctl migrate`
-- made; the horizon is then about `days` days back.
CREATE OR REPLACE FUNCTION pg_temp.past_partitions(p_days integer) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    lo0 timestamptz := (SELECT min(b.lo) FROM retention_bounds('processed') b
                        WHERE b.lo > '-infinity');
    t text;
BEGIN
    DROP TABLE processed_legacy;
    DROP TABLE outbox_legacy;
    FOR i IN 1..p_days LOOP
        FOREACH t IN ARRAY ARRAY['processed', 'outbox'] LOOP
            EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                           t || '_past' || i, t, lo0 - make_interval(days => i),
                           lo0 - make_interval(days => i - 1));
        END LOOP;
    END LOOP;
END $$;
