-- funds_apply_batch(batch, cfg): every verdict and outcome of the funds
-- stage, at its boundaries (docs/ledger.md#deposits-and-withdrawals,
-- docs/contract.md#deposits-and-withdrawals): a key ("deposit:<id>",
-- "withdrawal:<id>", "return:<withdrawal_id>") is new once, then a
-- duplicate or a conflict; a deposit credits its account from
-- sys:funding:<CUR>, a withdrawal moves an account's money to
-- sys:withdrawals:<CUR> (down to exactly -overdraft_limit), a return puts
-- a completed withdrawal back at most once, even to a frozen account;
-- a system account is never a deposit's or a withdrawal's account
-- (unknown_account, before any risk rule: sys:funding has no floor, so
-- withdrawing from it would create money); the hard risk rules decline a
-- withdrawal in their order and at their exact limits; a return of a
-- withdrawal that is unknown or did not complete is unusable and leaves
-- nothing; a balance is never taken past the bigint range (either end);
-- each element sees what the ones before it left; every transfer's two
-- entries sum to zero. Batches are built as common/stage.c and
-- workers/funds/funds.c build them.
BEGIN;
SELECT plan(65);

INSERT INTO accounts (id, currency, kind, overdraft_limit) VALUES
    ('alice', 'EUR', 'customer', 0), ('bob', 'EUR', 'customer', 50), ('carl', 'EUR', 'customer', 0),
    ('risky', 'EUR', 'customer', 0), ('blk', 'EUR', 'customer', 0), ('vel', 'EUR', 'customer', 0),
    ('vs', 'EUR', 'customer', 0), ('usd', 'USD', 'customer', 0),
    ('whale', 'GBP', 'customer', 0), ('g2', 'GBP', 'customer', 0), ('wc', 'CHF', 'customer', 0),
    ('wj', 'JPY', 'customer', 0);
INSERT INTO accounts (id, currency, status) VALUES ('frz', 'EUR', 'frozen');

-- the elements of a batch, as stage_batch_json and funds_element write
-- them (the hash stands for the SHA-256 of the canonical payload)
CREATE FUNCTION pg_temp.el(p_key text, p_type text, pl jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('key', p_key, 'hash', md5(pl::text), 'payload', pl::text, 'type', p_type) || pl
$$;
CREATE FUNCTION pg_temp.dep(p_id text, p_acct text, p_amount numeric, p_cur text DEFAULT 'EUR')
RETURNS jsonb LANGUAGE sql AS $$
    SELECT pg_temp.el('deposit:' || p_id, 'deposit.received',
                      jsonb_build_object('deposit_id', p_id, 'account', p_acct, 'amount', p_amount,
                                         'currency', p_cur, 'rail', 'sepa', 'rail_reference', 'in-' || p_id))
$$;
CREATE FUNCTION pg_temp.wd(p_id text, p_acct text, p_amount numeric, p_cur text DEFAULT 'EUR')
RETURNS jsonb LANGUAGE sql AS $$
    SELECT pg_temp.el('withdrawal:' || p_id, 'withdrawal.requested',
                      jsonb_build_object('withdrawal_id', p_id, 'account', p_acct, 'amount', p_amount,
                                         'currency', p_cur, 'rail', 'sepa', 'destination', 'DE00'))
$$;
CREATE FUNCTION pg_temp.ret(p_id text, p_ref text DEFAULT 'back', p_reason text DEFAULT 'account_closed')
RETURNS jsonb LANGUAGE sql AS $$
    SELECT pg_temp.el('return:' || p_id, 'withdrawal.returned',
                      jsonb_build_object('withdrawal_id', p_id, 'rail_reference', p_ref, 'reason', p_reason))
$$;
-- the risk configuration (risk_config_json): EUR limit 1000, blk
-- blocklisted, velocity off unless a test sets it
CREATE FUNCTION pg_temp.cfg(p_more jsonb DEFAULT '{}') RETURNS jsonb LANGUAGE sql AS $$
    SELECT '{"version": "t", "max_amount": {"EUR": 1000}, "blocklist": ["blk"],
             "velocity_count": 0, "velocity_sum": 0, "velocity_window_s": 3600,
             "score_threshold": 0, "weight_new_payee": 0, "weight_above_median": 0,
             "median_factor": 10}'::jsonb || p_more
$$;
-- every decision of a batch, kept for the tests; an error is a result too
-- (the suite goes on, and the failing test shows the SQLSTATE and message)
CREATE TEMP TABLE fr (label text, ord integer, verdict text, outcome text, transfer_id bigint,
                      rules text[], account text, amount bigint, currency text,
                      prior_payload text) ON COMMIT DROP;
CREATE FUNCTION pg_temp.funds(p_label text, p_batch jsonb, p_cfg jsonb DEFAULT pg_temp.cfg())
RETURNS text[] LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO fr SELECT p_label, x.* FROM funds_apply_batch(p_batch, p_cfg) x;
    RETURN ARRAY(SELECT f.verdict || coalesce(':' || f.outcome, '') FROM fr f
                 WHERE f.label = p_label ORDER BY f.ord);
EXCEPTION WHEN OTHERS THEN
    RETURN ARRAY['error ' || SQLSTATE || ': ' || SQLERRM];
END;
$$;
CREATE FUNCTION pg_temp.tr(p_ref text, p_kind text) RETURNS text LANGUAGE sql AS $$
    SELECT (t.debit_account, t.credit_account, t.amount, t.currency)::text FROM transfers t
    WHERE t.ref = p_ref AND t.kind = p_kind
$$;

-- deposits
SELECT is(pg_temp.funds('d1', pg_temp.b(pg_temp.dep('d1', 'alice', 500))), ARRAY['new:completed'],
          'funds_apply_batch: a deposit to a customer is new and completed');
SELECT is((SELECT (kind, currency, balance)::text FROM accounts WHERE id = 'sys:funding:EUR'), '(system,EUR,-500)',
          'funds_apply_batch: sys:funding:<CUR> is created on first use, kind system, and goes negative by what came in');
SELECT is(pg_temp.tr('d1', 'deposit'), '(sys:funding:EUR,alice,500,EUR)',
          'funds_apply_batch: a deposit is one transfer of kind deposit, ref = deposit_id, from sys:funding:<CUR> to the account');
SELECT is((SELECT (f.transfer_id = d.transfer_id, f.account, f.amount, f.currency, d.outcome, d.rail_reference)::text
           FROM fr f, deposits d WHERE f.label = 'd1' AND d.deposit_id = 'd1'),
          '(t,alice,500,EUR,completed,in-d1)',
          'funds_apply_batch: a completed deposit returns its transfer and is recorded in deposits');
SELECT is((SELECT array_agg(e.account_id || ':' || e.amount || ':' || e.balance_after ORDER BY e.id)
           FROM entries e JOIN transfers t ON t.id = e.transfer_id WHERE t.ref = 'd1' AND t.kind = 'deposit'),
          ARRAY['sys:funding:EUR:-500:-500', 'alice:500:500'],
          'funds_apply_batch: a deposit has two entries summing to zero, with the balances after');
SELECT is(pg_temp.funds('d2', pg_temp.b(pg_temp.dep('d1', 'alice', 500), pg_temp.dep('d1', 'alice', 499))),
          ARRAY['duplicate:completed', 'conflict:completed'],
          'funds_apply_batch: a deposit_id decided before is a duplicate (same payload) or a conflict (another)');
SELECT is((SELECT prior_payload FROM fr WHERE label = 'd2' AND ord = 2), pg_temp.dep('d1', 'alice', 500) ->> 'payload',
          'funds_apply_batch: a conflict returns the first payload');
SELECT is((SELECT count(*) FROM transfers WHERE ref = 'd1') || ':' || pg_temp.bal('alice'), '1:500',
          'funds_apply_batch: a deposit is credited once');
SELECT is(pg_temp.funds('d3', pg_temp.b(pg_temp.dep('d2', 'nobody', 5), pg_temp.dep('d3', 'sys:funding:EUR', 5),
                                        pg_temp.dep('d5', 'frz', 5), pg_temp.dep('d6', 'alice', 5, 'USD'))),
          ARRAY['new:unknown_account', 'new:unknown_account', 'new:account_frozen', 'new:currency_mismatch'],
          'funds_apply_batch: a deposit to an unknown or system account, a frozen one, one of another currency is refused');
SELECT is((SELECT array_agg(d.deposit_id || ':' || d.outcome || ':' || (d.transfer_id IS NULL) ORDER BY d.deposit_id)
           FROM deposits d WHERE d.deposit_id IN ('d2', 'd3', 'd5', 'd6')),
          ARRAY['d2:unknown_account:true', 'd3:unknown_account:true', 'd5:account_frozen:true', 'd6:currency_mismatch:true'],
          'funds_apply_batch: a refused deposit is recorded in deposits, with no transfer');
SELECT is((SELECT count(*) FROM transfers WHERE ref IN ('d2', 'd3', 'd5', 'd6'))
          || ':' || pg_temp.bal('sys:funding:EUR') || ':' || pg_temp.bal('frz'), '0:-500:0',
          'funds_apply_batch: a refused deposit moves nothing');

-- withdrawals: the floor is -overdraft_limit, exactly (alice 500, overdraft 0; bob 0, overdraft 50)
SELECT is(pg_temp.funds('w1', pg_temp.b(pg_temp.wd('w1', 'alice', 501), pg_temp.wd('w2', 'alice', 500),
                                        pg_temp.wd('w3', 'alice', 1), pg_temp.wd('w4', 'bob', 50),
                                        pg_temp.wd('w5', 'bob', 1))),
          ARRAY['new:insufficient_funds', 'new:completed', 'new:insufficient_funds', 'new:completed',
                'new:insufficient_funds'],
          'funds_apply_batch: a withdrawal takes an account down to exactly -overdraft_limit, one minor unit more is insufficient_funds');
SELECT is((pg_temp.bal('alice'), pg_temp.bal('bob'))::text, '(0,-50)',
          'funds_apply_batch: the accounts stand at exactly their floors');
SELECT is((SELECT (kind, balance)::text FROM accounts WHERE id = 'sys:withdrawals:EUR'), '(system,550)',
          'funds_apply_batch: sys:withdrawals:<CUR> is created on first use, kind system, and holds what was withdrawn');
SELECT is(pg_temp.tr('w2', 'withdrawal'), '(alice,sys:withdrawals:EUR,500,EUR)',
          'funds_apply_batch: a withdrawal is one transfer of kind withdrawal, ref = withdrawal_id, to sys:withdrawals:<CUR>');
SELECT is((SELECT array_agg(w.withdrawal_id || ':' || w.outcome || ':' || w.rules::text || ':' || (w.transfer_id IS NOT NULL)
                            ORDER BY w.withdrawal_id)
           FROM withdrawals w WHERE w.withdrawal_id IN ('w1', 'w2', 'w3')),
          ARRAY['w1:insufficient_funds:{}:false', 'w2:completed:{}:true', 'w3:insufficient_funds:{}:false'],
          'funds_apply_batch: every withdrawal is recorded in withdrawals, completed with its transfer, refused without');
SELECT is(pg_temp.funds('w2', pg_temp.b(pg_temp.wd('w6', 'nobody', 5), pg_temp.wd('w7', 'sys:funding:EUR', 5000),
                                        pg_temp.wd('w8', 'sys:withdrawals:EUR', 5), pg_temp.wd('w9', 'frz', 5),
                                        pg_temp.wd('w10', 'alice', 5, 'USD'))),
          ARRAY['new:unknown_account', 'new:unknown_account', 'new:unknown_account', 'new:account_frozen',
                'new:currency_mismatch'],
          'funds_apply_batch: a withdrawal from an unknown or system account is unknown_account; frozen, other currency refused');
SELECT is((SELECT array_agg(rules::text ORDER BY ord) FROM fr WHERE label = 'w2'), ARRAY['{}', '{}', '{}', '{}', '{}'],
          'funds_apply_batch: a withdrawal from a system account is unknown_account before any risk rule (rules empty, even above max_amount)');
SELECT is((pg_temp.bal('sys:funding:EUR'), pg_temp.bal('sys:withdrawals:EUR'),
           (SELECT count(*) FROM transfers WHERE ref IN ('w6', 'w7', 'w8', 'w9', 'w10')))::text, '(-500,550,0)',
          'funds_apply_batch: no money is taken from a system account (a withdrawal from sys:funding would create it)');
SELECT is(pg_temp.funds('d4', pg_temp.b(pg_temp.dep('d4', 'sys:withdrawals:EUR', 5))), ARRAY['new:unknown_account'],
          'funds_apply_batch: a deposit to sys:withdrawals is unknown_account');

-- the hard risk rules, in their order, at their limits
SELECT is(pg_temp.funds('r0', pg_temp.b(pg_temp.dep('d-r', 'risky', 5000), pg_temp.dep('d-u', 'usd', 5000, 'USD'))),
          ARRAY['new:completed', 'new:completed'], 'funds_apply_batch: deposits (setup of the risk rules)');
SELECT is(pg_temp.funds('r1', pg_temp.b(pg_temp.wd('w-r1', 'risky', 1000), pg_temp.wd('w-r2', 'risky', 1001),
                                        pg_temp.wd('w-r3', 'blk', 1001), pg_temp.wd('w-r4', 'blk', 5),
                                        pg_temp.wd('w-r5', 'usd', 2000, 'USD'))),
          ARRAY['new:completed', 'new:risk_declined', 'new:risk_declined', 'new:risk_declined', 'new:completed'],
          'funds_apply_batch: max_amount declines above the currency''s limit, not at it; blocklisted; a currency without a limit has none');
SELECT is((SELECT array_agg(rules::text ORDER BY ord) FROM fr WHERE label = 'r1'),
          ARRAY['{}', '{max_amount}', '{max_amount}', '{blocklisted}', '{}'],
          'funds_apply_batch: rules names the first rule that fired, in the risk order (max_amount before blocklisted)');
SELECT is((SELECT array_agg(w.rules::text || ':' || (w.transfer_id IS NULL) ORDER BY w.withdrawal_id)
           FROM withdrawals w WHERE w.withdrawal_id IN ('w-r2', 'w-r3', 'w-r4')),
          ARRAY['{max_amount}:true', '{max_amount}:true', '{blocklisted}:true'],
          'funds_apply_batch: a risk_declined withdrawal is recorded with its rule and posts nothing');
SELECT is(pg_temp.funds('r2', pg_temp.b(pg_temp.wd('w-r6', 'frz', 1001), pg_temp.wd('w-r7', 'carl', 1001),
                                        pg_temp.wd('w-r8', 'blk', 5, 'USD'))),
          ARRAY['new:risk_declined', 'new:risk_declined', 'new:risk_declined'],
          'funds_apply_batch: the risk rules run before the ledger''s checks (frozen, no funds, other currency: still risk_declined)');
SELECT is(pg_temp.funds('v0', pg_temp.b(pg_temp.dep('d-v', 'vel', 100), pg_temp.dep('d-s', 'vs', 500))),
          ARRAY['new:completed', 'new:completed'], 'funds_apply_batch: deposits (setup of the velocity rules)');
SELECT is(pg_temp.funds('v1', pg_temp.b(pg_temp.wd('w-v0', 'vel', 5000), pg_temp.wd('w-vi', 'vel', 101),
                                        pg_temp.wd('w-v1', 'vel', 10), pg_temp.wd('w-v2', 'vel', 10),
                                        pg_temp.wd('w-v3', 'vel', 10)),
                        pg_temp.cfg('{"velocity_count": 2}')),
          ARRAY['new:risk_declined', 'new:insufficient_funds', 'new:completed', 'new:completed', 'new:risk_declined'],
          'funds_apply_batch: velocity_count N lets N completed withdrawals through; declined and refused ones do not count');
SELECT is((SELECT rules::text FROM fr WHERE label = 'v1' AND ord = 5), '{velocity_count}',
          'funds_apply_batch: the N+1th names velocity_count');
SELECT is(pg_temp.funds('v2', pg_temp.b(pg_temp.wd('w-v4', 'vel', 10), pg_temp.wd('w-v5', 'risky', 10)),
                        pg_temp.cfg('{"velocity_count": 2}')),
          ARRAY['new:risk_declined', 'new:completed'],
          'funds_apply_batch: velocity counts the account''s withdrawals of earlier batches, and that account''s only');
UPDATE withdrawals SET created_at = now() - interval '3600 s' WHERE withdrawal_id = 'w-v1';
UPDATE withdrawals SET created_at = now() - interval '3599 s' WHERE withdrawal_id = 'w-v2';
SELECT is(pg_temp.funds('v3', pg_temp.b(pg_temp.wd('w-v6', 'vel', 10), pg_temp.wd('w-v7', 'vel', 10)),
                        pg_temp.cfg('{"velocity_count": 2}')),
          ARRAY['new:completed', 'new:risk_declined'],
          'funds_apply_batch: velocity counts withdrawals created less than velocity_window_s ago, not one exactly that old');
SELECT is(pg_temp.funds('v4', pg_temp.b(pg_temp.wd('w-s1', 'vs', 60), pg_temp.wd('w-s2', 'vs', 40),
                                        pg_temp.wd('w-s3', 'vs', 1)),
                        pg_temp.cfg('{"velocity_sum": 100}')),
          ARRAY['new:completed', 'new:completed', 'new:risk_declined'],
          'funds_apply_batch: velocity_sum lets withdrawals through up to exactly the sum, one minor unit more is declined');
SELECT is((SELECT rules::text FROM fr WHERE label = 'v4' AND ord = 3), '{velocity_sum}',
          'funds_apply_batch: ... naming velocity_sum');

-- returns (w2: alice's 500; w4: bob's 50)
SELECT is(pg_temp.funds('t1', pg_temp.b(pg_temp.ret('w2', 'back-1', 'account_closed'))), ARRAY['new:reversed'],
          'funds_apply_batch: a return of a completed withdrawal is new and reversed');
SELECT is((SELECT (account, amount, currency, transfer_id = (SELECT id FROM transfers WHERE ref = 'w2' AND kind = 'withdrawal_return'))::text
           FROM fr WHERE label = 't1'), '(alice,500,EUR,t)',
          'funds_apply_batch: a return names the withdrawal''s account, amount and currency, and its transfer');
SELECT is(pg_temp.tr('w2', 'withdrawal_return'), '(sys:withdrawals:EUR,alice,500,EUR)',
          'funds_apply_batch: a return is one transfer of kind withdrawal_return, ref = withdrawal_id, back from sys:withdrawals:<CUR>');
SELECT is((SELECT (return_transfer_id = (SELECT id FROM transfers WHERE ref = 'w2' AND kind = 'withdrawal_return'),
                   return_reference, return_reason, returned_at IS NOT NULL, outcome)::text
           FROM withdrawals WHERE withdrawal_id = 'w2'), '(t,back-1,account_closed,t,completed)',
          'funds_apply_batch: a return is recorded on its withdrawal, which stays completed');
SELECT is(pg_temp.funds('t2', pg_temp.b(pg_temp.ret('w2', 'back-1', 'account_closed'), pg_temp.ret('w2', 'back-2', 'account_closed'))),
          ARRAY['duplicate:reversed', 'conflict:reversed'],
          'funds_apply_batch: a withdrawal comes back once: the same return again is a duplicate, another one a conflict');
SELECT is((SELECT count(*) FROM transfers WHERE ref = 'w2' AND kind = 'withdrawal_return') || ':' || pg_temp.bal('alice'),
          '1:500', 'funds_apply_batch: ... and its money comes back once');
SELECT is(pg_temp.funds('t3', pg_temp.b(pg_temp.ret('w-none'), pg_temp.ret('w1'), pg_temp.ret('w-r2'))),
          ARRAY['unusable', 'unusable', 'unusable'],
          'funds_apply_batch: a return of a withdrawal that is unknown or did not complete is unusable');
SELECT is((SELECT array_agg(prior_payload ORDER BY ord) FROM fr WHERE label = 't3'),
          ARRAY['no withdrawal w-none is known',
                'withdrawal w1 did not complete (insufficient_funds): nothing left to return',
                'withdrawal w-r2 did not complete (risk_declined): nothing left to return'],
          'funds_apply_batch: an unusable return says why');
SELECT is((SELECT count(*) FROM processed WHERE stage = 'funds' AND payment_id IN ('return:w-none', 'return:w1', 'return:w-r2'))
          + (SELECT count(*) FROM transfers WHERE kind = 'withdrawal_return' AND ref IN ('w-none', 'w1', 'w-r2')),
          0::bigint,
          'funds_apply_batch: an unusable return leaves no processed row and moves no money (a failed withdrawal gives nothing back)');
SELECT is((pg_temp.bal('alice'), (SELECT return_transfer_id FROM withdrawals WHERE withdrawal_id = 'w1'))::text, '(500,)',
          'funds_apply_batch: ... the account keeps what it had');
UPDATE accounts SET status = 'frozen' WHERE id = 'bob';
SELECT is(pg_temp.funds('t4', pg_temp.b(pg_temp.ret('w4'))), ARRAY['new:reversed'],
          'funds_apply_batch: a return credits a frozen account too');
SELECT is(pg_temp.bal('bob'), 0::bigint, 'funds_apply_batch: the frozen account has its withdrawal back');
SELECT is(pg_temp.funds('t5', pg_temp.b(pg_temp.ret('w-q'), pg_temp.wd('w-q', 'risky', 10), pg_temp.ret('w-q'))),
          ARRAY['unusable', 'new:completed', 'new:reversed'],
          'funds_apply_batch: a return that overtook its withdrawal is unusable, and judged again once the withdrawal is there');
SELECT is((SELECT array_agg(outcome) FROM processed WHERE stage = 'funds' AND payment_id = 'return:w-q'), ARRAY['reversed'],
          'funds_apply_batch: ... with one processed row');

-- queue order: carl has nothing until its deposit
SELECT is(pg_temp.funds('q1', pg_temp.b(pg_temp.wd('w-k1', 'carl', 10), pg_temp.dep('d-k1', 'carl', 10),
                                        pg_temp.wd('w-k2', 'carl', 10), pg_temp.dep('d-k1', 'carl', 10))),
          ARRAY['new:insufficient_funds', 'new:completed', 'new:completed', 'duplicate:completed'],
          'funds_apply_batch: each element sees the balances left by those before it, in queue order');
SELECT is((SELECT array_agg(ord ORDER BY ord) FROM fr WHERE label = 'q1'), ARRAY[1, 2, 3, 4],
          'funds_apply_batch: one row per element, ord its position in the batch');

-- int64 edges: GBP whale at max - 10 (sys:funding:GBP at -(max - 10))
SELECT is(pg_temp.funds('g0', pg_temp.b(pg_temp.dep('d-g1', 'whale', 10, 'GBP'))), ARRAY['new:completed'],
          'funds_apply_batch: a deposit (setup of the GBP edges)');
UPDATE accounts SET balance = balance + (9223372036854775807 - 20) WHERE id = 'whale';
UPDATE accounts SET balance = balance - (9223372036854775807 - 20) WHERE id = 'sys:funding:GBP';
SELECT is(pg_temp.funds('g1', pg_temp.b(pg_temp.dep('d-g2', 'whale', 11, 'GBP'), pg_temp.dep('d-g3', 'whale', 10, 'GBP'),
                                        pg_temp.dep('d-g4', 'g2', 2, 'GBP'), pg_temp.dep('d-g5', 'g2', 1, 'GBP'))),
          ARRAY['new:balance_overflow', 'new:completed', 'new:balance_overflow', 'new:completed'],
          'funds_apply_batch: a deposit past the bigint range (the account''s maximum, sys:funding''s minimum) is balance_overflow, up to it completes');
SELECT is((pg_temp.bal('whale'), pg_temp.bal('g2'), pg_temp.bal('sys:funding:GBP'))::text,
          '(9223372036854775807,1,-9223372036854775808)',
          'funds_apply_batch: balances stand at exactly the bigint limits, never wrapped');
-- CHF: wc 6, sys:withdrawals:CHF at max - 5, sys:funding:CHF at the minimum
SELECT is(pg_temp.funds('c0', pg_temp.b(pg_temp.dep('d-c1', 'wc', 6, 'CHF'), pg_temp.wd('w-c0', 'ghost', 1, 'CHF'))),
          ARRAY['new:completed', 'new:unknown_account'], 'funds_apply_batch: a deposit (setup of the CHF edge)');
UPDATE accounts SET balance = balance + (9223372036854775807 - 5) WHERE id = 'sys:withdrawals:CHF';
UPDATE accounts SET balance = balance - (9223372036854775807 - 5) WHERE id = 'sys:funding:CHF';
SELECT is(pg_temp.funds('c1', pg_temp.b(pg_temp.wd('w-c1', 'wc', 6, 'CHF'), pg_temp.wd('w-c2', 'wc', 5, 'CHF'))),
          ARRAY['new:balance_overflow', 'new:completed'],
          'funds_apply_batch: a withdrawal taking sys:withdrawals past the bigint maximum is balance_overflow, up to it completes');
SELECT is((pg_temp.bal('wc'), pg_temp.bal('sys:withdrawals:CHF'))::text, '(1,9223372036854775807)',
          'funds_apply_batch: sys:withdrawals stands at exactly the bigint maximum');
-- JPY: wj's return would take it one past the maximum
SELECT is(pg_temp.funds('j0', pg_temp.b(pg_temp.dep('d-j1', 'wj', 50, 'JPY'), pg_temp.wd('w-j1', 'wj', 20, 'JPY'))),
          ARRAY['new:completed', 'new:completed'], 'funds_apply_batch: a withdrawal (setup of the JPY edge)');
UPDATE accounts SET balance = balance + (9223372036854775807 - 49) WHERE id = 'wj';
UPDATE accounts SET balance = balance - (9223372036854775807 - 49) WHERE id = 'sys:funding:JPY';
SELECT throws_ok($$SELECT * FROM funds_apply_batch(pg_temp.b(pg_temp.ret('w-j1')), pg_temp.cfg())$$,
                 'P0001', 'return of withdrawal w-j1: the ledger says balance_overflow',
                 'funds_apply_batch: a return the ledger refuses (past the bigint maximum) raises: the batch is retried, nothing recorded');
SELECT is((SELECT count(*) FROM processed WHERE payment_id = 'return:w-j1')
          + (SELECT count(*) FROM transfers WHERE ref = 'w-j1' AND kind = 'withdrawal_return'), 0::bigint,
          'funds_apply_batch: ... no processed row, no transfer');

-- amounts the decoder never lets through: an error, never a posting
SELECT throws_ok($$SELECT * FROM funds_apply_batch(pg_temp.b(pg_temp.dep('d-z0', 'carl', 0)), pg_temp.cfg())$$,
                 '23514', 'new row for relation "transfers" violates check constraint "transfers_amount_check"',
                 'funds_apply_batch: a deposit of 0 is refused by transfers_amount_check (23514)');
SELECT throws_ok($$SELECT * FROM funds_apply_batch(pg_temp.b(pg_temp.dep('d-z1', 'carl', -5)), pg_temp.cfg())$$,
                 '23514', 'new row for relation "transfers" violates check constraint "transfers_amount_check"',
                 'funds_apply_batch: a negative deposit (money out of the account) is refused (23514)');
SELECT throws_ok($$SELECT * FROM funds_apply_batch(pg_temp.b(pg_temp.wd('w-z0', 'carl', 0)), pg_temp.cfg())$$,
                 '23514', 'new row for relation "transfers" violates check constraint "transfers_amount_check"',
                 'funds_apply_batch: a withdrawal of 0 is refused by transfers_amount_check (23514)');
SELECT throws_ok($$SELECT * FROM funds_apply_batch(pg_temp.b(pg_temp.wd('w-z1', 'carl', -5)), pg_temp.cfg())$$,
                 '23514', 'new row for relation "transfers" violates check constraint "transfers_amount_check"',
                 'funds_apply_batch: a negative withdrawal (money into the account) is refused (23514)');
SELECT throws_ok($$SELECT * FROM funds_apply_batch(pg_temp.b(pg_temp.dep('d-z2', 'carl', 9223372036854775808)), pg_temp.cfg())$$,
                 '22003', 'value "9223372036854775808" is out of range for type bigint',
                 'funds_apply_batch: an amount past the bigint maximum is an error (22003), never wrapped');
SELECT is((SELECT count(*) FROM processed WHERE payment_id LIKE '%-z%') + (SELECT count(*) FROM transfers WHERE ref LIKE '%-z%'),
          0::bigint, 'funds_apply_batch: a batch that fails leaves no processed row and no transfer');

-- the books
SELECT is((SELECT count(*) FROM (SELECT t.id FROM transfers t JOIN entries e ON e.transfer_id = t.id
                                 WHERE t.kind IN ('deposit', 'withdrawal', 'withdrawal_return') GROUP BY t.id
                                 HAVING count(*) <> 2 OR sum(e.amount) <> 0) x), 0::bigint,
          'funds_apply_batch: every deposit, withdrawal and return has two entries summing to zero');
SELECT is((SELECT array_agg(currency || ':' || s ORDER BY currency)
           FROM (SELECT currency, sum(balance) AS s FROM accounts GROUP BY currency) x),
          ARRAY['CHF:0', 'EUR:0', 'GBP:0', 'JPY:0', 'USD:0'],
          'funds_apply_batch: per currency the balances sum to zero');

SELECT * FROM finish();
ROLLBACK;
