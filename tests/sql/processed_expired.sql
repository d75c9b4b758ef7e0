-- processed_expired(stage, keys): the keys processed before the retention
-- horizon, whose processed row is gone while the books still hold their
-- outcome (docs/ledger.md#retention). A key is expired when its books row
-- is older than the horizon plus an hour and it has no processed row; not
-- when it still has one, when its books row is an hour or more past the
-- horizon, or when it is not in the books.
BEGIN;
SELECT plan(10);

-- the ledger as if it had run for two weeks: the legacy partition (empty)
-- replaced by daily ones, so the horizon is 14 days back
-- while the legacy partition is there nothing has expired: a decision of
-- long ago without a processed row is no late duplicate yet
INSERT INTO risk_decisions (payment_id, payer, payee, amount, currency, decision, score, rules,
                            ruleset_version, decided_at)
VALUES ('r-ancient', 'a', 'b', 1, 'EUR', 'approved', 0, '{}', '1', now() - interval '400 days');
SELECT is((SELECT count(*) FROM processed_expired('risk', ARRAY['r-ancient'])), 0::bigint,
          'processed_expired: while nothing has expired (horizon -infinity) no key is expired');
DELETE FROM risk_decisions WHERE payment_id = 'r-ancient';

SELECT pg_temp.past_partitions(14); -- tests/sql/lib/retention.sql
CREATE TEMP TABLE h ON COMMIT DROP AS SELECT retention_horizon() AS t;
SELECT ok((SELECT t FROM h) > now() - interval '15 days',
          'processed_expired: (the horizon is the oldest partition''s start)');

INSERT INTO risk_decisions (payment_id, payer, payee, amount, currency, decision, score, rules,
                            ruleset_version, decided_at)
SELECT x.id, 'a', 'b', 1, 'EUR', 'approved', 0, '{}', '1', (SELECT t FROM h) + x.after
FROM (VALUES ('r-30m', interval '30 minutes'), ('r-61m', interval '61 minutes'),
             ('r-kept', interval '30 minutes')) x(id, after);
INSERT INTO processed (stage, payment_id, payload_hash, payload, outcome, created_at)
VALUES ('risk', 'r-kept', 'h', '{}', 'approved', (SELECT t FROM h) + interval '30 minutes');
INSERT INTO refunds (refund_id, payment_id, amount, outcome, created_at)
VALUES ('f-1', 'r-30m', 1, 'payment_not_completed', (SELECT t FROM h) + interval '30 minutes');
INSERT INTO deposits (deposit_id, account, amount, currency, rail, rail_reference, outcome,
                      created_at)
VALUES ('d-1', 'a', 1, 'EUR', 'sepa', 'r', 'unknown_account',
        (SELECT t FROM h) + interval '30 minutes');
INSERT INTO withdrawals (withdrawal_id, account, amount, currency, rail, outcome, created_at)
VALUES ('w-1', 'a', 1, 'EUR', 'sepa', 'risk_declined', (SELECT t FROM h) + interval '30 minutes');
INSERT INTO payment_failures (payment_id, reason, failed_at)
VALUES ('p-f', 'insufficient_funds', (SELECT t FROM h) + interval '30 minutes');

SELECT is(ARRAY(SELECT k FROM processed_expired('risk', '{r-30m,r-61m,r-kept,r-none}') k ORDER BY k),
          '{r-30m}'::text[],
          'processed_expired: risk, a decision older than the horizon + 1 h without processed row');
SELECT is(ARRAY(SELECT k FROM processed_expired('refund', '{f-1,r-30m}') k), '{f-1}'::text[],
          'processed_expired: refund, by refund_id only');
SELECT is(ARRAY(SELECT k FROM processed_expired('funds', '{deposit:d-1,withdrawal:d-1,withdrawal:w-1,return:w-1}') k ORDER BY k),
          '{deposit:d-1,withdrawal:w-1}'::text[],
          'processed_expired: funds, each type prefix against its own table (a return needs its return)');
SELECT is(ARRAY(SELECT k FROM processed_expired('payment', '{p-f,r-30m}') k), '{p-f}'::text[],
          'processed_expired: payment, a refusal in payment_failures');
SELECT is(ARRAY(SELECT k FROM processed_expired('settlement', '{r-30m}') k), '{}'::text[],
          'processed_expired: settlement, only its own books (settlement_items)');
SELECT is(ARRAY(SELECT k FROM processed_expired('risk', '{}') k), '{}'::text[],
          'processed_expired: no key, none expired');
-- in a session of another DateStyle and TimeZone, the same answer
SET LOCAL datestyle = 'SQL, DMY';
SET LOCAL timezone = 'Asia/Kolkata';
SELECT is(ARRAY(SELECT k FROM processed_expired('risk', '{r-30m,r-61m}') k), '{r-30m}'::text[],
          'processed_expired: the same under another DateStyle and TimeZone');
SELECT is(retention_horizon(), (SELECT t FROM h),
          'retention_horizon: the same instant under another DateStyle and TimeZone');

SELECT * FROM finish();
ROLLBACK;
