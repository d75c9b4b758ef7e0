-- 007_settlement_hold.sql - a settlement batch whose close is refused is
-- held, not retried in a loop.
--
-- Closing posts the fee and payout transfers from the payee; the ledger
-- refuses them when the payee is frozen, or no longer holds the funds (a
-- merchant can pay as a payer too). Such a batch stays open with
-- close_error saying why, and the closers skip it until close_retry_at
-- (settlement.close_retry_ms later), so refused batches can never starve
-- the others of a closer. Fixing the cause (unfreeze, fund) needs nothing
-- more: the next retry closes it. `ledgerctl settlement list` shows it as
-- "held".
ALTER TABLE settlement_batches
    ADD COLUMN close_error    text,         -- why the last close was refused
    ADD COLUMN close_retry_at timestamptz;  -- not tried again before this

-- settlement_hold: records a refused close (status stays 'open').
CREATE FUNCTION settlement_hold(p_batch text, p_error text, p_retry_ms bigint)
RETURNS void
LANGUAGE sql AS $$
    UPDATE settlement_batches
    SET close_error = p_error,
        close_retry_at = clock_timestamp() + p_retry_ms * interval '1 millisecond'
    WHERE id = p_batch AND status = 'open';
$$;
