-- settlement_apply_batch(batch, window_s): adds each completed payment, in
-- queue order, to the batch of its payee, currency and window. One row per
-- element: verdict 'new' (batch_id, late), 'duplicate', 'conflict'
-- (prior_payload) or 'unposted' (prior_payload says why: the event does
-- not match the ledger).
--
-- The window is posted_at floored to window_s (aligned to the Unix epoch:
-- one day = UTC midnight). A payment whose window is closed joins the next
-- open window of its payee and currency, marked late: never a closed
-- batch, never lost. A batch's gross and fees are signed 64-bit: a
-- payment that would take either past the bigint range finds the batch
-- full and joins the next window's the same way (marked late).
-- Fee = settlement_fee(amount, payee's fee_bps, fee_fixed) at the time it
-- joins. The ledger, not the event, says what was paid: an event without
-- a matching payment transfer (amount, payee, currency) is refused and
-- leaves no processed row, so the genuine event can still come.
--
-- Fast path: one statement when no payment_id is twice in the batch, no
-- payment is late and no batch would fill up; otherwise
-- settlement_apply_seq, with the same
-- results (tests/integration/test_stage_set_based.c).
--
-- Locks (docs/ledger.md#locks): rule 2 class 2 for every (payee, currency)
-- of the batch in hash order, rule 3 (processed_claim), rule 4 (the
-- windows' batches, created if missing, in id order, FOR NO KEY UPDATE).
--
-- batch: [{"payment_id", "hash", "payload", "payee", "amount", "currency",
--          "posted_ms"}, ...]
CREATE OR REPLACE FUNCTION settlement_apply_batch(p_batch jsonb, p_window_s bigint)
RETURNS TABLE (ord integer, verdict text, batch_id text, late boolean, prior_payload text)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    fresh jsonb;
    posted jsonb;
    n bigint;
BEGIN
    -- lock rule 2 for every (payee, currency) of the batch, rule 3, rule 4
    PERFORM pg_advisory_xact_lock(2, s.k)
    FROM (SELECT DISTINCT settlement_lock_key(x.value ->> 'payee', x.value ->> 'currency') AS k
          FROM jsonb_array_elements(p_batch) x) s
    ORDER BY s.k;
    fresh := processed_claim('settlement', p_batch);
    -- the events processed now that the ledger matches: their payment
    -- transfer has their amount, payee and currency ({payment_id: true});
    -- every other one processed now is 'unposted'
    SELECT coalesce(jsonb_object_agg(x.value ->> 'payment_id', true), '{}') INTO posted
    FROM jsonb_array_elements(p_batch) WITH ORDINALITY x(value, n)
    WHERE (fresh ->> (x.value ->> 'payment_id'))::bigint IS NOT DISTINCT FROM x.n
      AND EXISTS (SELECT 1 FROM transfers t
                  WHERE t.kind = 'payment' AND t.ref = x.value ->> 'payment_id'
                    AND t.amount = (x.value ->> 'amount')::bigint
                    AND t.credit_account = x.value ->> 'payee'
                    AND t.currency = x.value ->> 'currency');
    -- the batches of their windows, created and locked in id order: a
    -- forged event (an unknown payee, another currency), a duplicate or a
    -- conflict makes no batch and no error
    INSERT INTO settlement_batches (id, payee, currency, window_start, window_end)
    SELECT settlement_batch_id(k.payee, k.currency, k.w), k.payee, k.currency, k.w,
           k.w + make_interval(secs => p_window_s)
    FROM (SELECT DISTINCT x.value ->> 'payee' AS payee, x.value ->> 'currency' AS currency,
                 to_timestamp(floor((x.value ->> 'posted_ms')::numeric / 1000 / p_window_s)
                              * p_window_s) AS w
          FROM jsonb_array_elements(p_batch) x
          WHERE posted ? (x.value ->> 'payment_id')) k
    ORDER BY 1
    ON CONFLICT DO NOTHING;
    PERFORM 1 FROM settlement_batches s
    WHERE s.id = ANY (ARRAY(SELECT settlement_batch_id(x.value ->> 'payee', x.value ->> 'currency',
                                   to_timestamp(floor((x.value ->> 'posted_ms')::numeric / 1000
                                                      / p_window_s) * p_window_s))
                            FROM jsonb_array_elements(p_batch) x))
    ORDER BY s.id FOR NO KEY UPDATE;
    RETURN QUERY
    WITH el AS (
        SELECT x.n::integer AS ord, x.v ->> 'payment_id' AS id, x.v ->> 'hash' AS hash,
               x.v ->> 'payee' AS payee, (x.v ->> 'amount')::bigint AS amount,
               x.v ->> 'currency' AS currency,
               to_timestamp(floor((x.v ->> 'posted_ms')::numeric / 1000 / p_window_s)
                            * p_window_s) AS w,
               (fresh ->> (x.v ->> 'payment_id'))::bigint IS NOT DISTINCT FROM x.n AS is_new
        FROM jsonb_array_elements(p_batch) WITH ORDINALITY x(v, n)),
    chk AS (  -- the payments processed now: their batch and fee, or why unposted
        SELECT e.ord, e.id, e.amount, t.id AS tid, t.amount AS t_amount,
               t.credit_account AS t_payee, t.currency AS t_currency,
               NOT (posted ? e.id) AS unposted,
               b.id AS bid, b.status, b.gross, b.fees_raw,
               settlement_fee(e.amount, coalesce(a.fee_bps, 0), coalesce(a.fee_fixed, 0)) AS fee
        FROM el e
        LEFT JOIN LATERAL (SELECT x.id, x.amount, x.credit_account, x.currency FROM transfers x
                           WHERE NOT (posted ? e.id) AND x.kind = 'payment' AND x.ref = e.id
                           LIMIT 1) t ON true  -- what the ledger holds, to say why
        LEFT JOIN LATERAL (SELECT x.id, x.status, x.gross, x.fees_raw FROM settlement_batches x
                           WHERE x.payee = e.payee AND x.currency = e.currency
                             AND x.window_start = e.w LIMIT 1) b ON true
        LEFT JOIN LATERAL (SELECT x.fee_bps, x.fee_fixed FROM accounts x
                           WHERE x.id = e.payee LIMIT 1) a ON true
        WHERE e.is_new),
    go AS (   -- decidable at once: no late payment, no payment_id twice, no full batch
        SELECT NOT coalesce((SELECT bool_or(NOT k.unposted AND k.status <> 'open') FROM chk k),
                            false)
               AND (SELECT count(*) = count(DISTINCT el.id) FROM el)
               AND NOT EXISTS (SELECT 1 FROM chk k WHERE NOT k.unposted
                               GROUP BY k.bid, k.gross, k.fees_raw
                               HAVING k.gross + sum(k.amount) > 9223372036854775807
                                   OR k.fees_raw + sum(k.fee) > 9223372036854775807) AS ok),
    del AS (  -- refused: no trace, the genuine event can still come
        DELETE FROM processed p USING chk k
        WHERE k.unposted AND p.stage = 'settlement' AND p.payment_id = k.id
          AND p.payment_id = ANY (ARRAY(SELECT chk.id FROM chk WHERE chk.unposted))
          AND (SELECT go.ok FROM go)
        RETURNING 1),
    items AS (
        INSERT INTO settlement_items (payment_id, batch_id, amount, fee, late)
        SELECT k.id, k.bid, k.amount, k.fee, false FROM chk k
        WHERE NOT k.unposted AND (SELECT go.ok FROM go)
        ORDER BY k.ord
        RETURNING settlement_items.batch_id AS bid, settlement_items.amount, settlement_items.fee),
    upd_b AS (
        UPDATE settlement_batches s
        SET count = s.count + x.n, gross = s.gross + x.g, fees_raw = s.fees_raw + x.f
        FROM (SELECT i.bid, count(*) AS n, sum(i.amount) AS g, sum(i.fee) AS f
              FROM items i GROUP BY i.bid) x
        WHERE s.id = x.bid AND s.id = ANY (ARRAY(SELECT items.bid FROM items))
        RETURNING 1),
    upd_p AS (
        UPDATE processed p SET outcome = 'batched:' || k.bid FROM chk k
        WHERE NOT k.unposted AND p.stage = 'settlement' AND p.payment_id = k.id
          AND p.payment_id = ANY (ARRAY(SELECT el.id FROM el)) AND (SELECT go.ok FROM go)
        RETURNING 1)
    SELECT e.ord,
           CASE WHEN NOT e.is_new THEN CASE WHEN p.payload_hash = e.hash THEN 'duplicate'
                                            ELSE 'conflict' END
                WHEN k.unposted THEN 'unposted' ELSE 'new' END,
           CASE WHEN NOT e.is_new THEN i.batch_id WHEN NOT k.unposted THEN k.bid END,
           CASE WHEN NOT e.is_new THEN coalesce(i.late, false) ELSE false END,
           CASE WHEN NOT e.is_new THEN p.payload
                WHEN NOT k.unposted THEN NULL
                WHEN k.tid IS NULL THEN 'no payment transfer of this payment_id is in the ledger'
                ELSE format('the ledger''s payment transfer %s differs: amount %s, payee %s, '
                            'currency %s', k.tid, k.t_amount, k.t_payee, k.t_currency) END
    FROM el e
    LEFT JOIN chk k ON k.ord = e.ord
    LEFT JOIN LATERAL (SELECT x.payload_hash, x.payload FROM processed x
                       WHERE NOT e.is_new AND x.stage = 'settlement' AND x.payment_id = e.id
                       LIMIT 1) p ON true
    LEFT JOIN LATERAL (SELECT x.batch_id, x.late FROM settlement_items x
                       WHERE NOT e.is_new AND x.payment_id = e.id LIMIT 1) i ON true
    WHERE (SELECT go.ok FROM go)
    ORDER BY e.ord;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n = 0 THEN
        -- not decidable at once (nothing was written): one at a time
        RETURN QUERY SELECT * FROM settlement_apply_seq(p_batch, p_window_s, fresh);
    END IF;
END;
$$;
