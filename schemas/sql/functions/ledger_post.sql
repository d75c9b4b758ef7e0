-- ledger_post(ref, kind, debit, credit, amount, currency) -> (status, transfer_id):
-- posts one double-entry transfer, or says why not, without raising.
--
-- status: posted | duplicate | unknown_account | account_frozen |
--         currency_mismatch | insufficient_funds | balance_overflow
-- 'duplicate': a transfer with this (ref, kind) exists; transfer_id is its
-- id. A payment may not touch a system account, a deposit or a returned
-- withdrawal pay one, a withdrawal or a refund take from one, a fee or a
-- payout take from one or pay anything else, a funding take from anything
-- else or pay one (sys:funding has no funds check, so paying from it would
-- create money): 'unknown_account'. A withdrawal_return credits a frozen account too. Funds
-- are checked on a non-system debit account only: new balance >=
-- -overdraft_limit; except for a settlement fee (kind 'fee'), which the
-- payee owes whatever its refunds left: below zero, the shortfall is
-- carried to its next close (settlement_close). Balances are signed 64-bit: a posting that would take
-- either balance past the bigint range is 'balance_overflow' (checked in
-- numeric, after the funds check), never an arithmetic error. Entries are signed (debit negative, credit positive)
-- and carry the balance after them, so per currency all balances sum to 0.
--
-- Locks (docs/ledger.md#locks, rule 5): both accounts in id order, FOR NO
-- KEY UPDATE. Used by the settlement closer and by ledgerctl's funding; the
-- payment stage posts set-based in payment_apply_batch with the same checks
-- in the same order.
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
    -- system accounts (sys:funding, sys:fees, sys:payout, sys:withdrawals)
    -- are the ledger's own: a payment can neither take money from them nor
    -- pay into them; a deposit or a returned withdrawal pays a customer, a
    -- withdrawal or a refund takes from one; a settlement fee or payout
    -- takes from a customer and pays a system account, a funding the other
    -- way round
    IF (p_kind = 'payment' AND (d.kind = 'system' OR c.kind = 'system'))
       OR (p_kind IN ('deposit', 'withdrawal_return') AND c.kind = 'system')
       OR (p_kind IN ('withdrawal', 'refund') AND d.kind = 'system')
       OR (p_kind IN ('fee', 'payout') AND (d.kind = 'system' OR c.kind <> 'system'))
       OR (p_kind = 'funding' AND (d.kind <> 'system' OR c.kind = 'system')) THEN
        status := 'unknown_account';
        RETURN;
    END IF;
    -- money a failed withdrawal brings back returns even to a frozen
    -- account (it never left the ledger's books of that customer)
    IF d.status <> 'active' OR (c.status <> 'active' AND p_kind <> 'withdrawal_return') THEN
        status := 'account_frozen';
        RETURN;
    END IF;
    IF d.currency <> p_currency OR c.currency <> p_currency THEN
        status := 'currency_mismatch';
        RETURN;
    END IF;
    IF d.kind <> 'system' AND p_kind <> 'fee'
       AND d.balance::numeric - p_amount < -d.overdraft_limit THEN
        status := 'insufficient_funds';
        RETURN;
    END IF;
    IF d.balance::numeric - p_amount < -9223372036854775808
       OR c.balance::numeric + p_amount > 9223372036854775807 THEN
        status := 'balance_overflow';
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
