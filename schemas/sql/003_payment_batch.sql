-- 003_payment_batch.sql: one statement per batch for the payment stage.
--
-- payment_apply_batch(batch) decides a whole batch: it locks every account
-- the batch touches in sorted-id order, then calls payment_apply() for each
-- element in array order (the queue order), returning one row per element.
-- One statement instead of one per payment: the per-statement protocol and
-- planning cost was most of a batch's time.
--
-- batch: [{"payment_id", "hash", "payload", "payer", "payee", "amount",
--          "currency"}, ...]
CREATE FUNCTION payment_apply_batch(p_batch jsonb)
RETURNS TABLE (ord integer, verdict text, outcome text, transfer_id bigint,
               prior_payload text)
LANGUAGE plpgsql AS $$
DECLARE
    e jsonb;
    r record;
BEGIN
    PERFORM 1 FROM accounts a
    WHERE a.id IN (SELECT x.value ->> 'payer' FROM jsonb_array_elements(p_batch) x
                   UNION
                   SELECT x.value ->> 'payee' FROM jsonb_array_elements(p_batch) x)
    ORDER BY a.id FOR UPDATE;
    ord := 0;
    FOR e IN SELECT x.value FROM jsonb_array_elements(p_batch) WITH ORDINALITY x
             ORDER BY x.ordinality LOOP
        ord := ord + 1;
        SELECT * INTO r FROM payment_apply(e ->> 'payment_id', e ->> 'hash', e ->> 'payload',
                                           e ->> 'payer', e ->> 'payee',
                                           (e ->> 'amount')::bigint, e ->> 'currency');
        verdict := r.verdict;
        outcome := r.outcome;
        transfer_id := r.transfer_id;
        prior_payload := r.prior_payload;
        RETURN NEXT;
    END LOOP;
END;
$$;
