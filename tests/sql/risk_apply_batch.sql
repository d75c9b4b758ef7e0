-- risk_apply_batch(batch, cfg): the velocity rules at their boundaries
-- (docs/ledger.md#risk-tables): velocity_count lets through at most N
-- approved payments of a payer within the window, and counts approved
-- decisions only (a payment the rules declined moved no money), earlier
-- ones from the table and earlier ones of the same batch alike.
BEGIN;
SELECT plan(6);

CREATE FUNCTION pg_temp.batch(VARIADIC ids text[]) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_agg(jsonb_build_object('key', u.id, 'hash', 'h' || u.id, 'payload', '{}',
                     'payment_id', u.id, 'payer', split_part(u.id, '-', 1), 'payee', 'shop',
                     'amount', CASE WHEN u.id LIKE '%big%' THEN 5000 ELSE 10 END,
                     'currency', 'EUR') ORDER BY u.n)
    FROM unnest(ids) WITH ORDINALITY u(id, n)
$$;
-- velocity_count 2 per hour; max_amount EUR 1000 (the "big" ones are declined)
CREATE FUNCTION pg_temp.cfg() RETURNS jsonb LANGUAGE sql AS $$
    SELECT '{"version": "t", "max_amount": {"EUR": 1000}, "blocklist": [],
             "velocity_count": 2, "velocity_sum": 0, "velocity_window_s": 3600,
             "score_threshold": 0, "weight_new_payee": 0, "weight_above_median": 0,
             "median_factor": 10}'::jsonb
$$;

SELECT is(array_agg(r.decision ORDER BY r.ord), ARRAY['approved', 'approved', 'declined'],
          'risk_apply_batch: velocity_count 2 approves two payments of a payer, declines the third')
FROM risk_apply_batch(pg_temp.batch('p1-a', 'p1-b', 'p1-c'), pg_temp.cfg()) r;
SELECT is((SELECT rules FROM risk_decisions WHERE payment_id = 'p1-c'), '{velocity_count}'::text[],
          'risk_apply_batch: the third names velocity_count');
-- declines do not count: two declined (over max_amount), then two approved
SELECT is(array_agg(r.decision ORDER BY r.ord),
          ARRAY['declined', 'declined', 'approved', 'approved', 'declined'],
          'risk_apply_batch: velocity counts approved payments only, not declined ones (same batch)')
FROM risk_apply_batch(pg_temp.batch('p2-big1', 'p2-big2', 'p2-a', 'p2-b', 'p2-c'), pg_temp.cfg()) r;
SELECT is(array_agg(r.decision ORDER BY r.ord), ARRAY['declined', 'declined'],
          'risk_apply_batch: declined payments of a payer fill no velocity (setup)')
FROM risk_apply_batch(pg_temp.batch('p3-big1', 'p3-big2'), pg_temp.cfg()) r;
SELECT is(array_agg(r.decision ORDER BY r.ord), ARRAY['approved', 'approved'],
          'risk_apply_batch: velocity counts approved payments only, not declined ones (earlier batches)')
FROM risk_apply_batch(pg_temp.batch('p3-a', 'p3-b'), pg_temp.cfg()) r;
SELECT is((SELECT r.decision FROM risk_apply_batch(pg_temp.batch('p3-c'), pg_temp.cfg()) r),
          'declined', 'risk_apply_batch: ... and the third approved one is over the count');

SELECT * FROM finish();
ROLLBACK;
