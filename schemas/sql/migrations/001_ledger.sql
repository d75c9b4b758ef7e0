-- 001_ledger.sql: the double-entry ledger (docs/ledger.md).
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

-- Functions written here then, kept since in schemas/sql/functions/:
-- ledger_post.
-- supersedes: 12fb7c66c2477f2fdc04ac7ee1cdc4ecac67c58974f636fb07d1da33faa13be2 (its text before the functions moved out)
