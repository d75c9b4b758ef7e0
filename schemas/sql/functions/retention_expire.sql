-- retention_expire(window_s, archive_first) -> (part, lo, hi, action):
-- drops the partitions of processed and outbox that end window_s or more
-- before now (docs/ledger.md#retention), in one transaction: a crash drops
-- all or nothing. With archive_first, only those that also end at or
-- before the newest `before` of retention_archives (what `ledgerctl
-- archive` wrote). One row per partition looked at: action 'dropped', or
-- 'kept: ...' with the reason.
--
-- What is never dropped:
-- - an outbox partition holding an event not yet confirmed by the broker
--   (a row of outbox_pending in its time): the sweep still publishes it;
-- - an outbox partition whose time still has processed rows: a duplicate
--   answered from processed replays its stored event. processed goes
--   first; the two tables share their bounds (retention_prepare).
-- A processed row younger than window_s is never dropped: its partition
-- ends after it.
--
-- Locks: advisory class 4, key 0 (the retention job's, pg_try: a second
-- runner returns at once, dropping nothing), then, only when a partition
-- is to be dropped, processed and outbox ACCESS EXCLUSIVE in one LOCK
-- statement, under the caller's lock_timeout: batches queue behind it for
-- at most that long, then for the drops themselves (catalog work). A
-- partition only kept takes no table lock.
CREATE OR REPLACE FUNCTION retention_expire(p_window_s integer, p_archive_first boolean)
RETURNS TABLE (part text, lo timestamptz, hi timestamptz, action text)
LANGUAGE plpgsql AS $$
DECLARE
    edge timestamptz := now() - make_interval(secs => p_window_s);
    archived timestamptz;   -- with p_archive_first, a partition must end by it
    kept_from timestamptz;  -- the oldest processed time that stays
    r record;
    unsent bigint;
BEGIN
    IF p_window_s < 60 THEN
        RAISE EXCEPTION 'retention_expire: window_s % (at least 60)', p_window_s;
    END IF;
    IF NOT pg_try_advisory_xact_lock(4, 0) THEN
        RETURN;
    END IF;
    archived := CASE WHEN p_archive_first
                     THEN (SELECT coalesce(max(a.before), '-infinity') FROM retention_archives a)
                     ELSE 'infinity' END;
    -- what goes, decided before any table lock (nothing but the sweep, which
    -- only deletes, touches the outbox_pending rows of an old time)
    SELECT min(b.lo) INTO kept_from FROM retention_bounds('processed') b
    WHERE NOT (b.hi <= edge AND b.hi <= archived);
    IF EXISTS (SELECT 1 FROM retention_bounds('processed') b
               WHERE b.hi <= edge AND b.hi <= archived)
       OR EXISTS (SELECT 1 FROM retention_bounds('outbox') b
                  WHERE b.hi <= edge AND (kept_from IS NULL OR kept_from >= b.hi)
                    AND NOT EXISTS (SELECT 1 FROM outbox_pending q
                                    WHERE q.created_at >= b.lo AND q.created_at < b.hi)) THEN
        -- both tables at once, in one wait (the caller's lock_timeout)
        LOCK TABLE processed, outbox IN ACCESS EXCLUSIVE MODE;
    END IF;
    FOR r IN SELECT b.part, b.lo, b.hi FROM retention_bounds('processed') b
             WHERE b.hi <= edge ORDER BY b.hi LOOP
        part := r.part; lo := r.lo; hi := r.hi;
        IF r.hi > archived THEN
            action := 'kept: not archived yet (retention.archive_first: run ledgerctl archive)';
        ELSE
            EXECUTE format('DROP TABLE %I', r.part);
            action := 'dropped';
        END IF;
        RETURN NEXT;
    END LOOP;
    FOR r IN SELECT b.part, b.lo, b.hi FROM retention_bounds('outbox') b
             WHERE b.hi <= edge ORDER BY b.hi LOOP
        part := r.part; lo := r.lo; hi := r.hi;
        SELECT count(*) INTO unsent FROM outbox_pending q
        WHERE q.created_at >= r.lo AND q.created_at < r.hi;
        IF kept_from IS NOT NULL AND kept_from < r.hi THEN
            action := 'kept: processed rows of its time remain';
        ELSIF unsent > 0 THEN
            action := format('kept: %s event(s) not confirmed by the broker', unsent);
        ELSE
            EXECUTE format('DROP TABLE %I', r.part);
            action := 'dropped';
        END IF;
        RETURN NEXT;
    END LOOP;
END;
$$;
