-- settlement_fee(amount, bps, fixed) = round_half_up(amount * bps / 10000)
-- + fixed, exact (docs/ledger.md#settlement-tables): the rounding
-- boundaries, the fixed part, and the largest values the contract allows
-- (amount 10^14, fee_fixed 10^14, bps 10000) without an overflow.
BEGIN;
SELECT plan(10);

SELECT is(settlement_fee(1, 5000, 0), 1::bigint,
          'settlement_fee: exactly half a minor unit rounds up');
SELECT is(settlement_fee(1, 4999, 0), 0::bigint,
          'settlement_fee: just under half rounds down');
SELECT is(settlement_fee(3, 5000, 0), 2::bigint,
          'settlement_fee: 1.5 rounds up to 2 (half up, not to even)');
SELECT is(settlement_fee(5, 5000, 0), 3::bigint,
          'settlement_fee: 2.5 rounds up to 3 (half up, not to even)');
SELECT is(settlement_fee(10000, 250, 0), 250::bigint,
          'settlement_fee: 2.5 % of 100.00 is 2.50');
SELECT is(settlement_fee(199, 250, 0), 5::bigint,
          'settlement_fee: 4.975 rounds to 5');
SELECT is(settlement_fee(1000, 0, 30), 30::bigint,
          'settlement_fee: the fixed part alone');
SELECT is(settlement_fee(1000, 100, 30), 40::bigint,
          'settlement_fee: percentage plus the fixed part');
SELECT is(settlement_fee(100000000000000, 10000, 100000000000000), 200000000000000::bigint,
          'settlement_fee: the largest amount at 100 % plus the largest fixed fee, exact');
SELECT is(settlement_fee(100000000000000, 1, 0), 10000000000::bigint,
          'settlement_fee: 1 bps of the largest amount, exact');

SELECT * FROM finish();
ROLLBACK;
