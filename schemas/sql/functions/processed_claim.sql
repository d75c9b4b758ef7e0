-- processed_claim(stage, batch) -> jsonb: inserts the processed rows of a
-- batch at once, in key order, outcome 'pending'; the first occurrence of a
-- key in the batch is the one inserted. An element's key is its "key"
-- member (stage_batch_json writes it: the payment_id, refund_id, or
-- "deposit:<id>"...); processed.payment_id holds it. Returns the keys inserted
-- now as {id: ordinal of that first occurrence}: an
-- element is new exactly when it is that occurrence; any other element is a
-- duplicate or a conflict of a row that already existed.
--
-- processed is partitioned by time (migration 017): no unique index says
-- that a key is claimed once. This function says it. Lock rule 3
-- (docs/ledger.md#locks): first one transaction-scoped advisory lock per
-- key, class 3, key hashtext(stage/key), in ascending order, held to the
-- commit; then, in the next statement (a new snapshot: it sees what a
-- transaction that held one of these locks committed), the rows of these
-- keys already there, in every partition; then the insert of the others.
-- So a key that another transaction is claiming waits for it, and the
-- payment is decided once; two batches never wait in a cycle.
-- PL/pgSQL, not LANGUAGE sql: a SQL function that cannot be inlined is
-- planned again at every call; PL/pgSQL keeps its plan for the session.
--
-- batch: [{"key", "hash", "payload", ...}, ...]
CREATE OR REPLACE FUNCTION processed_claim(p_stage text, p_batch jsonb) RETURNS jsonb
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    fresh jsonb;
BEGIN
    -- the lookup below must see what the lock's last holder committed
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'processed_claim needs READ COMMITTED, not %',
            current_setting('transaction_isolation');
    END IF;
    PERFORM pg_advisory_xact_lock(3, s.k)
    FROM (SELECT DISTINCT hashtext(p_stage || '/' || (x.value ->> 'key')) AS k
          FROM jsonb_array_elements(p_batch) x ORDER BY 1) s;
    WITH first AS (
        SELECT DISTINCT ON (x.value ->> 'key') x.value ->> 'key' AS id,
               x.value ->> 'hash' AS hash, x.value ->> 'payload' AS payload, x.ordinality AS n
        FROM jsonb_array_elements(p_batch) WITH ORDINALITY x
        ORDER BY x.value ->> 'key', x.ordinality),
    known AS (
        SELECT p.payment_id FROM processed p
        WHERE p.stage = p_stage AND p.payment_id = ANY (ARRAY(SELECT f.id FROM first f))),
    ins AS (
        INSERT INTO processed (stage, payment_id, payload_hash, payload, outcome)
        SELECT p_stage, f.id, f.hash, f.payload, 'pending' FROM first f
        WHERE f.id <> ALL (ARRAY(SELECT k.payment_id FROM known k))
        ORDER BY f.id
        RETURNING processed.payment_id)
    SELECT coalesce(jsonb_object_agg(f.id, f.n), '{}'::jsonb) INTO fresh
    FROM first f JOIN ins i ON i.payment_id = f.id;
    RETURN fresh;
END;
$$;
