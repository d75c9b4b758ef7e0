-- settlement_apply_seq(batch, window_s, fresh): settlement_apply_batch's
-- one-at-a-time path, for a batch with a payment_id twice, a late
-- payment or a window's batch that would fill up (its gross or fees past
-- the bigint range: the payment joins the next window, marked late). Its caller has taken the locks, claimed the processed rows
-- (fresh: processed_claim's result) and created the windows' batches; it
-- returns the same rows as settlement_apply_batch.
CREATE OR REPLACE FUNCTION settlement_apply_seq(p_batch jsonb, p_window_s bigint, p_fresh jsonb)
RETURNS TABLE (ord integer, verdict text, batch_id text, late boolean, prior_payload text)
LANGUAGE plpgsql AS $$
DECLARE
    e record;
    v_id text;
    prior_hash text;
    w_start timestamptz;
    b settlement_batches%ROWTYPE;
    a accounts%ROWTYPE;
    t transfers%ROWTYPE;
    v_fee bigint;
BEGIN
    FOR e IN SELECT x.value AS v, x.ordinality AS n
             FROM jsonb_array_elements(p_batch) WITH ORDINALITY x ORDER BY x.ordinality LOOP
        ord := e.n;
        v_id := e.v ->> 'payment_id';
        prior_payload := NULL;
        batch_id := NULL;
        late := false;
        IF (p_fresh ->> v_id)::bigint IS DISTINCT FROM e.n THEN
            SELECT p.payload_hash, p.payload INTO prior_hash, prior_payload
            FROM processed p WHERE p.stage = 'settlement' AND p.payment_id = v_id;
            IF NOT FOUND THEN
                -- an earlier element of this batch with this id was refused
                -- ('unposted' below removed its row): this one is judged
                -- against the ledger like a first occurrence
                INSERT INTO processed (stage, payment_id, payload_hash, payload, outcome)
                VALUES ('settlement', v_id, e.v ->> 'hash', e.v ->> 'payload', 'pending');
            ELSE
                verdict := CASE WHEN prior_hash = e.v ->> 'hash' THEN 'duplicate'
                                ELSE 'conflict' END;
                SELECT i.batch_id, i.late INTO batch_id, late
                FROM settlement_items i WHERE i.payment_id = v_id;
                RETURN NEXT;
                CONTINUE;
            END IF;
        END IF;
        -- the ledger, not the event, says what was paid: an event whose
        -- payment transfer is missing or differs is refused, and leaves no
        -- trace (the genuine event can still come)
        SELECT * INTO t FROM transfers x WHERE x.kind = 'payment' AND x.ref = v_id;
        IF NOT FOUND OR t.amount <> (e.v ->> 'amount')::bigint
           OR t.credit_account <> e.v ->> 'payee' OR t.currency <> e.v ->> 'currency' THEN
            DELETE FROM processed p WHERE p.stage = 'settlement' AND p.payment_id = v_id;
            verdict := 'unposted';
            prior_payload := CASE WHEN t.id IS NULL THEN 'no payment transfer of this payment_id '
                                                      'is in the ledger'
                                  ELSE format('the ledger''s payment transfer %s differs: '
                                              'amount %s, payee %s, currency %s',
                                              t.id, t.amount, t.credit_account, t.currency)
                             END;
            RETURN NEXT;
            CONTINUE;
        END IF;
        SELECT * INTO a FROM accounts WHERE id = e.v ->> 'payee';
        v_fee := settlement_fee((e.v ->> 'amount')::bigint, coalesce(a.fee_bps, 0),
                                coalesce(a.fee_fixed, 0));
        w_start := to_timestamp(floor((e.v ->> 'posted_ms')::numeric / 1000 / p_window_s)
                                * p_window_s);
        LOOP
            INSERT INTO settlement_batches (id, payee, currency, window_start, window_end)
            VALUES (settlement_batch_id(e.v ->> 'payee', e.v ->> 'currency', w_start),
                    e.v ->> 'payee', e.v ->> 'currency', w_start,
                    w_start + make_interval(secs => p_window_s))
            ON CONFLICT (payee, currency, window_start) DO NOTHING;
            SELECT * INTO b FROM settlement_batches s
            WHERE s.payee = e.v ->> 'payee' AND s.currency = e.v ->> 'currency'
              AND s.window_start = w_start
            FOR NO KEY UPDATE;
            EXIT WHEN b.status = 'open'
                      AND b.gross::numeric + (e.v ->> 'amount')::bigint <= 9223372036854775807
                      AND b.fees_raw::numeric + v_fee <= 9223372036854775807;
            late := true; -- closed or full: the next window of this payee and currency
            w_start := w_start + make_interval(secs => p_window_s);
        END LOOP;
        INSERT INTO settlement_items (payment_id, batch_id, amount, fee, late)
        VALUES (v_id, b.id, (e.v ->> 'amount')::bigint, v_fee, late);
        UPDATE settlement_batches s
        SET count = s.count + 1, gross = s.gross + (e.v ->> 'amount')::bigint,
            fees_raw = s.fees_raw + v_fee, late_count = s.late_count + late::int
        WHERE s.id = b.id;
        UPDATE processed p SET outcome = 'batched:' || b.id
        WHERE p.stage = 'settlement' AND p.payment_id = v_id;
        verdict := 'new';
        batch_id := b.id;
        RETURN NEXT;
    END LOOP;
END;
$$;
