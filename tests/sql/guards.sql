-- guards: what refuses a write that would break a money rule
-- (docs/ledger.md#invariants, migrations 001_ledger.sql, 008_guards.sql,
-- 015_refunds.sql, 016_funds.sql). The ledger has no triggers: the guards
-- are ledger_post's and the batch functions' checks, and the tables'
-- constraints. This suite proves, at their boundaries: no kind of
-- transfer can take money from, or pay it into, a system account the
-- wrong way (008: sys:funding has no floor, so that would create money),
-- in ledger_post and in both paths of payment_apply_batch; a
-- payment.completed that does not match the ledger's payment transfer is
-- refused ('unposted') and leaves no trace (008); every constraint that
-- keeps amounts positive, transfers between two accounts, one transfer
-- per (ref, kind), entries tied to their transfer and account, and the
-- outcome/transfer pairing of refunds, deposits and withdrawals refuses a
-- direct write, each with its SQLSTATE and message; and a balance is
-- never taken past the signed 64-bit range: one minor unit past either
-- end is balance_overflow (a function) or 22003 (a direct write), never
-- wrapped.
BEGIN;
SELECT plan(60);

INSERT INTO accounts (id, currency, kind, overdraft_limit) VALUES
    ('alice', 'EUR', 'customer', 0), ('bob', 'EUR', 'merchant', 0), ('short', 'EUR', 'customer', 0),
    ('sys:funding:EUR', 'EUR', 'system', 0), ('sys:withdrawals:EUR', 'EUR', 'system', 0),
    ('sys:fees:EUR', 'EUR', 'system', 0), ('sys:payout:EUR', 'EUR', 'system', 0),
    ('payer', 'SEK', 'customer', 0), ('top', 'SEK', 'merchant', 0), ('sys:funding:SEK', 'SEK', 'system', 0);
INSERT INTO accounts (id, currency, status) VALUES ('frz', 'EUR', 'frozen');

-- ledger_post's status, or the error it raised
CREATE FUNCTION pg_temp.lp(p_ref text, p_kind text, p_debit text, p_credit text, p_amount bigint,
                           p_cur text DEFAULT 'EUR') RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    RETURN (SELECT l.status FROM ledger_post(p_ref, p_kind, p_debit, p_credit, p_amount, p_cur) l);
EXCEPTION WHEN OTHERS THEN
    RETURN 'error ' || SQLSTATE || ': ' || SQLERRM;
END;
$$;
-- a payment.requested / payment.completed element, as stage_batch_json writes it
CREATE FUNCTION pg_temp.p(p_id text, p_payer text, p_payee text, p_amount bigint,
                          p_cur text DEFAULT 'EUR') RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('key', p_id, 'hash', md5(p_id || p_payer || p_payee || p_amount || p_cur),
                              'payload', '{}', 'payment_id', p_id, 'payer', p_payer, 'payee', p_payee,
                              'amount', p_amount, 'currency', p_cur,
                              'posted_ms', floor(extract(epoch FROM now()) * 1000)::bigint)
$$;
-- a batch function's verdict:outcome per element, or the error it raised
CREATE FUNCTION pg_temp.pay(p_batch jsonb) RETURNS text[] LANGUAGE plpgsql AS $$
BEGIN
    RETURN ARRAY(SELECT r.verdict || ':' || r.outcome FROM payment_apply_batch(p_batch) r ORDER BY r.ord);
EXCEPTION WHEN OTHERS THEN
    RETURN ARRAY['error ' || SQLSTATE || ': ' || SQLERRM];
END;
$$;
CREATE TEMP TABLE sr (label text, ord integer, verdict text, batch_id text, late boolean,
                      prior_payload text) ON COMMIT DROP;
CREATE FUNCTION pg_temp.settle(p_label text, p_batch jsonb) RETURNS text[] LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO sr SELECT p_label, x.* FROM settlement_apply_batch(p_batch, 3600) x;
    RETURN ARRAY(SELECT s.verdict FROM sr s WHERE s.label = p_label ORDER BY s.ord);
EXCEPTION WHEN OTHERS THEN
    RETURN ARRAY['error ' || SQLSTATE || ': ' || SQLERRM];
END;
$$;

SELECT is(pg_temp.lp('f-1', 'funding', 'sys:funding:EUR', 'alice', 100), 'posted',
          'ledger_post: funding from sys:funding to a customer is posted (setup)');

-- 008: system accounts, by kind of transfer
SELECT is(pg_temp.lp('g-p1', 'payment', 'alice', 'sys:fees:EUR', 5), 'unknown_account',
          'ledger_post: a payment may not pay into a system account (unknown_account)');
SELECT is(pg_temp.lp('g-p2', 'payment', 'sys:funding:EUR', 'bob', 5), 'unknown_account',
          'ledger_post: a payment may not take from a system account (unknown_account)');
SELECT is(pg_temp.lp('g-d1', 'deposit', 'sys:funding:EUR', 'sys:withdrawals:EUR', 5), 'unknown_account',
          'ledger_post: a deposit may not pay into a system account (unknown_account)');
SELECT is(pg_temp.lp('g-wr1', 'withdrawal_return', 'sys:withdrawals:EUR', 'sys:payout:EUR', 5), 'unknown_account',
          'ledger_post: a withdrawal_return may not pay into a system account (unknown_account)');
SELECT is(pg_temp.lp('g-w1', 'withdrawal', 'sys:payout:EUR', 'sys:withdrawals:EUR', 5), 'unknown_account',
          'ledger_post: a withdrawal may not take from a system account (unknown_account)');
SELECT is(pg_temp.lp('g-r1', 'refund', 'sys:funding:EUR', 'alice', 5), 'unknown_account',
          'ledger_post: a refund may not take from a system account (sys:funding has no floor: it would create money)');
SELECT is(pg_temp.lp('g-r2', 'refund', 'sys:payout:EUR', 'bob', 5), 'unknown_account',
          'ledger_post: a refund may not take from any system account (sys:payout)');
SELECT is(ARRAY[pg_temp.lp('g-fe1', 'fee', 'sys:funding:EUR', 'sys:fees:EUR', 5),
                pg_temp.lp('g-fe2', 'fee', 'bob', 'alice', 5),
                pg_temp.lp('g-po1', 'payout', 'sys:funding:EUR', 'sys:payout:EUR', 5),
                pg_temp.lp('g-po2', 'payout', 'alice', 'bob', 5)],
          ARRAY['unknown_account', 'unknown_account', 'unknown_account', 'unknown_account'],
          'ledger_post: a fee or a payout takes from a customer and pays a system account, never another way');
SELECT is(ARRAY[pg_temp.lp('g-fu1', 'funding', 'sys:funding:EUR', 'sys:fees:EUR', 5),
                pg_temp.lp('g-fu2', 'funding', 'alice', 'bob', 5)],
          ARRAY['unknown_account', 'unknown_account'],
          'ledger_post: a funding takes from a system account and pays a customer, never another way');
SELECT is((SELECT count(*) FROM transfers WHERE ref LIKE 'g-%')
          || ':' || (SELECT string_agg(id || '=' || balance, ',' ORDER BY id) FROM accounts WHERE currency = 'EUR'),
          '0:alice=100,bob=0,frz=0,short=0,sys:fees:EUR=0,sys:funding:EUR=-100,sys:payout:EUR=0,sys:withdrawals:EUR=0',
          'ledger_post: a refused system-account transfer posts nothing and moves no balance');
SELECT is(ARRAY[pg_temp.lp('ok-d', 'deposit', 'sys:funding:EUR', 'alice', 10),
                pg_temp.lp('ok-w', 'withdrawal', 'alice', 'sys:withdrawals:EUR', 10),
                pg_temp.lp('ok-wr', 'withdrawal_return', 'sys:withdrawals:EUR', 'frz', 10),
                pg_temp.lp('ok-d2', 'deposit', 'sys:funding:EUR', 'frz', 10)],
          ARRAY['posted', 'posted', 'posted', 'account_frozen'],
          'ledger_post: deposits in and withdrawals out through the system accounts post; a return credits a frozen account, a deposit does not');
SELECT is(ARRAY[pg_temp.lp('ok-p', 'payment', 'alice', 'bob', 50), pg_temp.lp('ok-r', 'refund', 'bob', 'alice', 51),
                pg_temp.lp('ok-f', 'fee', 'bob', 'sys:fees:EUR', 51)],
          ARRAY['posted', 'insufficient_funds', 'posted'],
          'ledger_post: a refund is funds-checked like any debit; only a settlement fee may take the payee below its floor');
SELECT is(pg_temp.bal('bob'), -1::bigint, 'ledger_post: ... (bob owes the fee: -1)');

-- 008 in the payment stage: both paths of payment_apply_batch
SELECT is(pg_temp.pay(pg_temp.b(pg_temp.p('gp-1', 'sys:funding:EUR', 'bob', 5), pg_temp.p('gp-2', 'alice', 'sys:fees:EUR', 5),
                                pg_temp.p('gp-3', 'alice', 'bob', 5))),
          ARRAY['new:unknown_account', 'new:unknown_account', 'new:completed'],
          'payment_apply_batch: a payment from or to a system account is unknown_account (set-based path)');
SELECT is(pg_temp.pay(pg_temp.b(pg_temp.p('gp-4', 'short', 'bob', 5), pg_temp.p('gp-5', 'sys:funding:EUR', 'bob', 5),
                                pg_temp.p('gp-6', 'alice', 'sys:payout:EUR', 5))),
          ARRAY['new:insufficient_funds', 'new:unknown_account', 'new:unknown_account'],
          'payment_apply_batch: a payment from or to a system account is unknown_account (one-at-a-time path)');
SELECT is((SELECT array_agg(payment_id || ':' || reason ORDER BY payment_id) FROM payment_failures
           WHERE payment_id IN ('gp-1', 'gp-2', 'gp-5', 'gp-6')),
          ARRAY['gp-1:unknown_account', 'gp-2:unknown_account', 'gp-5:unknown_account', 'gp-6:unknown_account'],
          'payment_apply_batch: ... recorded in payment_failures');
SELECT is((SELECT count(*) FROM transfers WHERE ref IN ('gp-1', 'gp-2', 'gp-4', 'gp-5', 'gp-6')) || ':' || pg_temp.bal('sys:funding:EUR'),
          '0:-110', 'payment_apply_batch: ... and never posted: no money leaves sys:funding by a payment');

-- 008: the settlement stage trusts the ledger, not the event (gp-3: alice -> bob, 5 EUR)
SELECT is(ARRAY[pg_temp.settle('s1', pg_temp.b(pg_temp.p('gp-x', 'alice', 'bob', 5))),
                pg_temp.settle('s2', pg_temp.b(pg_temp.p('gp-3', 'alice', 'bob', 6))),
                pg_temp.settle('s3', pg_temp.b(pg_temp.p('gp-3', 'alice', 'alice', 5))),
                pg_temp.settle('s4', pg_temp.b(pg_temp.p('gp-3', 'alice', 'bob', 5, 'USD')))]::text,
          '{{unposted},{unposted},{unposted},{unposted}}',
          'settlement_apply_batch: a payment.completed with no payment transfer, or another amount, payee or currency, is unposted');
SELECT is((SELECT array_agg(prior_payload ORDER BY label) FROM sr WHERE label IN ('s1', 's2')),
          ARRAY['no payment transfer of this payment_id is in the ledger',
                format('the ledger''s payment transfer %s differs: amount 5, payee bob, currency EUR',
                       (SELECT id FROM transfers WHERE ref = 'gp-3' AND kind = 'payment'))],
          'settlement_apply_batch: an unposted event says what the ledger holds');
SELECT is((SELECT count(*) FROM processed WHERE stage = 'settlement')
          + (SELECT count(*) FROM settlement_items) + (SELECT count(*) FROM settlement_batches WHERE gross <> 0),
          0::bigint,
          'settlement_apply_batch: an unposted event leaves no processed row, no item, no gross');
SELECT is(pg_temp.settle('s5', pg_temp.b(pg_temp.p('gp-3', 'alice', 'bob', 5))), ARRAY['new'],
          'settlement_apply_batch: the genuine event after forged ones is new');

-- the tables' constraints refuse a direct write that breaks a money rule
SELECT throws_ok($$INSERT INTO transfers (ref, kind, debit_account, credit_account, amount, currency)
                   VALUES ('c-1', 'funding', 'sys:funding:EUR', 'alice', 0, 'EUR')$$,
                 '23514', 'new row for relation "transfers" violates check constraint "transfers_amount_check"',
                 'transfers: an amount of 0 is refused (transfers_amount_check)');
SELECT throws_ok($$INSERT INTO transfers (ref, kind, debit_account, credit_account, amount, currency)
                   VALUES ('c-2', 'funding', 'sys:funding:EUR', 'alice', -1, 'EUR')$$,
                 '23514', 'new row for relation "transfers" violates check constraint "transfers_amount_check"',
                 'transfers: a negative amount is refused (direction is debit -> credit)');
SELECT throws_ok($$INSERT INTO transfers (ref, kind, debit_account, credit_account, amount, currency)
                   VALUES ('c-3', 'payment', 'alice', 'alice', 1, 'EUR')$$,
                 '23514', 'new row for relation "transfers" violates check constraint "transfers_check"',
                 'transfers: debit and credit accounts must differ (transfers_check)');
SELECT throws_ok($$INSERT INTO transfers (ref, kind, debit_account, credit_account, amount, currency)
                   VALUES ('c-4', 'gift', 'alice', 'bob', 1, 'EUR')$$,
                 '23514', 'new row for relation "transfers" violates check constraint "transfers_kind_check"',
                 'transfers: an unknown kind is refused (transfers_kind_check)');
SELECT throws_ok($$INSERT INTO transfers (ref, kind, debit_account, credit_account, amount, currency)
                   VALUES ('gp-3', 'payment', 'alice', 'bob', 5, 'EUR')$$,
                 '23505', 'duplicate key value violates unique constraint "transfers_ref_kind_key"',
                 'transfers: a second transfer of one (ref, kind) is refused: a payment is posted once');
SELECT throws_ok($$INSERT INTO transfers (ref, kind, debit_account, credit_account, amount, currency)
                   VALUES ('c-5', 'payment', 'alice', 'nobody', 1, 'EUR')$$,
                 '23503', 'insert or update on table "transfers" violates foreign key constraint "transfers_credit_account_fkey"',
                 'transfers: both accounts must exist');
SELECT throws_ok($$UPDATE transfers SET amount = 0 WHERE ref = 'gp-3' AND kind = 'payment'$$,
                 '23514', 'new row for relation "transfers" violates check constraint "transfers_amount_check"',
                 'transfers: an UPDATE to amount 0 is refused too');
SELECT throws_ok($$UPDATE transfers SET credit_account = debit_account WHERE ref = 'gp-3' AND kind = 'payment'$$,
                 '23514', 'new row for relation "transfers" violates check constraint "transfers_check"',
                 'transfers: an UPDATE making debit = credit is refused');
SELECT throws_ok($$DELETE FROM transfers WHERE ref = 'gp-3' AND kind = 'payment'$$,
                 '23503', 'update or delete on table "transfers" violates foreign key constraint "entries_transfer_id_fkey" on table "entries"',
                 'transfers: a transfer with entries cannot be deleted (entries_transfer_id_fkey)');
SELECT throws_ok($$INSERT INTO entries (transfer_id, account_id, amount, balance_after)
                   SELECT id, 'alice', 0, 0 FROM transfers WHERE ref = 'gp-3' AND kind = 'payment'$$,
                 '23514', 'new row for relation "entries" violates check constraint "entries_amount_check"',
                 'entries: an entry of 0 is refused (entries_amount_check)');
SELECT throws_ok($$INSERT INTO entries (transfer_id, account_id, amount, balance_after) VALUES (-1, 'alice', 1, 1)$$,
                 '23503', 'insert or update on table "entries" violates foreign key constraint "entries_transfer_id_fkey"',
                 'entries: an entry belongs to a transfer');
SELECT throws_ok($$DELETE FROM accounts WHERE id = 'alice'$$, '23503', NULL,
                 'accounts: an account with transfers and entries cannot be deleted');
SELECT throws_ok($$UPDATE accounts SET overdraft_limit = -1 WHERE id = 'alice'$$,
                 '23514', 'new row for relation "accounts" violates check constraint "accounts_overdraft_limit_check"',
                 'accounts: overdraft_limit >= 0 (a negative one would be a floor above zero)');
SELECT throws_ok($$UPDATE accounts SET kind = 'bank' WHERE id = 'alice'$$,
                 '23514', 'new row for relation "accounts" violates check constraint "accounts_kind_check"',
                 'accounts: kind is customer, merchant or system');
SELECT throws_ok($$UPDATE accounts SET status = 'closed' WHERE id = 'alice'$$,
                 '23514', 'new row for relation "accounts" violates check constraint "accounts_status_check"',
                 'accounts: status is active or frozen');
SELECT throws_ok($$INSERT INTO accounts (id, currency) VALUES ('a b', 'EUR')$$,
                 '23514', 'new row for relation "accounts" violates check constraint "accounts_id_check"',
                 'accounts: an id outside ^[A-Za-z0-9_.:-]{1,64}$ is refused');
SELECT throws_ok(format($$INSERT INTO accounts (id, currency) VALUES (%L, 'EUR')$$, repeat('x', 65)),
                 '23514', 'new row for relation "accounts" violates check constraint "accounts_id_check"',
                 'accounts: an id of 65 characters is refused (64 is the most)');
SELECT throws_ok($$INSERT INTO accounts (id, currency) VALUES ('lower', 'eur')$$,
                 '23514', 'new row for relation "accounts" violates check constraint "accounts_currency_check"',
                 'accounts: a currency is three upper-case letters');
SELECT throws_ok($$UPDATE accounts SET fee_bps = 10001 WHERE id = 'bob'$$,
                 '23514', 'new row for relation "accounts" violates check constraint "accounts_fee_bps_check"',
                 'accounts: fee_bps is 0 to 10000 (never more than the amount)');
SELECT throws_ok($$UPDATE accounts SET fee_fixed = 100000000000001 WHERE id = 'bob'$$,
                 '23514', 'new row for relation "accounts" violates check constraint "accounts_fee_fixed_bound"',
                 'accounts: fee_fixed above 10^14 is refused (accounts_fee_fixed_bound)');
SELECT lives_ok($$UPDATE accounts SET fee_fixed = 100000000000000 WHERE id = 'bob'$$,
                'accounts: fee_fixed of exactly 10^14 is allowed');
SELECT throws_ok($$INSERT INTO refunds (refund_id, payment_id, amount, outcome) VALUES ('c-r1', 'gp-3', 1, 'completed')$$,
                 '23514', 'new row for relation "refunds" violates check constraint "refunds_check"',
                 'refunds: a completed refund has its transfer (refunds_check)');
SELECT throws_ok($$INSERT INTO refunds (refund_id, payment_id, amount, outcome, transfer_id)
                   SELECT 'c-r2', 'gp-3', 1, 'completed', id FROM transfers WHERE ref = 'gp-3'$$,
                 '23514', 'new row for relation "refunds" violates check constraint "refunds_check1"',
                 'refunds: a completed refund has the batch that nets it (refunds_check1)');
SELECT throws_ok($$INSERT INTO refunds (refund_id, payment_id, amount, outcome) VALUES ('c-r3', 'gp-3', 0, 'insufficient_funds')$$,
                 '23514', 'new row for relation "refunds" violates check constraint "refunds_amount_check"',
                 'refunds: an amount of 0 is refused');
SELECT throws_ok($$INSERT INTO deposits (deposit_id, account, amount, currency, rail, rail_reference, outcome, transfer_id)
                   SELECT 'c-d1', 'alice', 10, 'EUR', 'sepa', 'x', 'account_frozen', id FROM transfers WHERE ref = 'ok-d'$$,
                 '23514', 'new row for relation "deposits" violates check constraint "deposits_check"',
                 'deposits: a failed deposit has no transfer (deposits_check)');
SELECT throws_ok($$INSERT INTO withdrawals (withdrawal_id, account, amount, currency, rail, outcome, return_transfer_id)
                   SELECT 'c-w1', 'alice', 10, 'EUR', 'sepa', 'insufficient_funds', id FROM transfers WHERE ref = 'ok-wr'$$,
                 '23514', 'new row for relation "withdrawals" violates check constraint "withdrawals_check1"',
                 'withdrawals: only a completed withdrawal is returned (withdrawals_check1)');
SELECT throws_ok($$INSERT INTO settlement_carry (payee, currency, amount) VALUES ('bob', 'EUR', 0)$$,
                 '23514', 'new row for relation "settlement_carry" violates check constraint "settlement_carry_amount_check"',
                 'settlement_carry: a carried shortfall is positive');
SELECT throws_ok($$INSERT INTO payment_failures (payment_id, reason) VALUES ('gp-1', 'insufficient_funds')$$,
                 '23505', 'duplicate key value violates unique constraint "payment_failures_pkey"',
                 'payment_failures: a payment is refused once (one row per payment_id)');

-- int64 edges: SEK, top at max - 10, sys:funding:SEK at -max
SELECT is(pg_temp.lp('f-s1', 'funding', 'sys:funding:SEK', 'payer', 10, 'SEK'), 'posted',
          'ledger_post: funding (setup of the SEK edges)');
UPDATE accounts SET balance = balance + (9223372036854775807 - 10) WHERE id = 'top';
UPDATE accounts SET balance = balance - (9223372036854775807 - 10) WHERE id = 'sys:funding:SEK';
SELECT is(ARRAY[pg_temp.lp('f-s2', 'funding', 'sys:funding:SEK', 'payer', 1, 'SEK'),
                pg_temp.lp('f-s3', 'funding', 'sys:funding:SEK', 'payer', 1, 'SEK')],
          ARRAY['posted', 'balance_overflow'],
          'ledger_post: a system account (no floor) is debited down to exactly the bigint minimum, one past is balance_overflow');
SELECT is(pg_temp.bal('sys:funding:SEK'), '-9223372036854775808'::bigint,
          'ledger_post: ... and stands at the minimum, never wrapped');
SELECT is(pg_temp.pay(pg_temp.b(pg_temp.p('ps-1', 'payer', 'top', 11, 'SEK'))), ARRAY['new:balance_overflow'],
          'payment_apply_batch: a payment taking the payee one minor unit past the bigint maximum is balance_overflow');
SELECT is(pg_temp.pay(pg_temp.b(pg_temp.p('ps-2', 'payer', 'top', 10, 'SEK'))), ARRAY['new:completed'],
          'payment_apply_batch: a payment taking the payee to exactly the bigint maximum completes (set-based path)');
SELECT is((pg_temp.bal('top'), pg_temp.bal('payer'))::text, '(9223372036854775807,1)',
          'payment_apply_batch: ... the payee stands at the maximum, never wrapped');
SELECT throws_ok($$UPDATE accounts SET balance = balance + 1 WHERE id = 'top'$$, '22003', 'bigint out of range',
                 'accounts: a direct write one past the bigint maximum is an error (22003), never wrapped');
SELECT throws_ok($$UPDATE accounts SET balance = balance - 1 WHERE id = 'sys:funding:SEK'$$, '22003', 'bigint out of range',
                 'accounts: a direct write one past the bigint minimum is an error (22003), never wrapped');

-- the books after all of it
SELECT is((SELECT array_agg(currency || ':' || s ORDER BY currency)
           FROM (SELECT currency, sum(balance) AS s FROM accounts GROUP BY currency) x),
          ARRAY['EUR:0', 'SEK:0'], 'guards: per currency the balances sum to zero');
SELECT is((SELECT count(*) FROM (SELECT t.id FROM transfers t JOIN entries e ON e.transfer_id = t.id
                                 GROUP BY t.id HAVING count(*) <> 2 OR sum(e.amount) <> 0) x), 0::bigint,
          'guards: every transfer has two entries summing to zero');

SELECT * FROM finish();
ROLLBACK;
