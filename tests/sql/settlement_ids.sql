-- settlement_batch_id(payee, currency, start) and settlement_lock_key(payee,
-- currency): a batch's id is "sb-<payee>-<CUR>-<window start, epoch s>"
-- while that fits an id (64 characters), else "sb-" and the md5 of that
-- text; the same window always gets the same id, whatever the session's
-- time zone. Rule 2's lock key is one per (payee, currency).
BEGIN;
SELECT plan(7);

SELECT is(settlement_batch_id('shop', 'EUR', '2026-01-01 00:00:00+00'),
          'sb-shop-EUR-1767225600',
          'settlement_batch_id: sb-<payee>-<CUR>-<window start in epoch seconds>');
SET LOCAL timezone = 'Asia/Kolkata';
SELECT is(settlement_batch_id('shop', 'EUR', '2026-01-01 05:30:00+05:30'),
          'sb-shop-EUR-1767225600',
          'settlement_batch_id: the same instant gives the same id in any session time zone');
RESET timezone;
-- 'sb-' + payee + '-EUR-' + 10 digits = 64 characters exactly with a payee of 46
SELECT is(length(settlement_batch_id(repeat('p', 46), 'EUR', '2026-01-01 00:00:00+00')), 64,
          'settlement_batch_id: an id of exactly 64 characters is kept as it is');
SELECT is(settlement_batch_id(repeat('p', 47), 'EUR', '2026-01-01 00:00:00+00'),
          'sb-' || md5('sb-' || repeat('p', 47) || '-EUR-1767225600'),
          'settlement_batch_id: one character more and it is sb- and the md5 of that text');
SELECT isnt(settlement_batch_id(repeat('p', 47), 'EUR', '2026-01-01 00:00:00+00'),
            settlement_batch_id(repeat('p', 47), 'EUR', '2026-01-01 01:00:00+00'),
            'settlement_batch_id: two windows of a long payee still get two ids');
SELECT is(settlement_lock_key('shop', 'EUR'), settlement_lock_key('shop', 'EUR'),
          'settlement_lock_key: the adder and the closer of a payee and currency take the same key');
SELECT isnt(settlement_lock_key('shop', 'EUR'), settlement_lock_key('shop', 'USD'),
            'settlement_lock_key: another currency of the payee is another key');

SELECT * FROM finish();
ROLLBACK;
