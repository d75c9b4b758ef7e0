-- funds_apply_batch(batch, cfg): the funds stage's batch function
-- (workers/funds/): decides each deposit.received, withdrawal.requested
-- and withdrawal.returned of the batch in array order, exactly once per
-- key ("deposit:<id>", "withdrawal:<id>", "return:<withdrawal_id>"), and
-- returns one row per element.
--
-- batch: [{"key", "hash", "payload", "type", and the message's fields}, ...]
-- cfg:   the risk rule configuration (common/risk_rules.h): a withdrawal is
--        screened by the risk stage's hard rules, in its order, the first
--        that fires declining it: max_amount (above the currency's limit),
--        blocklisted (the account), velocity_count (the account already
--        has N completed withdrawals in the velocity window),
--        velocity_sum (their amount plus this one exceeds S).
-- verdict: new | duplicate | conflict (prior_payload: the first payload) |
--   unusable (a withdrawal.returned of a withdrawal that is unknown or did
--   not complete: nothing is recorded, prior_payload says why; the worker
--   rejects and parks it, so it can be replayed once the withdrawal is).
-- outcome of a new one:
--   deposit     completed | unknown_account | account_frozen |
--               currency_mismatch | balance_overflow
--   withdrawal  completed | risk_declined (rules) | insufficient_funds |
--               unknown_account | account_frozen | currency_mismatch |
--               balance_overflow
--   return      reversed (account, amount, currency: the withdrawal's)
-- A system account is never a deposit's or a withdrawal's account
-- (unknown_account): sys:funding has no funds check, so withdrawing from
-- it would create money.
--
-- Locks (docs/ledger.md#locks): rule 2 class 1, one advisory lock per
-- account that withdraws, in hash order (velocity is counted one after
-- the other, like the risk stage counts a payer's); rule 3
-- (processed_claim); rule 5 (every account of the batch, the system
-- accounts included, in id order); then, per return, its withdrawals row
-- (only this function writes that table).
CREATE OR REPLACE FUNCTION funds_apply_batch(p_batch jsonb, p_cfg jsonb)
RETURNS TABLE (ord integer, verdict text, outcome text, transfer_id bigint, rules text[],
               account text, amount bigint, currency text, prior_payload text)
LANGUAGE plpgsql AS $$
DECLARE
    fresh jsonb;
    e record;
    v_key text;
    v_type text;
    v_acct text;
    v_amount bigint;
    v_cur text;
    v_rule text;
    v_limit bigint;
    n_count bigint;
    n_sum numeric;
    prior_hash text;
    st text;
    tid bigint;
    a accounts%ROWTYPE;
    w withdrawals%ROWTYPE;
    c_count bigint := coalesce((p_cfg ->> 'velocity_count')::bigint, 0);
    c_sum bigint := coalesce((p_cfg ->> 'velocity_sum')::bigint, 0);
    c_window bigint := coalesce((p_cfg ->> 'velocity_window_s')::bigint, 3600);
BEGIN
    PERFORM pg_advisory_xact_lock(1, s.k)
    FROM (SELECT DISTINCT hashtext(x.value ->> 'account') AS k
          FROM jsonb_array_elements(p_batch) x
          WHERE x.value ->> 'type' = 'withdrawal.requested') s
    ORDER BY s.k;
    fresh := processed_claim('funds', p_batch);
    -- the system accounts money comes from and goes to, created once, in id
    -- order (two batches creating the same ones wait in that order)
    INSERT INTO accounts (id, currency, kind)
    SELECT y.id, y.cur, 'system'
    FROM (SELECT DISTINCT CASE WHEN x.value ->> 'type' = 'deposit.received' THEN 'sys:funding:'
                               ELSE 'sys:withdrawals:' END || (x.value ->> 'currency') AS id,
                 x.value ->> 'currency' AS cur
          FROM jsonb_array_elements(p_batch) x
          WHERE x.value ->> 'type' IN ('deposit.received', 'withdrawal.requested')) y
    ORDER BY y.id
    ON CONFLICT (id) DO NOTHING;
    PERFORM 1 FROM accounts ac
    WHERE ac.id = ANY (ARRAY(
        SELECT x.value ->> 'account' FROM jsonb_array_elements(p_batch) x
        WHERE x.value ->> 'type' IN ('deposit.received', 'withdrawal.requested')
        UNION
        SELECT CASE WHEN x.value ->> 'type' = 'deposit.received' THEN 'sys:funding:'
                    ELSE 'sys:withdrawals:' END || (x.value ->> 'currency')
        FROM jsonb_array_elements(p_batch) x
        WHERE x.value ->> 'type' IN ('deposit.received', 'withdrawal.requested')
        UNION
        SELECT unnest(ARRAY[wd.account, 'sys:withdrawals:' || wd.currency]) FROM withdrawals wd
        WHERE wd.withdrawal_id = ANY (ARRAY(SELECT x.value ->> 'withdrawal_id'
                                            FROM jsonb_array_elements(p_batch) x
                                            WHERE x.value ->> 'type' = 'withdrawal.returned'))))
    ORDER BY ac.id FOR NO KEY UPDATE;
    FOR e IN SELECT x.value AS v, x.ordinality AS n
             FROM jsonb_array_elements(p_batch) WITH ORDINALITY x ORDER BY x.ordinality LOOP
        ord := e.n;
        v_key := e.v ->> 'key';
        v_type := e.v ->> 'type';
        outcome := NULL;
        transfer_id := NULL;
        rules := '{}';
        account := NULL;
        amount := NULL;
        currency := NULL;
        prior_payload := NULL;
        IF (fresh ->> v_key)::bigint IS DISTINCT FROM e.n THEN
            SELECT p.payload_hash, p.outcome, p.payload INTO prior_hash, outcome, prior_payload
            FROM processed p WHERE p.stage = 'funds' AND p.payment_id = v_key;
            IF NOT FOUND THEN
                -- an earlier element of this batch with this key was unusable
                -- (its row removed below): judge this one as a first one
                INSERT INTO processed (stage, payment_id, payload_hash, payload, outcome)
                VALUES ('funds', v_key, e.v ->> 'hash', e.v ->> 'payload', 'pending');
            ELSE
                verdict := CASE WHEN prior_hash = e.v ->> 'hash' THEN 'duplicate'
                                ELSE 'conflict' END;
                RETURN NEXT;
                CONTINUE;
            END IF;
        END IF;
        verdict := 'new';
        IF v_type = 'deposit.received' THEN
            v_acct := e.v ->> 'account';
            v_amount := (e.v ->> 'amount')::bigint;
            v_cur := e.v ->> 'currency';
            SELECT * INTO a FROM accounts ac WHERE ac.id = v_acct;
            IF a.id IS NULL OR a.kind = 'system' THEN
                outcome := 'unknown_account';
            ELSE
                SELECT l.status, l.transfer_id INTO st, tid
                FROM ledger_post(e.v ->> 'deposit_id', 'deposit', 'sys:funding:' || v_cur, v_acct,
                                 v_amount, v_cur) l;
                outcome := CASE WHEN st IN ('posted', 'duplicate') THEN 'completed' ELSE st END;
            END IF;
            IF outcome = 'completed' THEN
                transfer_id := tid;
            END IF;
            INSERT INTO deposits (deposit_id, account, amount, currency, rail, rail_reference,
                                  outcome, transfer_id)
            VALUES (e.v ->> 'deposit_id', v_acct, v_amount, v_cur, e.v ->> 'rail',
                    e.v ->> 'rail_reference', outcome, transfer_id);
        ELSIF v_type = 'withdrawal.requested' THEN
            v_acct := e.v ->> 'account';
            v_amount := (e.v ->> 'amount')::bigint;
            v_cur := e.v ->> 'currency';
            v_rule := NULL;
            v_limit := (p_cfg -> 'max_amount' ->> v_cur)::bigint;
            SELECT * INTO a FROM accounts ac WHERE ac.id = v_acct;
            IF a.id IS NULL OR a.kind = 'system' THEN
                v_rule := NULL; -- unknown_account below: nothing to screen
            ELSIF coalesce(v_limit, 0) > 0 AND v_amount > v_limit THEN
                v_rule := 'max_amount';
            ELSIF coalesce(p_cfg -> 'blocklist', '[]'::jsonb) ? v_acct THEN
                v_rule := 'blocklisted';
            ELSIF c_count > 0 OR c_sum > 0 THEN
                SELECT count(*), coalesce(sum(wd.amount), 0) INTO n_count, n_sum
                FROM withdrawals wd
                WHERE wd.account = v_acct AND wd.outcome = 'completed'
                  AND wd.created_at > now() - make_interval(secs => c_window);
                IF c_count > 0 AND n_count >= c_count THEN
                    v_rule := 'velocity_count';
                ELSIF c_sum > 0 AND n_sum + v_amount > c_sum THEN
                    v_rule := 'velocity_sum';
                END IF;
            END IF;
            IF a.id IS NULL OR a.kind = 'system' THEN
                outcome := 'unknown_account';
            ELSIF v_rule IS NOT NULL THEN
                outcome := 'risk_declined';
                rules := ARRAY[v_rule];
            ELSE
                SELECT l.status, l.transfer_id INTO st, tid
                FROM ledger_post(e.v ->> 'withdrawal_id', 'withdrawal', v_acct,
                                 'sys:withdrawals:' || v_cur, v_amount, v_cur) l;
                outcome := CASE WHEN st IN ('posted', 'duplicate') THEN 'completed' ELSE st END;
                IF outcome = 'completed' THEN
                    transfer_id := tid;
                END IF;
            END IF;
            INSERT INTO withdrawals (withdrawal_id, account, amount, currency, rail, destination,
                                     outcome, rules, transfer_id)
            VALUES (e.v ->> 'withdrawal_id', v_acct, v_amount, v_cur, e.v ->> 'rail',
                    e.v ->> 'destination', outcome, funds_apply_batch.rules, transfer_id);
        ELSE -- withdrawal.returned
            SELECT * INTO w FROM withdrawals wd WHERE wd.withdrawal_id = e.v ->> 'withdrawal_id'
            FOR NO KEY UPDATE;
            IF w.withdrawal_id IS NULL OR w.outcome <> 'completed' THEN
                DELETE FROM processed p WHERE p.stage = 'funds' AND p.payment_id = v_key;
                verdict := 'unusable';
                prior_payload := CASE WHEN w.withdrawal_id IS NULL
                                      THEN format('no withdrawal %s is known', e.v ->> 'withdrawal_id')
                                      ELSE format('withdrawal %s did not complete (%s): nothing '
                                                  'left to return', w.withdrawal_id, w.outcome)
                                 END;
                RETURN NEXT;
                CONTINUE;
            END IF;
            SELECT l.status, l.transfer_id INTO st, tid
            FROM ledger_post(w.withdrawal_id, 'withdrawal_return', 'sys:withdrawals:' || w.currency,
                             w.account, w.amount, w.currency) l;
            IF st NOT IN ('posted', 'duplicate') THEN
                RAISE EXCEPTION 'return of withdrawal %: the ledger says %', w.withdrawal_id, st;
            END IF;
            UPDATE withdrawals wd
            SET return_transfer_id = tid, return_reference = e.v ->> 'rail_reference',
                return_reason = e.v ->> 'reason', returned_at = now()
            WHERE wd.withdrawal_id = w.withdrawal_id;
            outcome := 'reversed';
            transfer_id := tid;
            v_acct := w.account;
            v_amount := w.amount;
            v_cur := w.currency;
        END IF;
        account := v_acct;
        amount := v_amount;
        currency := v_cur;
        UPDATE processed p SET outcome = funds_apply_batch.outcome
        WHERE p.stage = 'funds' AND p.payment_id = v_key;
        RETURN NEXT;
    END LOOP;
END;
$$;
