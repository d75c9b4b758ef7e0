-- 016_funds.sql: deposits and withdrawals (docs/ledger.md#deposits-and-withdrawals).
--
-- Money that enters or leaves through an external rail. A deposit
-- (deposit.received) is a transfer of kind 'deposit' (ref = deposit_id)
-- from the system account sys:funding:<CUR> to a customer, once per
-- deposit_id; `ledgerctl account fund` stays for operators, as kind
-- 'funding'. A withdrawal (withdrawal.requested), once screened by the
-- risk rules, is a transfer of kind 'withdrawal' (ref = withdrawal_id)
-- from the customer to sys:withdrawals:<CUR>, the money on its way out;
-- when the rail later reports it failed (withdrawal.returned), a transfer
-- of kind 'withdrawal_return' with the same ref puts it back, at most once.
-- Both tables record every decision, completed or failed.

ALTER TABLE transfers DROP CONSTRAINT transfers_kind_check,
    ADD CONSTRAINT transfers_kind_check
        CHECK (kind IN ('payment', 'funding', 'fee', 'payout', 'refund', 'deposit', 'withdrawal',
                        'withdrawal_return'));

CREATE TABLE deposits (
    deposit_id     text PRIMARY KEY,
    account        text NOT NULL,
    amount         bigint NOT NULL CHECK (amount > 0),
    currency       char(3) NOT NULL,
    rail           text NOT NULL,
    rail_reference text NOT NULL,
    outcome        text NOT NULL,                 -- 'completed' or deposit.failed's reason
    transfer_id    bigint REFERENCES transfers (id),
    created_at     timestamptz NOT NULL DEFAULT now(),
    CHECK ((outcome = 'completed') = (transfer_id IS NOT NULL))
);
CREATE INDEX deposits_account_idx ON deposits (account);

CREATE TABLE withdrawals (
    withdrawal_id      text PRIMARY KEY,
    account            text NOT NULL,
    amount             bigint NOT NULL CHECK (amount > 0),
    currency           char(3) NOT NULL,
    rail               text NOT NULL,
    destination        text,
    outcome            text NOT NULL,             -- 'completed' or withdrawal.failed's reason
    rules              text[] NOT NULL DEFAULT '{}', -- the risk rule that declined it
    transfer_id        bigint REFERENCES transfers (id),
    return_transfer_id bigint REFERENCES transfers (id), -- set once, by withdrawal.returned
    return_reference   text,
    return_reason      text,
    returned_at        timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    CHECK ((outcome = 'completed') = (transfer_id IS NOT NULL)),
    CHECK (return_transfer_id IS NULL OR outcome = 'completed')
);
-- velocity: an account's completed withdrawals in a window
CREATE INDEX withdrawals_velocity_idx ON withdrawals (account, created_at)
    WHERE outcome = 'completed';
