-- 010_stage_locks.sql - the stages never wait on each other in a cycle.
--
-- Each stage was deadlock-free alone; together they were not. The payment
-- stage locked accounts FOR UPDATE; a settlement-worker creating a batch
-- row checks its foreign key to the payee's account with FOR KEY SHARE,
-- which FOR UPDATE excludes, and it held other payees' key-share locks
-- in batch-id order: a cycle with the payment stage on nearly every batch
-- of a busy pipeline (deadlock_timeout, then the whole batch again).
--
-- The lock contract every function below follows (README "Locks"), in
-- this order within a transaction:
--   1. lock_fences: the settlement closer's one row, first of all
--      (fence_advance)
--   2. transaction-scoped advisory locks, two-key form (class, hashtext of
--      the key), in ascending hash order:
--        class 1  risk: one per payer (velocity is counted under it)
--        class 2  settlement: one per (payee, currency), taken by every
--                 writer of that payee's batches (adding and closing), so
--                 the next window a late payment moves to is never locked
--                 out of order
--   3. processed rows, inserted for the whole batch at once in payment_id
--      order (a payment_id in flight in two transactions waits one way)
--   4. settlement_batches rows, in id order, FOR NO KEY UPDATE
--   5. accounts rows, in id order, FOR NO KEY UPDATE
-- A balance or a batch total is not a key: FOR NO KEY UPDATE is enough,
-- and it does not exclude the FOR KEY SHARE that every foreign-key check
-- (a new transfer, entry, batch or batch item) takes on the row it points
-- at. So an insert that references an account or a batch never waits on a
-- stage, and no function takes FOR UPDATE on accounts or batches (only a
-- key change or a delete would need it, and nothing does either).
--
-- Replaced whole (applied migrations are never edited): ledger_post,
-- fence_advance, payment_apply_batch, risk_apply_batch,
-- settlement_apply_batch, settlement_close. payment_apply() is folded
-- into payment_apply_batch() and dropped. Results are unchanged.

CREATE OR REPLACE FUNCTION ledger_post(p_ref text, p_kind text, p_debit text, p_credit text,
                                       p_amount bigint, p_currency text,
                                       OUT status text, OUT transfer_id bigint)
LANGUAGE plpgsql AS $$
DECLARE
    d accounts%ROWTYPE;
    c accounts%ROWTYPE;
    r record;
BEGIN
    -- both rows in sorted-id order; a balance update is not a key change
    FOR r IN SELECT * FROM accounts WHERE id IN (p_debit, p_credit) ORDER BY id
             FOR NO KEY UPDATE LOOP
        IF r.id = p_debit THEN d := r; ELSE c := r; END IF;
    END LOOP;
    -- checked under the locks: a concurrent poster of the same ref has
    -- committed (or rolled back) by now
    SELECT t.id INTO transfer_id FROM transfers t WHERE t.kind = p_kind AND t.ref = p_ref;
    IF FOUND THEN
        status := 'duplicate';
        RETURN;
    END IF;
    IF d.id IS NULL OR c.id IS NULL THEN
        status := 'unknown_account';
        RETURN;
    END IF;
    -- system accounts (sys:funding, sys:fees, sys:payout) are the ledger's
    -- own: a payment can neither take money from them nor pay into them
    IF p_kind = 'payment' AND (d.kind = 'system' OR c.kind = 'system') THEN
        status := 'unknown_account';
        RETURN;
    END IF;
    IF d.status <> 'active' OR c.status <> 'active' THEN
        status := 'account_frozen';
        RETURN;
    END IF;
    IF d.currency <> p_currency OR c.currency <> p_currency THEN
        status := 'currency_mismatch';
        RETURN;
    END IF;
    IF d.kind <> 'system' AND d.balance - p_amount < -d.overdraft_limit THEN
        status := 'insufficient_funds';
        RETURN;
    END IF;
    INSERT INTO transfers (ref, kind, debit_account, credit_account, amount, currency)
    VALUES (p_ref, p_kind, p_debit, p_credit, p_amount, p_currency)
    RETURNING id INTO transfer_id;
    UPDATE accounts SET balance = balance - p_amount, updated_at = now() WHERE id = p_debit;
    UPDATE accounts SET balance = balance + p_amount, updated_at = now() WHERE id = p_credit;
    INSERT INTO entries (transfer_id, account_id, amount, balance_after)
    VALUES (transfer_id, p_debit, -p_amount, d.balance - p_amount),
           (transfer_id, p_credit, p_amount, c.balance + p_amount);
    status := 'posted';
END;
$$;

CREATE OR REPLACE FUNCTION fence_advance(p_name text, p_token bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    seen bigint;
BEGIN
    INSERT INTO lock_fences (name, token) VALUES (p_name, p_token)
    ON CONFLICT (name) DO NOTHING;
    IF FOUND THEN
        RETURN;
    END IF;
    SELECT token INTO seen FROM lock_fences WHERE name = p_name FOR NO KEY UPDATE;
    IF seen >= p_token THEN
        RAISE EXCEPTION 'stale fencing token % for %: % was already used', p_token, p_name, seen
            USING ERRCODE = 'LL001';
    END IF;
    UPDATE lock_fences SET token = p_token WHERE name = p_name;
END;
$$;

-- processed_claim: the processed rows of a batch, inserted at once in
-- payment_id order (lock rule 3), outcome 'pending'; the first occurrence
-- of a payment_id in the batch is the one inserted. Returns the payment_ids
-- inserted now, as a jsonb object {id: ordinal of that first occurrence}:
-- an element is 'new' exactly when it is that occurrence.
CREATE FUNCTION processed_claim(p_stage text, p_batch jsonb) RETURNS jsonb
LANGUAGE sql AS $$
    WITH first AS (
        SELECT DISTINCT ON (x.value ->> 'payment_id') x.value ->> 'payment_id' AS id,
               x.value ->> 'hash' AS hash, x.value ->> 'payload' AS payload, x.ordinality AS n
        FROM jsonb_array_elements(p_batch) WITH ORDINALITY x
        ORDER BY x.value ->> 'payment_id', x.ordinality),
    ins AS (
        INSERT INTO processed (stage, payment_id, payload_hash, payload, outcome)
        SELECT p_stage, f.id, f.hash, f.payload, 'pending' FROM first f ORDER BY f.id
        ON CONFLICT DO NOTHING
        RETURNING payment_id)
    SELECT coalesce(jsonb_object_agg(f.id, f.n), '{}'::jsonb)
    FROM first f JOIN ins i ON i.payment_id = f.id
$$;

DROP FUNCTION payment_apply(text, text, text, text, text, bigint, text);

-- payment_apply_batch(batch): the payment stage's decision for each
-- element, in array (queue) order, as one-at-a-time processing would give.
--   verdict 'new'       : processed now; outcome 'completed' (transfer_id
--                         set) or the refusal reason of ledger_post
--   verdict 'duplicate' : processed before with the same payload; outcome
--                         and transfer_id are the original ones
--   verdict 'conflict'  : processed before with another payload;
--                         prior_payload is that payload
-- A payment_id whose processed row another transaction holds uncommitted
-- waits for it, so the payment is still decided once.
-- batch: [{"payment_id", "hash", "payload", "payer", "payee", "amount",
--          "currency"}, ...]
CREATE OR REPLACE FUNCTION payment_apply_batch(p_batch jsonb)
RETURNS TABLE (ord integer, verdict text, outcome text, transfer_id bigint,
               prior_payload text)
LANGUAGE plpgsql AS $$
DECLARE
    e record;
    v_id text;
    st text;
    prior_hash text;
    fresh jsonb;
BEGIN
    -- rule 3, then rule 5 (the payment stage takes nothing else)
    fresh := processed_claim('payment', p_batch);
    PERFORM 1 FROM accounts a
    WHERE a.id IN (SELECT x.value ->> 'payer' FROM jsonb_array_elements(p_batch) x
                   UNION
                   SELECT x.value ->> 'payee' FROM jsonb_array_elements(p_batch) x)
    ORDER BY a.id FOR NO KEY UPDATE;
    FOR e IN SELECT x.value AS v, x.ordinality AS n
             FROM jsonb_array_elements(p_batch) WITH ORDINALITY x ORDER BY x.ordinality LOOP
        ord := e.n;
        v_id := e.v ->> 'payment_id';
        prior_payload := NULL;
        transfer_id := NULL;
        IF (fresh ->> v_id)::bigint IS DISTINCT FROM e.n THEN
            SELECT p.payload_hash, p.outcome, p.payload INTO prior_hash, outcome, prior_payload
            FROM processed p WHERE p.stage = 'payment' AND p.payment_id = v_id;
            verdict := CASE WHEN prior_hash = e.v ->> 'hash' THEN 'duplicate' ELSE 'conflict' END;
            SELECT t.id INTO transfer_id FROM transfers t WHERE t.kind = 'payment' AND t.ref = v_id;
            RETURN NEXT;
            CONTINUE;
        END IF;
        SELECT l.status, l.transfer_id INTO st, transfer_id
        FROM ledger_post(v_id, 'payment', e.v ->> 'payer', e.v ->> 'payee',
                         (e.v ->> 'amount')::bigint, e.v ->> 'currency') l;
        -- 'duplicate' here means a payment transfer with this ref exists
        -- without a processed row (posted by hand): it is the payment's
        outcome := CASE WHEN st IN ('posted', 'duplicate') THEN 'completed' ELSE st END;
        IF outcome <> 'completed' THEN
            transfer_id := NULL;
        END IF;
        UPDATE processed p SET outcome = payment_apply_batch.outcome
        WHERE p.stage = 'payment' AND p.payment_id = v_id;
        verdict := 'new';
        RETURN NEXT;
    END LOOP;
END;
$$;

-- risk_apply_batch: as in 005_risk.sql (rules, order, cfg); only the
-- locks changed: payer advisory locks (rule 2, class 1) in hash order, then the
-- batch's processed rows in payment_id order.
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
    n_hist bigint;
    window_s bigint := coalesce((p_cfg ->> 'velocity_window_s')::bigint, 3600);
BEGIN
    -- rule 2: replicas evaluate a payer's velocity one after the other
    PERFORM pg_advisory_xact_lock(1, s.k)
    FROM (SELECT DISTINCT hashtext(x.value ->> 'payer') AS k
          FROM jsonb_array_elements(p_batch) x) s
    ORDER BY s.k;
    fresh := processed_claim('risk', p_batch);
    FOR e IN SELECT x.value AS v, x.ordinality AS n
             FROM jsonb_array_elements(p_batch) WITH ORDINALITY x ORDER BY x.ordinality LOOP
        ord := e.n;
        v_id := e.v ->> 'payment_id';
        prior_payload := NULL;
        IF (fresh ->> v_id)::bigint IS DISTINCT FROM e.n THEN
            SELECT p.payload_hash, p.payload INTO prior_hash, prior_payload
            FROM processed p WHERE p.stage = 'risk' AND p.payment_id = v_id;
            verdict := CASE WHEN prior_hash = e.v ->> 'hash' THEN 'duplicate' ELSE 'conflict' END;
            SELECT d.decision, d.score, d.rules INTO decision, score, rules
            FROM risk_decisions d WHERE d.payment_id = v_id;
            RETURN NEXT;
            CONTINUE;
        END IF;
        verdict := 'new';
        v_payer := e.v ->> 'payer';
        v_payee := e.v ->> 'payee';
        v_amount := (e.v ->> 'amount')::bigint;
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
        VALUES (v_id, v_payer, v_payee, v_amount, e.v ->> 'currency', decision,
                score, rules, coalesce(p_cfg ->> 'version', '1'));
        UPDATE processed p SET outcome = decision
        WHERE p.stage = 'risk' AND p.payment_id = v_id;
        RETURN NEXT;
    END LOOP;
END;
$$;

-- settlement_lock_key(payee, currency): the key of lock rule 2, class 2.
-- Every writer of a payee's batches (adding, closing) takes that lock
-- first, so the batches of one payee (including the next window a late
-- payment moves to) are never locked out of order.
CREATE FUNCTION settlement_lock_key(p_payee text, p_currency text) RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
    SELECT hashtext(p_payee || '/' || p_currency)
$$;

-- settlement_apply_batch: as in 008_guards.sql (windows, late payments,
-- the ledger check, fees); only the locks changed: rule 2 for every
-- (payee, currency) of the batch, rule 3, then rule 4.
CREATE OR REPLACE FUNCTION settlement_apply_batch(p_batch jsonb, p_window_s bigint)
RETURNS TABLE (ord integer, verdict text, batch_id text, late boolean, prior_payload text)
LANGUAGE plpgsql AS $$
DECLARE
    e record;
    v_id text;
    fresh jsonb;
    prior_hash text;
    w_start timestamptz;
    b settlement_batches%ROWTYPE;
    a accounts%ROWTYPE;
    t transfers%ROWTYPE;
    v_fee bigint;
BEGIN
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
    WHERE s.id IN (SELECT settlement_batch_id(x.value ->> 'payee', x.value ->> 'currency',
                          to_timestamp(floor((x.value ->> 'posted_ms')::numeric / 1000
                                             / p_window_s) * p_window_s))
                   FROM jsonb_array_elements(p_batch) x)
    ORDER BY s.id FOR NO KEY UPDATE;
    FOR e IN SELECT x.value AS v, x.ordinality AS n
             FROM jsonb_array_elements(p_batch) WITH ORDINALITY x ORDER BY x.ordinality LOOP
        ord := e.n;
        v_id := e.v ->> 'payment_id';
        prior_payload := NULL;
        batch_id := NULL;
        late := false;
        IF (fresh ->> v_id)::bigint IS DISTINCT FROM e.n THEN
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
            EXIT WHEN b.status = 'open';
            late := true; -- closed: the next window of this payee and currency
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

-- settlement_close: as in 008_guards.sql; the locks follow the contract:
-- rule 1 (fence_advance), rule 2 (the payee's settlement lock), rule 4
-- (the batch), rule 5 (payee and both system accounts in id order).
CREATE OR REPLACE FUNCTION settlement_close(p_batch text, p_token bigint, p_closer text)
RETURNS SETOF settlement_batches
LANGUAGE plpgsql AS $$
DECLARE
    b settlement_batches%ROWTYPE;
    v_fees bigint;
    r record;
    fee_t bigint;
    payout_t bigint;
BEGIN
    PERFORM fence_advance('settle:' || p_batch, p_token);
    SELECT * INTO b FROM settlement_batches WHERE id = p_batch;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock(2, settlement_lock_key(b.payee, b.currency));
    SELECT * INTO b FROM settlement_batches WHERE id = p_batch FOR NO KEY UPDATE;
    IF b.status = 'closed' THEN
        RETURN;
    END IF;
    v_fees := least(b.fees_raw, b.gross);
    INSERT INTO accounts (id, currency, kind) VALUES ('sys:fees:' || b.currency, b.currency, 'system'),
                                                   ('sys:payout:' || b.currency, b.currency, 'system')
    ON CONFLICT (id) DO NOTHING;
    PERFORM 1 FROM accounts
    WHERE id IN (b.payee, 'sys:fees:' || b.currency, 'sys:payout:' || b.currency)
    ORDER BY id FOR NO KEY UPDATE;
    IF v_fees > 0 THEN
        SELECT * INTO r FROM ledger_post(b.id, 'fee', b.payee, 'sys:fees:' || b.currency, v_fees,
                                         b.currency);
        IF r.status NOT IN ('posted', 'duplicate') THEN
            RAISE EXCEPTION 'fee transfer of batch % refused: %', b.id, r.status;
        END IF;
        fee_t := r.transfer_id;
    END IF;
    IF b.gross - v_fees > 0 THEN
        SELECT * INTO r FROM ledger_post(b.id, 'payout', b.payee, 'sys:payout:' || b.currency,
                                         b.gross - v_fees, b.currency);
        IF r.status NOT IN ('posted', 'duplicate') THEN
            RAISE EXCEPTION 'payout transfer of batch % refused: %', b.id, r.status;
        END IF;
        payout_t := r.transfer_id;
    END IF;
    UPDATE settlement_batches
    SET status = 'closed', fees = v_fees, net = gross - v_fees, fee_transfer = fee_t,
        payout_transfer = payout_t, closed_at = clock_timestamp(), closed_by = p_closer,
        fence = p_token
    WHERE id = b.id
    RETURNING * INTO b;
    RETURN NEXT b;
END;
$$;
