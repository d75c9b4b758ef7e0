-- 009_fee_fixed_bound.sql - a fixed fee is at most 10^14 (the largest
-- payment amount). Without a bound, a fee near 2^63 made every settlement
-- of that merchant overflow (settlement_fee, fees_raw) and park its
-- payments. NOT VALID: rows written before keep working; new and changed
-- rows are checked (ledgerctl refuses such values with a clear error first).
ALTER TABLE accounts
    ADD CONSTRAINT accounts_fee_fixed_bound CHECK (fee_fixed <= 100000000000000) NOT VALID;
