-- settlement_batch_id(payee, currency, window start): the batch's id,
-- "sb-<payee>-<CUR>-<window start, epoch s>", or "sb-" and 32 hex chars of
-- its md5 when that is longer than an id may be (64). One IMMUTABLE
-- expression, so the planner inlines it instead of running a query per
-- payment.
CREATE OR REPLACE FUNCTION settlement_batch_id(p_payee text, p_currency text, p_start timestamptz)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    -- only immutable parts, so that the planner inlines the body: the
    -- window start's epoch through an interval (extract() of a timestamptz
    -- is only STABLE) and text casts (text || bigint is STABLE too)
    SELECT CASE WHEN length('sb-' || p_payee || '-' || p_currency || '-'
                            || extract(epoch FROM p_start - '1970-01-01 00:00:00+00'::timestamptz)::bigint::text) <= 64
                THEN 'sb-' || p_payee || '-' || p_currency || '-'
                     || extract(epoch FROM p_start - '1970-01-01 00:00:00+00'::timestamptz)::bigint::text
                ELSE 'sb-' || md5('sb-' || p_payee || '-' || p_currency || '-'
                                  || extract(epoch FROM p_start - '1970-01-01 00:00:00+00'::timestamptz)::bigint::text)
           END
$$;
