-- payment_apply_batch(batch): the payment stage's decision for every
-- element of a batch, in array (= queue) order, exactly as one-at-a-time
-- processing would decide them. One row per element:
--   verdict 'new'       processed now; outcome 'completed' (transfer_id
--                       set) or the refusal: unknown_account,
--                       account_frozen, currency_mismatch,
--                       insufficient_funds, balance_overflow
--   verdict 'duplicate' processed before with the same payload; outcome and
--                       transfer_id are the original ones
--   verdict 'conflict'  processed before with another payload;
--                       prior_payload is that payload
-- The checks of each payment are ledger_post's, in its order: a payment
-- transfer with this ref already posted (by hand: it is the payment's),
-- unknown or system account, frozen, currency, funds; before them, a
-- payment_failures row of this payment_id (refused before, its processed
-- row expired) is refused again with its reason.
--
-- Fast path: one statement decides and posts the whole batch when it can
-- be decided at once (no payment_id twice, no payment short of funds
-- even if every postable payment before it is posted, and no running
-- balance past the bigint range: the sums are numeric); balances then move
-- once per account, and entries get the running balance in queue order.
-- Otherwise nothing was written and payment_apply_seq decides one payment
-- at a time. tests/integration/test_stage_set_based.c holds both to the
-- same results.
--
-- Locks (docs/ledger.md#locks): rule 3 (processed_claim), then rule 5 (the
-- batch's payers and payees, id order, FOR NO KEY UPDATE); nothing else.
-- Every lookup is by key (= ANY (ARRAY(...)), LATERAL ... LIMIT 1), so a
-- generic plan is as good as a custom one and saves planning each batch.
--
-- batch: [{"payment_id", "hash", "payload", "payer", "payee", "amount",
--          "currency"}, ...]
CREATE OR REPLACE FUNCTION payment_apply_batch(p_batch jsonb)
RETURNS TABLE (ord integer, verdict text, outcome text, transfer_id bigint,
               prior_payload text)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    fresh jsonb;
    n bigint;
BEGIN
    -- lock rule 3, then rule 5 (the payment stage takes nothing else)
    fresh := processed_claim('payment', p_batch);
    PERFORM 1 FROM accounts a
    WHERE a.id = ANY (ARRAY(SELECT x.value ->> 'payer' FROM jsonb_array_elements(p_batch) x
                            UNION
                            SELECT x.value ->> 'payee' FROM jsonb_array_elements(p_batch) x))
    ORDER BY a.id FOR NO KEY UPDATE;
    RETURN QUERY
    WITH el AS (
        SELECT x.n::integer AS ord, x.v ->> 'payment_id' AS id, x.v ->> 'hash' AS hash,
               x.v ->> 'payer' AS payer, x.v ->> 'payee' AS payee,
               (x.v ->> 'amount')::bigint AS amount, x.v ->> 'currency' AS currency,
               (fresh ->> (x.v ->> 'payment_id'))::bigint IS NOT DISTINCT FROM x.n AS is_new
        FROM jsonb_array_elements(p_batch) WITH ORDINALITY x(v, n)),
    chk AS (  -- the payments processed now, and why each cannot be posted
        SELECT e.ord, e.id, e.payer, e.payee, e.amount, e.currency, t.id AS prior_t,
               CASE WHEN t.id IS NOT NULL THEN 'duplicate'
                    -- refused before (its processed row expired): refused again,
                    -- never posted (the books, not the processed row, say so)
                    WHEN pf.reason IS NOT NULL THEN pf.reason
                    WHEN d.id IS NULL OR c.id IS NULL OR d.kind = 'system' OR c.kind = 'system'
                        THEN 'unknown_account'
                    WHEN d.status <> 'active' OR c.status <> 'active' THEN 'account_frozen'
                    WHEN d.currency <> e.currency OR c.currency <> e.currency
                        THEN 'currency_mismatch'
               END AS refusal
        FROM el e
        -- LATERAL ... LIMIT 1: one index lookup per payment, whatever the
        -- planner guesses of the batch's size
        LEFT JOIN LATERAL (SELECT x.id FROM transfers x
                           WHERE x.kind = 'payment' AND x.ref = e.id LIMIT 1) t ON true
        LEFT JOIN LATERAL (SELECT x.reason FROM payment_failures x
                           WHERE x.payment_id = e.id LIMIT 1) pf ON true
        LEFT JOIN LATERAL (SELECT * FROM accounts x WHERE x.id = e.payer LIMIT 1) d ON true
        LEFT JOIN LATERAL (SELECT * FROM accounts x WHERE x.id = e.payee LIMIT 1) c ON true
        WHERE e.is_new),
    mv AS (   -- balance movements of the postings, with the balance after each
        SELECT m.ord, m.id, m.account, m.delta,
               a.balance + sum(m.delta) OVER w AS after,
               m.delta < 0 AND a.balance + sum(m.delta) OVER w < -a.overdraft_limit AS short
        FROM (SELECT k.ord, k.id, k.payer AS account, -k.amount AS delta FROM chk k
              WHERE k.refusal IS NULL
              UNION ALL
              SELECT k.ord, k.id, k.payee, k.amount FROM chk k WHERE k.refusal IS NULL) m
        CROSS JOIN LATERAL (SELECT x.balance, x.overdraft_limit FROM accounts x
                            WHERE x.id = m.account LIMIT 1) a
        WINDOW w AS (PARTITION BY m.account ORDER BY m.ord)),
    go AS (   -- decidable at once?
        SELECT NOT coalesce((SELECT bool_or(mv.short OR mv.after NOT BETWEEN -9223372036854775808
                                                                      AND 9223372036854775807)
                             FROM mv), false)
               AND (SELECT count(*) = count(DISTINCT el.id) FROM el) AS ok),
    ins_t AS (
        INSERT INTO transfers (ref, kind, debit_account, credit_account, amount, currency)
        SELECT k.id, 'payment', k.payer, k.payee, k.amount, k.currency FROM chk k
        WHERE k.refusal IS NULL AND (SELECT go.ok FROM go)
        ORDER BY k.ord
        RETURNING transfers.id AS tid, transfers.ref),
    ins_e AS (
        INSERT INTO entries (transfer_id, account_id, amount, balance_after)
        SELECT t.tid, m.account, m.delta, m.after
        FROM mv m JOIN ins_t t ON t.ref = m.id
        ORDER BY m.ord, m.delta   -- the debit entry first, like ledger_post
        RETURNING 1),
    upd_a AS (
        UPDATE accounts a SET balance = a.balance + s.delta, updated_at = now()
        FROM (SELECT mv.account, sum(mv.delta) AS delta FROM mv GROUP BY mv.account) s
        WHERE a.id = s.account AND a.id = ANY (ARRAY(SELECT mv.account FROM mv))
          AND (SELECT go.ok FROM go)
        RETURNING 1),
    res AS (
        SELECT e.ord, e.id, e.hash, e.is_new,
               CASE WHEN k.refusal IS NULL OR k.refusal = 'duplicate' THEN 'completed'
                    ELSE k.refusal END AS outcome,
               coalesce(t.tid, k.prior_t) AS tid
        FROM el e LEFT JOIN chk k ON k.ord = e.ord LEFT JOIN ins_t t ON t.ref = e.id),
    ins_f AS (   -- a refusal is kept in the books (processed rows expire)
        INSERT INTO payment_failures (payment_id, reason)
        SELECT r.id, r.outcome FROM res r
        WHERE r.is_new AND r.outcome <> 'completed' AND (SELECT go.ok FROM go)
          AND NOT EXISTS (SELECT 1 FROM payment_failures x WHERE x.payment_id = r.id)
        RETURNING 1),
    upd_p AS (
        UPDATE processed p SET outcome = r.outcome
        FROM res r
        WHERE r.is_new AND p.stage = 'payment' AND p.payment_id = r.id
          AND p.payment_id = ANY (ARRAY(SELECT res.id FROM res WHERE res.is_new))
          AND (SELECT go.ok FROM go)
        RETURNING 1)
    SELECT r.ord,
           CASE WHEN r.is_new THEN 'new' WHEN p.payload_hash = r.hash THEN 'duplicate'
                ELSE 'conflict' END,
           CASE WHEN r.is_new THEN r.outcome ELSE p.outcome END,
           CASE WHEN NOT r.is_new THEN pt.id WHEN r.outcome = 'completed' THEN r.tid END,
           CASE WHEN r.is_new THEN NULL ELSE p.payload END
    FROM res r
    LEFT JOIN LATERAL (SELECT x.payload_hash, x.outcome, x.payload FROM processed x
                       WHERE NOT r.is_new AND x.stage = 'payment' AND x.payment_id = r.id
                       LIMIT 1) p ON true
    LEFT JOIN LATERAL (SELECT x.id FROM transfers x
                       WHERE NOT r.is_new AND x.kind = 'payment' AND x.ref = r.id LIMIT 1) pt
           ON true
    WHERE (SELECT go.ok FROM go)
    ORDER BY r.ord;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n = 0 THEN
        -- not decidable at once (nothing was written): one at a time
        RETURN QUERY SELECT * FROM payment_apply_seq(p_batch, fresh);
    END IF;
END;
$$;
