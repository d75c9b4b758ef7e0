-- 006_settlement.sql: settlement batches, fees, payouts, fenced closing
-- (docs/ledger.md#settlement-tables).
--
-- Each completed payment joins exactly one batch keyed by (payee, currency,
-- window); the window is the payment's posted_at floored to the window
-- length (aligned to the Unix epoch, so one day = UTC midnight). A payment
-- whose window is already closed joins the next open window of that payee
-- and currency, marked late: never a closed batch, never lost.
-- Per payment fee = round_half_up(amount * fee_bps / 10000) + fee_fixed of
-- the payee at the time it joins; a batch's fees are capped at its gross.
--
-- Closing takes a Redis lock and a fencing token (a Redis counter); the
-- closing transaction first calls fence_advance(), which only lets a token
-- through that is higher than every token seen for that lock: a closer
-- that was paused past its lease and wakes up holds an older token and
-- its writes are refused.

CREATE TABLE settlement_batches (
    id              text PRIMARY KEY,
    payee           text NOT NULL REFERENCES accounts (id),
    currency        char(3) NOT NULL,
    window_start    timestamptz NOT NULL,
    window_end      timestamptz NOT NULL,
    status          text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    count           integer NOT NULL DEFAULT 0,
    gross           bigint NOT NULL DEFAULT 0,
    fees_raw        bigint NOT NULL DEFAULT 0,  -- sum of the items' fees, before the cap
    fees            bigint,                     -- set at close: least(fees_raw, gross)
    net             bigint,                     -- set at close: gross - fees
    late_count      integer NOT NULL DEFAULT 0,
    fee_transfer    bigint REFERENCES transfers (id),
    payout_transfer bigint REFERENCES transfers (id),
    closed_at       timestamptz,
    closed_by       text,
    fence           bigint,
    UNIQUE (payee, currency, window_start)
);
CREATE INDEX settlement_batches_open_idx ON settlement_batches (window_end) WHERE status = 'open';

CREATE TABLE settlement_items (
    payment_id text PRIMARY KEY,                -- in exactly one batch
    batch_id   text NOT NULL REFERENCES settlement_batches (id),
    amount     bigint NOT NULL CHECK (amount > 0),
    fee        bigint NOT NULL CHECK (fee >= 0),
    late       boolean NOT NULL,
    added_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX settlement_items_batch_idx ON settlement_items (batch_id);

CREATE TABLE lock_fences (
    name  text PRIMARY KEY,
    token bigint NOT NULL
);

-- Functions written here then, kept since in schemas/sql/functions/:
-- fence_advance, settlement_fee, settlement_batch_id, settlement_apply_batch,
-- settlement_close.
-- supersedes: 2e7c77d328c3cd2d00ee9b95afee503cd37a36f08a28b3c1a360f40a207834ac (its text before the functions moved out)
