-- payment_apply_seq(batch, fresh): payment_apply_batch's one-at-a-time
-- path, for a batch it could not decide at once (a payment_id twice, a
-- payment that would be short of funds or take a balance past the bigint
-- range). Its caller has claimed the
-- processed rows (fresh: processed_claim's result) and locked the
-- accounts; it decides each element in array order with ledger_post and
-- returns the same rows as payment_apply_batch.
CREATE OR REPLACE FUNCTION payment_apply_seq(p_batch jsonb, p_fresh jsonb)
RETURNS TABLE (ord integer, verdict text, outcome text, transfer_id bigint,
               prior_payload text)
LANGUAGE plpgsql AS $$
DECLARE
    e record;
    v_id text;
    st text;
    prior_hash text;
BEGIN
    FOR e IN SELECT x.value AS v, x.ordinality AS n
             FROM jsonb_array_elements(p_batch) WITH ORDINALITY x ORDER BY x.ordinality LOOP
        ord := e.n;
        v_id := e.v ->> 'payment_id';
        prior_payload := NULL;
        transfer_id := NULL;
        IF (p_fresh ->> v_id)::bigint IS DISTINCT FROM e.n THEN
            SELECT p.payload_hash, p.outcome, p.payload INTO prior_hash, outcome, prior_payload
            FROM processed p WHERE p.stage = 'payment' AND p.payment_id = v_id;
            verdict := CASE WHEN prior_hash = e.v ->> 'hash' THEN 'duplicate' ELSE 'conflict' END;
            SELECT t.id INTO transfer_id FROM transfers t WHERE t.kind = 'payment' AND t.ref = v_id;
            RETURN NEXT;
            CONTINUE;
        END IF;
        SELECT f.reason INTO st FROM payment_failures f WHERE f.payment_id = v_id;
        IF FOUND THEN
            -- refused before (its processed row expired): refused again,
            -- never posted
            outcome := st;
            transfer_id := NULL;
        ELSE
            SELECT l.status, l.transfer_id INTO st, transfer_id
            FROM ledger_post(v_id, 'payment', e.v ->> 'payer', e.v ->> 'payee',
                             (e.v ->> 'amount')::bigint, e.v ->> 'currency') l;
            -- 'duplicate' here means a payment transfer with this ref exists
            -- without a processed row (posted by hand): it is the payment's
            outcome := CASE WHEN st IN ('posted', 'duplicate') THEN 'completed' ELSE st END;
            IF outcome <> 'completed' THEN
                transfer_id := NULL;
                -- a refusal is kept in the books (processed rows expire)
                INSERT INTO payment_failures (payment_id, reason) VALUES (v_id, outcome);
            END IF;
        END IF;
        UPDATE processed p SET outcome = payment_apply_seq.outcome
        WHERE p.stage = 'payment' AND p.payment_id = v_id;
        verdict := 'new';
        RETURN NEXT;
    END LOOP;
END;
$$;
