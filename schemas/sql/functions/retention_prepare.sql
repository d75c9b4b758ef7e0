-- retention_prepare(partition_s, ahead_s) -> integer: creates the
-- partitions of processed and outbox from the newest one's end until one
-- ends more than ahead_s from now; returns how many times it created a
-- pair. Partitions end on multiples of partition_s since the Unix epoch
-- (86400: UTC midnights); after a gap (no worker ran for longer than
-- ahead_s), the first one reaches from the gap's start to the first such
-- end after now. Both tables get the same bounds, so retention_expire()
-- can drop a time's processed rows and its events together. Named
-- <table>_p<lower bound, UTC, YYYYMMDD_HHMMSS>.
--
-- Every worker runs it at start and at each retention tick, after taking
-- the retention job's advisory lock (class 4, key 0) with pg_try: a worker
-- that finds another one at it skips; `ledgerctl migrate` runs it after
-- the migrations and waits for that lock (taken here).
-- A partition is created before it is needed: an insert at a time that no
-- partition holds fails.
CREATE OR REPLACE FUNCTION retention_prepare(p_partition_s integer, p_ahead_s integer)
RETURNS integer
LANGUAGE plpgsql
SET datestyle = 'ISO, YMD'
SET timezone = 'UTC'
AS $$
DECLARE
    lo timestamptz;
    hi timestamptz;
    made integer := 0;
    t text;
BEGIN
    IF p_partition_s < 60 OR p_ahead_s < 0 THEN
        RAISE EXCEPTION 'retention_prepare: partition_s % (at least 60), ahead_s % (at least 0)',
            p_partition_s, p_ahead_s;
    END IF;
    PERFORM pg_advisory_xact_lock(4, 0);
    SELECT max(b.hi) INTO lo FROM retention_bounds('processed') b;
    IF lo IS NULL THEN
        lo := now();
    END IF;
    IF lo <= now() + make_interval(secs => p_ahead_s) THEN
        -- both tables at once, in one wait (the caller's lock_timeout)
        LOCK TABLE processed, outbox IN ACCESS EXCLUSIVE MODE;
    END IF;
    WHILE lo <= now() + make_interval(secs => p_ahead_s) LOOP
        hi := to_timestamp((floor(extract(epoch FROM greatest(lo, now())) / p_partition_s) + 1)
                           * p_partition_s);
        FOREACH t IN ARRAY ARRAY['processed', 'outbox'] LOOP
            EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                           t || '_p' || to_char(lo AT TIME ZONE 'UTC', 'YYYYMMDD"_"HH24MISS'),
                           t, lo, hi);
        END LOOP;
        made := made + 1;
        lo := hi;
    END LOOP;
    RETURN made;
END;
$$;
