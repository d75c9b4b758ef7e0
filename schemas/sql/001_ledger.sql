-- 001_ledger.sql: the double-entry ledger of DESIGN.md section 4.
--
-- Money is bigint minor units. Entries are signed: a debit is negative on
-- the debited account, a credit positive on the credited one, so per
-- currency all balances sum to zero (system accounts absorb the other side
-- of funding, fees and payouts). ledger_post() is the one way a transfer is
-- written: it locks both accounts in sorted-id order (no deadlocks between
-- concurrent posters), applies the business checks, and returns a status
-- instead of raising, so a batch can decide payment after payment.

CREATE TABLE accounts (
    id              text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_.:-]{1,64}$'),
    currency        char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    balance         bigint NOT NULL DEFAULT 0,
    overdraft_limit bigint NOT NULL DEFAULT 0 CHECK (overdraft_limit >= 0),
    status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'frozen')),
    kind            text NOT NULL DEFAULT 'customer'
                    CHECK (kind IN ('customer', 'merchant', 'system')),
    fee_bps         integer NOT NULL DEFAULT 0 CHECK (fee_bps BETWEEN 0 AND 10000),
    fee_fixed       bigint NOT NULL DEFAULT 0 CHECK (fee_fixed >= 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- ref is unique per kind: a payment's ref is its payment_id; a settlement
-- batch's fee and payout transfers share the batch id as ref.
CREATE TABLE transfers (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ref            text NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('payment', 'funding', 'fee', 'payout')),
    debit_account  text NOT NULL REFERENCES accounts (id),
    credit_account text NOT NULL REFERENCES accounts (id),
    amount         bigint NOT NULL CHECK (amount > 0),
    currency       char(3) NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (debit_account <> credit_account),
    UNIQUE (kind, ref)
);

CREATE TABLE entries (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transfer_id   bigint NOT NULL REFERENCES transfers (id),
    account_id    text NOT NULL REFERENCES accounts (id),
    amount        bigint NOT NULL CHECK (amount <> 0),
    balance_after bigint NOT NULL
);
CREATE INDEX entries_account_idx ON entries (account_id, id);
CREATE INDEX entries_transfer_idx ON entries (transfer_id);

-- ledger_post: post one transfer, or say why not.
-- status: posted | duplicate | unknown_account | account_frozen |
--         currency_mismatch | insufficient_funds
-- 'duplicate' returns the id of the transfer that already holds (kind, ref).
-- Funds are checked only on a non-system debit account:
-- new balance >= -overdraft_limit.
CREATE FUNCTION ledger_post(p_ref text, p_kind text, p_debit text, p_credit text,
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
