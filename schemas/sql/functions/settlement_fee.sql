-- settlement_fee(amount, bps, fixed): the fee of one payment,
-- round_half_up(amount * bps / 10000) + fixed, in exact numeric.
CREATE OR REPLACE FUNCTION settlement_fee(p_amount bigint, p_bps integer, p_fixed bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
    SELECT (floor((p_amount::numeric * p_bps) / 10000 + 0.5))::bigint + p_fixed
$$;
