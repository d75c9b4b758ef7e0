-- 013_plan_proof.sql - the batch functions' statements keep their plans
-- whatever the planner guesses.
--
-- PL/pgSQL caches a generic plan for a statement after a few runs, planned
-- without the values of its parameters (the batch) and with the table
-- statistics of that moment. A join of the batch with a large table
-- (accounts, processed, settlement_batches) could then be cached as a
-- hash join over a sequential scan, planned while the table was small and
-- kept as it grew: in the pipeline benchmark risk's update of its
-- processed rows took 26 ms a batch instead of 2 in one run out of two.
-- Every statement that reaches a large table with the batch's keys now
-- says so with "key = ANY (ARRAY(...))" (an index scan of that array, the
-- plan any planner picks) or looks rows up with LATERAL ... LIMIT 1 (011).
-- settlement_batch_id() is one expression now, so the planner inlines it
-- instead of running it as a query per payment.
--
-- Replaced whole, unchanged otherwise: payment_apply_batch,
-- settlement_apply_batch, risk_apply_batch (011), settlement_batch_id (006).

CREATE OR REPLACE FUNCTION settlement_batch_id(p_payee text, p_currency text, p_start timestamptz)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    -- only immutable parts, so that the planner inlines the body: the
    -- window start's epoch through an interval (extract() of a timestamptz
    -- is only STABLE) and text casts (text || bigint is STABLE too)
    SELECT CASE WHEN length('sb-' || p_payee || '-' || p_currency || '-'
                            || extract(epoch FROM p_start - '1970-01-01 00:00:00+00'::timestamptz)::bigint::text) <= 64
                THEN 'sb-' || p_payee || '-' || p_currency || '-'
                     || extract(epoch FROM p_start - '1970-01-01 00:00:00+00'::timestamptz)::bigint::text
                ELSE 'sb-' || md5('sb-' || p_payee || '-' || p_currency || '-'
                                  || extract(epoch FROM p_start - '1970-01-01 00:00:00+00'::timestamptz)::bigint::text)
           END
$$;

-- see 011 for what it decides
CREATE OR REPLACE FUNCTION payment_apply_batch(p_batch jsonb)
RETURNS TABLE (ord integer, verdict text, outcome text, transfer_id bigint,
               prior_payload text)
LANGUAGE plpgsql AS $$
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
        SELECT NOT coalesce((SELECT bool_or(mv.short) FROM mv), false)
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

-- see 011 and 008
CREATE OR REPLACE FUNCTION settlement_apply_batch(p_batch jsonb, p_window_s bigint)
RETURNS TABLE (ord integer, verdict text, batch_id text, late boolean, prior_payload text)
LANGUAGE plpgsql AS $$
DECLARE
    fresh jsonb;
    n bigint;
BEGIN
    -- lock rule 2 for every (payee, currency) of the batch, rule 3, rule 4
    PERFORM pg_advisory_xact_lock(2, s.k)
    FROM (SELECT DISTINCT settlement_lock_key(x.value ->> 'payee', x.value ->> 'currency') AS k
          FROM jsonb_array_elements(p_batch) x) s
    ORDER BY s.k;
    fresh := processed_claim('settlement', p_batch);
    -- the batches of the events' windows, created and locked in id order
    INSERT INTO settlement_batches (id, payee, currency, window_start, window_end)
    SELECT settlement_batch_id(k.payee, k.currency, k.w), k.payee, k.currency, k.w,
           k.w + make_interval(secs => p_window_s)
    FROM (SELECT DISTINCT x.value ->> 'payee' AS payee, x.value ->> 'currency' AS currency,
                 to_timestamp(floor((x.value ->> 'posted_ms')::numeric / 1000 / p_window_s)
                              * p_window_s) AS w
          FROM jsonb_array_elements(p_batch) x) k
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
    chk AS (  -- the payments processed now: match the ledger? their batch and fee
        SELECT e.ord, e.id, e.amount, t.id AS tid, t.amount AS t_amount,
               t.credit_account AS t_payee, t.currency AS t_currency,
               (t.id IS NULL OR t.amount <> e.amount OR t.credit_account <> e.payee
                OR t.currency <> e.currency) AS unposted,
               b.id AS bid, b.status,
               settlement_fee(e.amount, coalesce(a.fee_bps, 0), coalesce(a.fee_fixed, 0)) AS fee
        FROM el e
        LEFT JOIN LATERAL (SELECT x.id, x.amount, x.credit_account, x.currency FROM transfers x
                           WHERE x.kind = 'payment' AND x.ref = e.id LIMIT 1) t ON true
        LEFT JOIN LATERAL (SELECT x.id, x.status FROM settlement_batches x
                           WHERE x.payee = e.payee AND x.currency = e.currency
                             AND x.window_start = e.w LIMIT 1) b ON true
        LEFT JOIN LATERAL (SELECT x.fee_bps, x.fee_fixed FROM accounts x
                           WHERE x.id = e.payee LIMIT 1) a ON true
        WHERE e.is_new),
    go AS (   -- decidable at once: no late payment, no payment_id twice
        SELECT NOT coalesce((SELECT bool_or(NOT k.unposted AND k.status <> 'open') FROM chk k),
                            false)
               AND (SELECT count(*) = count(DISTINCT el.id) FROM el) AS ok),
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

-- see 011 and 005
CREATE OR REPLACE FUNCTION risk_apply_batch(p_batch jsonb, p_cfg jsonb)
RETURNS TABLE (ord integer, verdict text, decision text, score integer, rules text[],
               prior_payload text)
LANGUAGE plpgsql AS $$
DECLARE
    e record;
    v_id text;
    fresh jsonb;
    prior_hash text;
    v_payer text;
    v_payee text;
    v_amount bigint;
    v_limit bigint;
    n_count bigint;
    n_sum bigint;
    v_median numeric;
    ph jsonb;
    hist jsonb;    -- payer -> {n, s: velocity count and sum; h: last 20 approved
                   -- amounts, newest first; m: their median, null when stale}
    pairs jsonb;   -- "payer/payee" -> true: approved before
    again jsonb;   -- payers that come more than once in the batch
    made jsonb := '{}';  -- payment_id -> decision, when a payment_id comes twice
    repeats boolean;
    ids text[] := '{}';
    payers text[] := '{}';
    payees text[] := '{}';
    amounts bigint[] := '{}';
    currencies text[] := '{}';
    decisions text[] := '{}';
    scores integer[] := '{}';
    rule_lists text[] := '{}';
    c_count bigint := coalesce((p_cfg ->> 'velocity_count')::bigint, 0);
    c_sum bigint := coalesce((p_cfg ->> 'velocity_sum')::bigint, 0);
    window_s bigint := coalesce((p_cfg ->> 'velocity_window_s')::bigint, 3600);
    c_threshold integer := coalesce((p_cfg ->> 'score_threshold')::integer, 0);
    w_new integer := coalesce((p_cfg ->> 'weight_new_payee')::integer, 0);
    w_median integer := coalesce((p_cfg ->> 'weight_above_median')::integer, 0);
    c_factor numeric := coalesce((p_cfg ->> 'median_factor')::numeric, 10);
BEGIN
    -- lock rule 2: replicas evaluate a payer's velocity one after the other
    PERFORM pg_advisory_xact_lock(1, s.k)
    FROM (SELECT DISTINCT hashtext(x.value ->> 'payer') AS k
          FROM jsonb_array_elements(p_batch) x) s
    ORDER BY s.k;
    fresh := processed_claim('risk', p_batch);
    SELECT count(*) <> count(DISTINCT x.value ->> 'payment_id'),
           coalesce(jsonb_object_agg(x.value ->> 'payer', true)
                    FILTER (WHERE x.value ->> 'payer' IN (
                        SELECT y.value ->> 'payer' FROM jsonb_array_elements(p_batch) y
                        GROUP BY 1 HAVING count(*) > 1)), '{}')
    INTO repeats, again
    FROM jsonb_array_elements(p_batch) x;
    -- the history of the batch's payers, under their locks
    SELECT coalesce(jsonb_object_agg(p.payer, jsonb_build_object(
               'n', v.n, 's', v.s, 'h', coalesce(h.amounts, '[]'), 'm', h.median)), '{}')
    INTO hist
    FROM (SELECT DISTINCT x.value ->> 'payer' AS payer FROM jsonb_array_elements(p_batch) x) p
    LEFT JOIN LATERAL (
        SELECT count(*) AS n, coalesce(sum(d.amount), 0) AS s FROM risk_decisions d
        WHERE (c_count > 0 OR c_sum > 0) AND d.payer = p.payer AND d.decision = 'approved'
          AND d.decided_at > clock_timestamp() - make_interval(secs => window_s)) v ON true
    LEFT JOIN LATERAL (
        SELECT jsonb_agg(l.amount ORDER BY l.decided_at DESC) AS amounts,
               (percentile_cont(0.5) WITHIN GROUP (ORDER BY l.amount))::numeric AS median
        FROM (SELECT d.amount, d.decided_at FROM risk_decisions d
              WHERE w_median > 0 AND d.payer = p.payer AND d.decision = 'approved'
              ORDER BY d.decided_at DESC LIMIT 20) l) h ON true;
    SELECT coalesce(jsonb_object_agg(q.k, true), '{}') INTO pairs
    FROM (SELECT DISTINCT (x.value ->> 'payer') || '/' || (x.value ->> 'payee') AS k,
                 x.value ->> 'payer' AS payer, x.value ->> 'payee' AS payee
          FROM jsonb_array_elements(p_batch) x) q
    CROSS JOIN LATERAL (SELECT 1 FROM risk_decisions d
                        WHERE w_new > 0 AND d.payer = q.payer AND d.payee = q.payee
                          AND d.decision = 'approved' LIMIT 1) d;
    FOR e IN SELECT x.value AS v, x.ordinality AS n
             FROM jsonb_array_elements(p_batch) WITH ORDINALITY x ORDER BY x.ordinality LOOP
        ord := e.n;
        v_id := e.v ->> 'payment_id';
        prior_payload := NULL;
        IF (fresh ->> v_id)::bigint IS DISTINCT FROM e.n THEN
            SELECT p.payload_hash, p.payload INTO prior_hash, prior_payload
            FROM processed p WHERE p.stage = 'risk' AND p.payment_id = v_id;
            verdict := CASE WHEN prior_hash = e.v ->> 'hash' THEN 'duplicate' ELSE 'conflict' END;
            IF made ? v_id THEN
                decision := made -> v_id ->> 'decision';
                score := (made -> v_id ->> 'score')::integer;
                rules := string_to_array(made -> v_id ->> 'rules', ',');
            ELSE
                SELECT d.decision, d.score, d.rules INTO decision, score, rules
                FROM risk_decisions d WHERE d.payment_id = v_id;
            END IF;
            RETURN NEXT;
            CONTINUE;
        END IF;
        verdict := 'new';
        v_payer := e.v ->> 'payer';
        v_payee := e.v ->> 'payee';
        v_amount := (e.v ->> 'amount')::bigint;
        ph := hist -> v_payer;
        rules := ARRAY[]::text[];
        score := 0;
        decision := 'approved';

        v_limit := (p_cfg -> 'max_amount' ->> (e.v ->> 'currency'))::bigint;
        IF v_limit IS NOT NULL AND v_amount > v_limit THEN
            rules := array_append(rules, 'max_amount');
        END IF;
        IF cardinality(rules) = 0 AND p_cfg -> 'blocklist' ?| ARRAY[v_payer, v_payee] THEN
            rules := array_append(rules, 'blocklisted');
        END IF;
        IF cardinality(rules) = 0 AND (c_count > 0 OR c_sum > 0) THEN
            n_count := (ph ->> 'n')::bigint;
            n_sum := (ph ->> 's')::bigint;
            IF c_count > 0 AND n_count >= c_count THEN
                rules := array_append(rules, 'velocity_count');
            ELSIF c_sum > 0 AND n_sum + v_amount > c_sum THEN
                rules := array_append(rules, 'velocity_sum');
            END IF;
        END IF;
        IF cardinality(rules) > 0 THEN
            decision := 'declined';
        ELSE
            -- soft signals
            IF w_new > 0 AND NOT pairs ? (v_payer || '/' || v_payee) THEN
                rules := array_append(rules, 'new_payee');
                score := score + w_new;
            END IF;
            IF w_median > 0 AND jsonb_array_length(ph -> 'h') >= 3 THEN
                v_median := (ph ->> 'm')::numeric;
                IF v_median IS NULL THEN   -- the payer's history changed in this batch
                    SELECT (percentile_cont(0.5) WITHIN GROUP (ORDER BY a::bigint))::numeric
                    INTO v_median FROM jsonb_array_elements_text(ph -> 'h') a;
                END IF;
                IF v_amount > v_median * c_factor THEN
                    rules := array_append(rules, 'above_median');
                    score := score + w_median;
                END IF;
            END IF;
            score := least(score, 100);
            IF c_threshold > 0 AND score >= c_threshold THEN
                decision := 'declined';
                rules := array_append(rules, 'score');
            END IF;
        END IF;
        IF decision = 'approved' AND again ? v_payer THEN
            -- what the payer's next payments in this batch must see
            hist := jsonb_set(hist, ARRAY[v_payer], jsonb_build_object(
                        'n', (ph ->> 'n')::bigint + 1, 's', (ph ->> 's')::bigint + v_amount,
                        'h', (jsonb_build_array(v_amount) || (ph -> 'h')) - 20, 'm', NULL));
            pairs := pairs || jsonb_build_object(v_payer || '/' || v_payee, true);
        END IF;
        IF repeats THEN
            made := made || jsonb_build_object(v_id, jsonb_build_object(
                        'decision', decision, 'score', score,
                        'rules', array_to_string(rules, ',')));
        END IF;
        ids := ids || v_id;
        payers := payers || v_payer;
        payees := payees || v_payee;
        amounts := amounts || v_amount;
        currencies := currencies || (e.v ->> 'currency');
        decisions := decisions || decision;
        scores := scores || score;
        rule_lists := rule_lists || array_to_string(rules, ',');
        RETURN NEXT;
    END LOOP;
    -- decided_at: clock_timestamp() per row, in queue order
    INSERT INTO risk_decisions (payment_id, payer, payee, amount, currency, decision, score,
                                rules, ruleset_version)
    SELECT u.id, u.payer, u.payee, u.amount, u.currency, u.decision, u.score,
           string_to_array(u.rules, ','), coalesce(p_cfg ->> 'version', '1')
    FROM unnest(ids, payers, payees, amounts, currencies, decisions, scores, rule_lists)
         WITH ORDINALITY u(id, payer, payee, amount, currency, decision, score, rules, n)
    ORDER BY u.n;
    UPDATE processed p SET outcome = decisions[array_position(ids, p.payment_id)]
    WHERE p.stage = 'risk' AND p.payment_id = ANY (ids);
END;
$$;
