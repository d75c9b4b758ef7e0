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

-- Functions written here then, kept since in schemas/sql/functions/:
-- settlement_hold.
-- supersedes: 33161512adcae48c16d9f0caf73ae070ca5e1838e74e284b83ce92043abf7d5b (its text before the functions moved out)
