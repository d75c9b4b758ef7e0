-- settlement_lock_key(payee, currency): the key of the advisory lock of
-- docs/ledger.md#locks rule 2, class 2. Every writer of a payee's batches
-- (adding payments, closing) takes it first, so the batches of one payee,
-- including the next window a late payment moves to, are never locked out
-- of order.
CREATE OR REPLACE FUNCTION settlement_lock_key(p_payee text, p_currency text) RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
    SELECT hashtext(p_payee || '/' || p_currency)
$$;
