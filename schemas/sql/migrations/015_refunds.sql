-- 015_refunds.sql: refunds, and refunds netted by settlement
-- (docs/ledger.md#refunds).
--
-- A refund is a transfer of kind 'refund' (ref = refund_id) from the
-- payment's payee back to its payer. `refunds` records every decided
-- refund.requested, completed or failed, once per refund_id; the sum of a
-- payment's completed refunds never exceeds its amount (the refund stage
-- checks it under a per-payment advisory lock; ledgerctl verify checks it
-- after the fact).
--
-- Settlement nets refunds: a completed refund joins one settlement batch
-- of the payee (`batch_id`), the payment's own batch while it is open,
-- else the payee's next batch to close; the batch's `refunds` is their
-- sum. A batch pays out net = gross - fees - refunds - carried_in when
-- that is positive; a shortfall is never paid out negative: it is carried
-- (`carried_out`) into `settlement_carry`, which the payee's next batch to
-- close takes whole (its `carried_in`). No batch is made for a carry
-- alone, so a payee in debt does not leave a trail of empty batches.

ALTER TABLE transfers DROP CONSTRAINT transfers_kind_check,
    ADD CONSTRAINT transfers_kind_check
        CHECK (kind IN ('payment', 'funding', 'fee', 'payout', 'refund'));

ALTER TABLE settlement_batches
    ADD COLUMN refunds      bigint NOT NULL DEFAULT 0 CHECK (refunds >= 0),
    ADD COLUMN refund_count integer NOT NULL DEFAULT 0,
    ADD COLUMN carried_in   bigint NOT NULL DEFAULT 0 CHECK (carried_in >= 0), -- set at close
    ADD COLUMN carried_out  bigint CHECK (carried_out >= 0);                   -- set at close

-- a batch closed before refunds existed carried nothing
UPDATE settlement_batches SET carried_out = 0 WHERE status = 'closed' AND carried_out IS NULL;

-- what a payee owes its next payout: the shortfalls of its closed batches
-- not yet taken by a later close (at most one row per payee and currency)
CREATE TABLE settlement_carry (
    payee    text NOT NULL REFERENCES accounts (id),
    currency char(3) NOT NULL,
    amount   bigint NOT NULL CHECK (amount > 0),
    PRIMARY KEY (payee, currency)
);

CREATE TABLE refunds (
    refund_id   text PRIMARY KEY,
    payment_id  text NOT NULL,
    amount      bigint NOT NULL CHECK (amount > 0),
    reason      text,                                  -- the producer's, if any
    outcome     text NOT NULL,                         -- 'completed' or refund.failed's reason
    transfer_id bigint REFERENCES transfers (id),
    batch_id    text REFERENCES settlement_batches (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK ((outcome = 'completed') = (transfer_id IS NOT NULL)),
    CHECK ((outcome = 'completed') = (batch_id IS NOT NULL))
);
CREATE INDEX refunds_payment_idx ON refunds (payment_id);
CREATE INDEX refunds_batch_idx ON refunds (batch_id) WHERE batch_id IS NOT NULL;
