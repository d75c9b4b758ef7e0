-- settlement_close(batch, token, closer): closes one batch for the holder
-- of fencing token `token`: posts the fee transfer (payee -> sys:fees:CUR,
-- the batch's fees capped at its gross, kept whatever was refunded) and
-- the payout (payee -> sys:payout:CUR, the net = gross - fees - refunds -
-- carried_in), and marks the batch closed. carried_in is what the payee's
-- earlier closes could not pay (settlement_carry, taken whole here). A net
-- below zero is never paid: the payout is 0 and the shortfall goes back to
-- settlement_carry (carried_out) for the payee's next close. The fee
-- transfer may take the payee below zero (ledger_post): that negative
-- balance is what it carries. Returns the closed
-- batch, or no row when it was closed already. A transfer the ledger
-- refuses (payee frozen, short of funds) raises: the caller rolls back and
-- holds the batch (settlement_hold). The caller stores the
-- settlement.batch.closed event in the same transaction.
--
-- Locks (docs/ledger.md#locks): rule 1 (fence_advance), rule 2 (the
-- payee's settlement lock, which also guards the payee's settlement_carry
-- row), rule 4 (the batch), rule 5 (payee and both system accounts, id
-- order).
CREATE OR REPLACE FUNCTION settlement_close(p_batch text, p_token bigint, p_closer text)
RETURNS SETOF settlement_batches
LANGUAGE plpgsql AS $$
DECLARE
    b settlement_batches%ROWTYPE;
    v_fees bigint;
    v_in bigint;
    v_net numeric;
    v_payout bigint;
    v_carry bigint;
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
    DELETE FROM settlement_carry c WHERE c.payee = b.payee AND c.currency = b.currency
    RETURNING c.amount INTO v_in;
    v_in := coalesce(v_in, 0);
    v_net := b.gross::numeric - v_fees - b.refunds - v_in;
    v_payout := greatest(v_net, 0);
    v_carry := greatest(-v_net, 0); -- raises past the bigint range: the batch is held
    IF v_carry > 0 THEN
        INSERT INTO settlement_carry (payee, currency, amount) VALUES (b.payee, b.currency, v_carry);
    END IF;
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
    IF v_payout > 0 THEN
        SELECT * INTO r FROM ledger_post(b.id, 'payout', b.payee, 'sys:payout:' || b.currency,
                                         v_payout, b.currency);
        IF r.status NOT IN ('posted', 'duplicate') THEN
            RAISE EXCEPTION 'payout transfer of batch % refused: %', b.id, r.status;
        END IF;
        payout_t := r.transfer_id;
    END IF;
    -- the fee may take the payee below its floor by what it carries, never
    -- more: a payee that spent the money this batch owes (paid it away, or
    -- refunded other payments from it) is held until it has it again
    SELECT * INTO r FROM accounts a WHERE a.id = b.payee;
    IF r.balance::numeric < -r.overdraft_limit::numeric - v_carry THEN
        RAISE EXCEPTION 'closing batch % would leave payee % at %, below -% (its overdraft limit) '
                        'by more than the % it carries', b.id, b.payee, r.balance,
                        r.overdraft_limit, v_carry;
    END IF;
    UPDATE settlement_batches
    SET status = 'closed', fees = v_fees, net = v_payout, carried_in = v_in, carried_out = v_carry,
        fee_transfer = fee_t,
        payout_transfer = payout_t, closed_at = clock_timestamp(), closed_by = p_closer,
        fence = p_token
    WHERE id = b.id
    RETURNING * INTO b;
    RETURN NEXT b;
END;
$$;
