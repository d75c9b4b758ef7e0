-- 005_risk.sql: the risk stage's audited decisions and its rules.
--
-- risk_decisions: every decision (approved or declined), its score, the
--   rules that fired and the rule-set version, written in the same
--   transaction as the processed row and the outbox event.
-- risk_apply_batch(batch, cfg): decides a batch in queue order. Rules, in
--   this fixed order (a hard rule declines at once):
--     max_amount        amount above the currency's limit           (hard)
--     blocklisted       payer or payee on the blocklist              (hard)
--     velocity_count    payer already has N approved payments in W    (hard)
--     velocity_sum      approved amount in W plus this one exceeds S  (hard)
--     score             sum of the weights of the soft signals that
--                       fired, capped at 100, declines at >= threshold:
--                         new_payee     first payment from payer to payee
--                         above_median  amount > factor x the median of
--                                       the payer's last 20 approvals (3+)
--   Velocity counts approved decisions only, each exactly once: a payment
--   has one decision row whatever its redeliveries and duplicates, and the
--   payers of a batch are locked (advisory, sorted) so replicas count one
--   after the other.
-- cfg: {"version", "max_amount": {"EUR": n, ...}, "blocklist": [ids],
--       "velocity_count", "velocity_sum", "velocity_window_s",
--       "score_threshold", "weight_new_payee", "weight_above_median",
--       "median_factor"}   (0 disables a numeric rule)

CREATE TABLE risk_decisions (
    payment_id      text PRIMARY KEY,
    payer           text NOT NULL,
    payee           text NOT NULL,
    amount          bigint NOT NULL,
    currency        char(3) NOT NULL,
    decision        text NOT NULL CHECK (decision IN ('approved', 'declined')),
    score           integer NOT NULL CHECK (score BETWEEN 0 AND 100),
    rules           text[] NOT NULL,
    ruleset_version text NOT NULL,
    decided_at      timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX risk_decisions_payer_idx ON risk_decisions (payer, decided_at);

CREATE FUNCTION risk_apply_batch(p_batch jsonb, p_cfg jsonb)
RETURNS TABLE (ord integer, verdict text, decision text, score integer, rules text[],
               prior_payload text)
LANGUAGE plpgsql AS $$
DECLARE
    e jsonb;
    prior_hash text;
    v_payer text;
    v_payee text;
    v_amount bigint;
    v_limit bigint;
    n_count bigint;
    n_sum bigint;
    v_median numeric;
    n_hist bigint;
    window_s bigint := coalesce((p_cfg ->> 'velocity_window_s')::bigint, 3600);
BEGIN
    -- payers in sorted order: replicas evaluate velocity one after the other
    PERFORM pg_advisory_xact_lock(hashtext('risk:' || p))
    FROM (SELECT DISTINCT x.value ->> 'payer' AS p FROM jsonb_array_elements(p_batch) x
          ORDER BY 1) s;
    ord := 0;
    FOR e IN SELECT x.value FROM jsonb_array_elements(p_batch) WITH ORDINALITY x
             ORDER BY x.ordinality LOOP
        ord := ord + 1;
        prior_payload := NULL;
        INSERT INTO processed (stage, payment_id, payload_hash, payload, outcome)
        VALUES ('risk', e ->> 'payment_id', e ->> 'hash', e ->> 'payload', 'pending')
        ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            SELECT p.payload_hash, p.payload INTO prior_hash, prior_payload
            FROM processed p WHERE p.stage = 'risk' AND p.payment_id = e ->> 'payment_id';
            verdict := CASE WHEN prior_hash = e ->> 'hash' THEN 'duplicate' ELSE 'conflict' END;
            SELECT d.decision, d.score, d.rules INTO decision, score, rules
            FROM risk_decisions d WHERE d.payment_id = e ->> 'payment_id';
            RETURN NEXT;
            CONTINUE;
        END IF;
        verdict := 'new';
        v_payer := e ->> 'payer';
        v_payee := e ->> 'payee';
        v_amount := (e ->> 'amount')::bigint;
        rules := ARRAY[]::text[];
        score := 0;
        decision := 'approved';

        v_limit := (p_cfg -> 'max_amount' ->> (e ->> 'currency'))::bigint;
        IF v_limit IS NOT NULL AND v_amount > v_limit THEN
            rules := array_append(rules, 'max_amount');
        END IF;
        IF cardinality(rules) = 0 AND p_cfg -> 'blocklist' ?| ARRAY[v_payer, v_payee] THEN
            rules := array_append(rules, 'blocklisted');
        END IF;
        IF cardinality(rules) = 0 AND (coalesce((p_cfg ->> 'velocity_count')::bigint, 0) > 0
                                       OR coalesce((p_cfg ->> 'velocity_sum')::bigint, 0) > 0) THEN
            SELECT count(*), coalesce(sum(d.amount), 0) INTO n_count, n_sum
            FROM risk_decisions d
            WHERE d.payer = v_payer AND d.decision = 'approved'
              AND d.decided_at > clock_timestamp() - make_interval(secs => window_s);
            IF (p_cfg ->> 'velocity_count')::bigint > 0
               AND n_count >= (p_cfg ->> 'velocity_count')::bigint THEN
                rules := array_append(rules, 'velocity_count');
            ELSIF (p_cfg ->> 'velocity_sum')::bigint > 0
                  AND n_sum + v_amount > (p_cfg ->> 'velocity_sum')::bigint THEN
                rules := array_append(rules, 'velocity_sum');
            END IF;
        END IF;
        IF cardinality(rules) > 0 THEN
            decision := 'declined';
        ELSE
            -- soft signals
            IF coalesce((p_cfg ->> 'weight_new_payee')::int, 0) > 0 AND NOT EXISTS (
                   SELECT 1 FROM risk_decisions d
                   WHERE d.payer = v_payer AND d.payee = v_payee AND d.decision = 'approved') THEN
                rules := array_append(rules, 'new_payee');
                score := score + (p_cfg ->> 'weight_new_payee')::int;
            END IF;
            IF coalesce((p_cfg ->> 'weight_above_median')::int, 0) > 0 THEN
                SELECT count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY h.amount)
                INTO n_hist, v_median
                FROM (SELECT d.amount FROM risk_decisions d
                      WHERE d.payer = v_payer AND d.decision = 'approved'
                      ORDER BY d.decided_at DESC LIMIT 20) h;
                IF n_hist >= 3 AND v_amount > v_median * coalesce((p_cfg ->> 'median_factor')::numeric, 10) THEN
                    rules := array_append(rules, 'above_median');
                    score := score + (p_cfg ->> 'weight_above_median')::int;
                END IF;
            END IF;
            score := least(score, 100);
            IF coalesce((p_cfg ->> 'score_threshold')::int, 0) > 0
               AND score >= (p_cfg ->> 'score_threshold')::int THEN
                decision := 'declined';
                rules := array_append(rules, 'score');
            END IF;
        END IF;
        INSERT INTO risk_decisions (payment_id, payer, payee, amount, currency, decision, score,
                                    rules, ruleset_version)
        VALUES (e ->> 'payment_id', v_payer, v_payee, v_amount, e ->> 'currency', decision,
                score, rules, coalesce(p_cfg ->> 'version', '1'));
        UPDATE processed p SET outcome = decision
        WHERE p.stage = 'risk' AND p.payment_id = e ->> 'payment_id';
        RETURN NEXT;
    END LOOP;
END;
$$;
