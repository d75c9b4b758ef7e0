-- refund_apply_batch(batch, window_s): the refund stage's batch function
-- (workers/refund/): decides each refund.requested of the batch in array
-- order, exactly once per refund_id, and returns one row per element.
--
-- batch: [{"key" (= refund_id), "hash", "payload", "refund_id",
--          "payment_id", "amount", "reason"?}, ...]
-- verdict: new | duplicate | conflict (prior_payload: the first payload).
-- outcome of a new one: 'completed', or the refund.failed reason:
--   payment_not_completed   no payment transfer of that payment_id (never
--                           requested, declined, failed, or not posted yet)
--   refund_exceeds_payment  more than the payment's amount minus its
--                           completed refunds
--   insufficient_funds, account_frozen, balance_overflow
--                           the ledger refused the transfer (the payee
--                           cannot cover it, either account frozen, the
--                           payer's balance would leave the bigint range)
-- A completed refund is a transfer of kind 'refund' (ref = refund_id) from
-- the payee to the payer, recorded in `refunds` and netted by settlement:
-- it joins the payment's batch while that is open, else the payee's next
-- batch to close (settlement_next_batch, a window of window_s seconds).
--
-- Locks (docs/ledger.md#locks): rule 2, class 2 for each (payee, currency)
-- of the batch's payments, in ascending key: the lock the settlement
-- stage and closer take for that payee, so a refund nets into a batch no
-- one else is changing, and two refunds of one payment, on two workers,
-- decide one after the other (the second sees what the first refunded:
-- a payment's refunds can never pass its amount); rule 3
-- (processed_claim); rule 5 (every payer and payee, id order); then, per
-- refund, the batch it joins (rule 4's rows, taken after rule 5 here:
-- only a holder of the payee's class-2 lock ever locks a batch row of that
-- payee, and this transaction holds them all, so no one can hold such a
-- row and wait for what it holds).
CREATE OR REPLACE FUNCTION refund_apply_batch(p_batch jsonb, p_window_s bigint)
RETURNS TABLE (ord integer, verdict text, outcome text, transfer_id bigint, payer text,
               payee text, currency text, refunded_total bigint, remaining bigint,
               batch_id text, prior_payload text)
LANGUAGE plpgsql AS $$
DECLARE
    fresh jsonb;
    e record;
    v_id text;
    v_amount bigint;
    prior_hash text;
    t transfers%ROWTYPE;
    it settlement_items%ROWTYPE;
    b settlement_batches%ROWTYPE;
    v_done numeric;
    st text;
    -- the batch's payments that are posted, read ONCE: the locks below are
    -- taken for exactly these, and a payment posted later in this
    -- transaction's life is not refunded by it (payment_not_completed),
    -- else two refunds could both read its refunds before either locked
    pays text[];
BEGIN
    pays := ARRAY(SELECT x.ref FROM transfers x
                  WHERE x.kind = 'payment'
                    AND x.ref = ANY (ARRAY(SELECT y.value ->> 'payment_id'
                                           FROM jsonb_array_elements(p_batch) y)));
    -- rule 2: what the batch's payments need, before anything is claimed
    PERFORM pg_advisory_xact_lock(2, l.key)
    FROM (SELECT DISTINCT settlement_lock_key(x.credit_account, x.currency) AS key
          FROM transfers x WHERE x.kind = 'payment' AND x.ref = ANY (pays)) l
    ORDER BY l.key;
    fresh := processed_claim('refund', p_batch);
    -- rule 5: the accounts of every payment refunded, in id order
    PERFORM 1 FROM accounts a
    WHERE a.id = ANY (ARRAY(SELECT x.debit_account FROM transfers x
                            WHERE x.kind = 'payment' AND x.ref = ANY (pays)
                            UNION
                            SELECT x.credit_account FROM transfers x
                            WHERE x.kind = 'payment' AND x.ref = ANY (pays)))
    ORDER BY a.id FOR NO KEY UPDATE;
    FOR e IN SELECT x.value AS v, x.ordinality AS n
             FROM jsonb_array_elements(p_batch) WITH ORDINALITY x ORDER BY x.ordinality LOOP
        ord := e.n;
        v_id := e.v ->> 'key';
        v_amount := (e.v ->> 'amount')::bigint;
        prior_payload := NULL;
        outcome := NULL;
        transfer_id := NULL;
        payer := NULL;
        payee := NULL;
        currency := NULL;
        refunded_total := NULL;
        remaining := NULL;
        batch_id := NULL;
        IF (fresh ->> v_id)::bigint IS DISTINCT FROM e.n THEN
            SELECT p.payload_hash, p.outcome, p.payload INTO prior_hash, outcome, prior_payload
            FROM processed p WHERE p.stage = 'refund' AND p.payment_id = v_id;
            verdict := CASE WHEN prior_hash = e.v ->> 'hash' THEN 'duplicate' ELSE 'conflict' END;
            RETURN NEXT;
            CONTINUE;
        END IF;
        verdict := 'new';
        SELECT * INTO t FROM transfers x
        WHERE x.kind = 'payment' AND x.ref = e.v ->> 'payment_id' AND x.ref = ANY (pays);
        IF NOT FOUND THEN
            outcome := 'payment_not_completed';
        ELSE
            payer := t.debit_account;
            payee := t.credit_account;
            currency := t.currency;
            SELECT coalesce(sum(r.amount), 0) INTO v_done
            FROM refunds r WHERE r.payment_id = t.ref AND r.outcome = 'completed';
            IF v_done + v_amount > t.amount THEN
                outcome := 'refund_exceeds_payment';
            END IF;
        END IF;
        IF outcome IS NULL THEN
            -- the batch that nets it: the payment's while open, else the next
            SELECT * INTO it FROM settlement_items i WHERE i.payment_id = t.ref;
            b := NULL;
            IF FOUND THEN
                SELECT * INTO b FROM settlement_batches s
                WHERE s.id = it.batch_id AND s.status = 'open' FOR NO KEY UPDATE;
            END IF;
            IF b.id IS NULL THEN
                b := settlement_next_batch(t.credit_account, t.currency, NULL, now(), p_window_s);
            END IF;
            SELECT l.status, l.transfer_id INTO st, transfer_id
            FROM ledger_post(v_id, 'refund', t.credit_account, t.debit_account, v_amount,
                             t.currency) l;
            IF st IN ('posted', 'duplicate') THEN
                outcome := 'completed';
                UPDATE settlement_batches s
                SET refunds = s.refunds + v_amount, refund_count = s.refund_count + 1
                WHERE s.id = b.id;
                batch_id := b.id;
                refunded_total := v_done + v_amount;
                remaining := t.amount - refunded_total;
            ELSIF st IN ('insufficient_funds', 'account_frozen', 'balance_overflow') THEN
                outcome := st;
                transfer_id := NULL;
            ELSE -- the payment's own accounts cannot be unknown or of another currency
                RAISE EXCEPTION 'refund % of payment %: the ledger says %', v_id, t.ref, st;
            END IF;
        END IF;
        INSERT INTO refunds (refund_id, payment_id, amount, reason, outcome, transfer_id, batch_id)
        VALUES (v_id, e.v ->> 'payment_id', v_amount, e.v ->> 'reason', outcome, transfer_id,
                batch_id);
        UPDATE processed p SET outcome = refund_apply_batch.outcome
        WHERE p.stage = 'refund' AND p.payment_id = v_id;
        RETURN NEXT;
    END LOOP;
END;
$$;
