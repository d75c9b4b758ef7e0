-- risk_apply_batch(batch, cfg): the risk stage's decision for every element
-- of a batch, in queue order. One row per element: verdict 'new' with
-- decision approved|declined, score and the rules that fired; 'duplicate'
-- (the stored decision) or 'conflict' (prior_payload).
--
-- Rules, in this fixed order (a hard rule declines at once):
--   max_amount      amount above the currency's limit            (hard)
--   blocklisted     payer or payee on the blocklist               (hard)
--   velocity_count  payer already has N approved payments in W     (hard)
--   velocity_sum    approved amount in W plus this one exceeds S   (hard)
--   score           sum of the weights of the soft signals that fired,
--                   capped at 100, declines at >= score_threshold:
--                     new_payee     no approved payment from payer to payee
--                     above_median  amount > median_factor x the median of
--                                   the payer's last 20 approvals (3+)
-- Velocity counts approved decisions only, each once: a payment has one
-- decision row whatever its redeliveries. A payer's history is read once
-- per batch, under its lock, and every approval in the batch counts for
-- the payer's next payments in it. Decisions (risk_decisions) and the
-- processed outcomes are written in one statement each.
--
-- Locks (docs/ledger.md#locks): rule 2 class 1, one advisory lock per payer
-- in hash order (replicas evaluate a payer one after the other), then
-- rule 3 (processed_claim).
--
-- batch: [{"payment_id", "hash", "payload", "payer", "payee", "amount",
--          "currency"}, ...]
-- cfg:   {"version", "max_amount": {"EUR": n, ...}, "blocklist": [ids],
--         "velocity_count", "velocity_sum", "velocity_window_s",
--         "score_threshold", "weight_new_payee", "weight_above_median",
--         "median_factor"}   (0 disables a numeric rule)
CREATE OR REPLACE FUNCTION risk_apply_batch(p_batch jsonb, p_cfg jsonb)
RETURNS TABLE (ord integer, verdict text, decision text, score integer, rules text[],
               prior_payload text)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
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
    n_sum numeric; -- a window's approved sum may pass the bigint range: compared exactly
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
        IF coalesce(v_limit, 0) > 0 AND v_amount > v_limit THEN
            rules := array_append(rules, 'max_amount');
        END IF;
        IF cardinality(rules) = 0 AND p_cfg -> 'blocklist' ?| ARRAY[v_payer, v_payee] THEN
            rules := array_append(rules, 'blocklisted');
        END IF;
        IF cardinality(rules) = 0 AND (c_count > 0 OR c_sum > 0) THEN
            n_count := (ph ->> 'n')::bigint;
            n_sum := (ph ->> 's')::numeric;
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
                        'n', (ph ->> 'n')::bigint + 1, 's', (ph ->> 's')::numeric + v_amount,
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
