-- 008_guards.sql - three guards found by review (the functions are
-- replaced whole; only the marked parts changed).
--
-- ledger_post: a payment may not touch a system account. sys:funding had
-- no funds check (system accounts mint and absorb), so a payment.requested
-- naming it as payer created money; it is 'unknown_account' now, the
-- public reason for an account a payment cannot use.
--
-- settlement_apply_batch: the settlement stage took amount, payee and
-- currency from the payment.completed event; anyone allowed to publish on
-- ledgerline.events could forge one. It now checks the event against the
-- ledger's payment transfer and refuses ('unposted') one that does not
-- match, leaving no processed row.
--
-- settlement_close: locks the payee and both system accounts in sorted-id
-- order first; the fee and payout postings each locked a pair, which could
-- form a cycle with another close of the same payee.

CREATE OR REPLACE FUNCTION ledger_post(p_ref text, p_kind text, p_debit text, p_credit text,
                            p_amount bigint, p_currency text,
                            OUT status text, OUT transfer_id bigint)
LANGUAGE plpgsql AS $$
DECLARE
    d accounts%ROWTYPE;
    c accounts%ROWTYPE;
    r record;
BEGIN
    -- lock both rows in sorted-id order
    FOR r IN SELECT * FROM accounts WHERE id IN (p_debit, p_credit) ORDER BY id FOR UPDATE LOOP
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

CREATE OR REPLACE FUNCTION settlement_apply_batch(p_batch jsonb, p_window_s bigint)
RETURNS TABLE (ord integer, verdict text, batch_id text, late boolean, prior_payload text)
LANGUAGE plpgsql AS $$
DECLARE
    e jsonb;
    prior_hash text;
    w_start timestamptz;
    b settlement_batches%ROWTYPE;
    a accounts%ROWTYPE;
    t transfers%ROWTYPE;
    v_fee bigint;
BEGIN
    -- the batches this batch touches, created and locked in sorted order
    -- first, so concurrent workers never deadlock on each other's batches
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
    ORDER BY s.id FOR UPDATE;
    ord := 0;
    FOR e IN SELECT x.value FROM jsonb_array_elements(p_batch) WITH ORDINALITY x
             ORDER BY x.ordinality LOOP
        ord := ord + 1;
        prior_payload := NULL;
        batch_id := NULL;
        late := false;
        INSERT INTO processed (stage, payment_id, payload_hash, payload, outcome)
        VALUES ('settlement', e ->> 'payment_id', e ->> 'hash', e ->> 'payload', 'pending')
        ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            SELECT p.payload_hash, p.payload INTO prior_hash, prior_payload
            FROM processed p WHERE p.stage = 'settlement' AND p.payment_id = e ->> 'payment_id';
            verdict := CASE WHEN prior_hash = e ->> 'hash' THEN 'duplicate' ELSE 'conflict' END;
            SELECT i.batch_id, i.late INTO batch_id, late
            FROM settlement_items i WHERE i.payment_id = e ->> 'payment_id';
            RETURN NEXT;
            CONTINUE;
        END IF;
        -- the ledger, not the event, says what was paid: an event whose
        -- payment transfer is missing or differs is refused, and leaves no
        -- trace (the genuine event can still come)
        SELECT * INTO t FROM transfers x WHERE x.kind = 'payment' AND x.ref = e ->> 'payment_id';
        IF NOT FOUND OR t.amount <> (e ->> 'amount')::bigint OR t.credit_account <> e ->> 'payee'
           OR t.currency <> e ->> 'currency' THEN
            DELETE FROM processed p
            WHERE p.stage = 'settlement' AND p.payment_id = e ->> 'payment_id';
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
        SELECT * INTO a FROM accounts WHERE id = e ->> 'payee';
        v_fee := settlement_fee((e ->> 'amount')::bigint, coalesce(a.fee_bps, 0),
                                coalesce(a.fee_fixed, 0));
        w_start := to_timestamp(floor((e ->> 'posted_ms')::numeric / 1000 / p_window_s)
                                * p_window_s);
        LOOP
            INSERT INTO settlement_batches (id, payee, currency, window_start, window_end)
            VALUES (settlement_batch_id(e ->> 'payee', e ->> 'currency', w_start),
                    e ->> 'payee', e ->> 'currency', w_start,
                    w_start + make_interval(secs => p_window_s))
            ON CONFLICT (payee, currency, window_start) DO NOTHING;
            SELECT * INTO b FROM settlement_batches s
            WHERE s.payee = e ->> 'payee' AND s.currency = e ->> 'currency'
              AND s.window_start = w_start
            FOR UPDATE;
            EXIT WHEN b.status = 'open';
            late := true; -- closed: the next window of this payee and currency
            w_start := w_start + make_interval(secs => p_window_s);
        END LOOP;
        INSERT INTO settlement_items (payment_id, batch_id, amount, fee, late)
        VALUES (e ->> 'payment_id', b.id, (e ->> 'amount')::bigint, v_fee, late);
        UPDATE settlement_batches s
        SET count = s.count + 1, gross = s.gross + (e ->> 'amount')::bigint,
            fees_raw = s.fees_raw + v_fee, late_count = s.late_count + late::int
        WHERE s.id = b.id;
        UPDATE processed p SET outcome = 'batched:' || b.id
        WHERE p.stage = 'settlement' AND p.payment_id = e ->> 'payment_id';
        verdict := 'new';
        batch_id := b.id;
        RETURN NEXT;
    END LOOP;
END;
$$;

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
    SELECT * INTO b FROM settlement_batches WHERE id = p_batch FOR UPDATE;
    IF NOT FOUND OR b.status = 'closed' THEN
        RETURN;
    END IF;
    v_fees := least(b.fees_raw, b.gross);
    INSERT INTO accounts (id, currency, kind) VALUES ('sys:fees:' || b.currency, b.currency, 'system'),
                                                   ('sys:payout:' || b.currency, b.currency, 'system')
    ON CONFLICT (id) DO NOTHING;
    -- the payee and both system accounts locked in sorted-id order up front,
    -- like every other writer, so two closes (or a close and a payment)
    -- can never wait on each other in a cycle
    PERFORM 1 FROM accounts
    WHERE id IN (b.payee, 'sys:fees:' || b.currency, 'sys:payout:' || b.currency)
    ORDER BY id FOR UPDATE;
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
