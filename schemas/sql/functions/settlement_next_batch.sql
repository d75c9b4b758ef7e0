-- settlement_next_batch(payee, currency, except, at, window_s) -> batch:
-- the payee's next batch to close in that currency, which a refund of an
-- already paid-out payment is deducted from: its oldest open batch other
-- than `except`; when it has none, the
-- batch of the window holding `at` (window_s long, aligned to the epoch
-- like every window), created if missing, or the next window whose batch
-- is still open. Returned locked.
--
-- Locks (docs/ledger.md#locks): rule 4 (the batch). Its callers hold rule
-- 2's class-2 lock of (payee, currency), which every writer of that
-- payee's batches takes first, so the batch rows they lock one after the
-- other cannot wait in a cycle.
CREATE OR REPLACE FUNCTION settlement_next_batch(p_payee text, p_currency text, p_except text,
                                                 p_at timestamptz, p_window_s bigint)
RETURNS settlement_batches
LANGUAGE plpgsql AS $$
DECLARE
    b settlement_batches%ROWTYPE;
    w_start timestamptz;
BEGIN
    SELECT * INTO b FROM settlement_batches s
    WHERE s.payee = p_payee AND s.currency = p_currency AND s.status = 'open'
      AND s.id IS DISTINCT FROM p_except
    ORDER BY s.window_start LIMIT 1
    FOR NO KEY UPDATE;
    IF FOUND THEN
        RETURN b;
    END IF;
    w_start := to_timestamp(floor(extract(epoch FROM p_at) / p_window_s) * p_window_s);
    LOOP
        INSERT INTO settlement_batches (id, payee, currency, window_start, window_end)
        VALUES (settlement_batch_id(p_payee, p_currency, w_start), p_payee, p_currency, w_start,
                w_start + make_interval(secs => p_window_s))
        ON CONFLICT (payee, currency, window_start) DO NOTHING;
        SELECT * INTO b FROM settlement_batches s
        WHERE s.payee = p_payee AND s.currency = p_currency AND s.window_start = w_start
        FOR NO KEY UPDATE;
        EXIT WHEN b.status = 'open' AND b.id IS DISTINCT FROM p_except;
        w_start := w_start + make_interval(secs => p_window_s);
    END LOOP;
    RETURN b;
END;
$$;
