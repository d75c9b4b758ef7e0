-- settlement_apply_batch(batch, window_s), and its one-at-a-time path
-- settlement_apply_seq (a payment_id twice, a late payment, a batch that
-- would fill up): each completed payment, in queue order, joins the batch
-- of its payee, currency and window (posted_ms floored to window_s,
-- aligned to the epoch), with the fee of its payee at that time
-- (docs/ledger.md#settlement-tables). A payment whose window's batch is
-- closed, or whose batch's gross or fees_raw would pass the bigint max,
-- joins the next open window, marked late: never a closed batch, never a
-- wrapped total. A duplicate answers its batch and adds nothing; another
-- payload under a processed payment_id is a conflict; an event that the
-- ledger's payment transfer does not match is 'unposted' and leaves no
-- trace, so the genuine event can still come.
BEGIN;
SELECT plan(32);

-- windows of an hour from 2026-01-01 00:00 UTC (epoch 1767225600)
--   sb-shop-EUR-1767225600  [00:00, 01:00)   sb-shop-EUR-1767229200  [01:00, 02:00)
--   sb-shop-EUR-1767232800  [02:00, 03:00)   sb-shop-EUR-1767236400  [03:00, 04:00)
INSERT INTO accounts (id, currency, kind, fee_bps, fee_fixed, overdraft_limit) VALUES
    ('payer', 'EUR', 'customer', 0, 0, 0),
    ('shop', 'EUR', 'merchant', 250, 0, 0),            -- 2.5 %
    ('flat', 'EUR', 'merchant', 0, 30, 0),             -- 30 per payment
    ('other', 'EUR', 'merchant', 0, 0, 0),
    ('day', 'EUR', 'merchant', 0, 0, 0),
    ('sink', 'EUR', 'customer', 0, 0, 0),
    ('big', 'EUR', 'merchant', 0, 0, 9223372036854775807),
    ('bigfee', 'EUR', 'merchant', 10000, 100000000000000, 9223372036854775807),
    ('sys:funding:EUR', 'EUR', 'system', 0, 0, 0);

-- the payment.completed events: k names the event, id is its payment_id
CREATE TEMP TABLE ev (k text PRIMARY KEY, id text, payee text, amount bigint, currency text,
                      posted_ms bigint, hash text) ON COMMIT DROP;
-- the batch of events k..., as the settlement-worker writes it
-- (stage_batch_json, settlement_element)
CREATE FUNCTION pg_temp.batch(VARIADIC ks text[]) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_agg(jsonb_build_object('key', e.id, 'hash', e.hash,
                                        'payload', '{"h":"' || e.hash || '"}',
                                        'payment_id', e.id, 'payer', 'payer', 'payee', e.payee,
                                        'amount', e.amount, 'currency', e.currency,
                                        'posted_ms', e.posted_ms) ORDER BY u.n)
    FROM unnest(ks) WITH ORDINALITY u(k, n) JOIN ev e ON e.k = u.k
$$;
CREATE TEMP TABLE res (call text, ord integer, verdict text, batch_id text, late boolean,
                       prior_payload text) ON COMMIT DROP;
-- settlement_apply_batch of events k..., its rows kept under `call`
CREATE FUNCTION pg_temp.apply(p_call text, p_window bigint, VARIADIC ks text[]) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO res SELECT p_call, r.* FROM settlement_apply_batch(pg_temp.batch(VARIADIC ks), p_window) r
$$;
-- a call's rows in ord order, as 'verdict:batch:late'
CREATE FUNCTION pg_temp.got(p_call text) RETURNS text[] LANGUAGE sql AS $$
    SELECT array_agg(r.verdict || ':' || coalesce(r.batch_id, '-') || ':' || r.late::text
                     ORDER BY r.ord)
    FROM res r WHERE r.call = p_call
$$;
-- a batch's totals
CREATE FUNCTION pg_temp.totals(p_batch text) RETURNS text LANGUAGE sql AS $$
    SELECT format('count %s gross %s fees_raw %s late %s %s', count, gross, fees_raw,
                  late_count, status)
    FROM settlement_batches WHERE id = p_batch
$$;
-- pg_temp.post, pg_temp.bal, pg_temp.b: tests/sql/lib/ledger.sql
-- a payment in the ledger (the payment stage's transfer)
CREATE FUNCTION pg_temp.pay(p_id text, p_payee text, p_amount bigint, p_payer text DEFAULT 'payer')
RETURNS text LANGUAGE sql AS $$
    SELECT pg_temp.post(p_id, 'payment', p_payer, p_payee, p_amount)
$$;

SELECT pg_temp.post('fund-payer', 'funding', 'sys:funding:EUR', 'payer', 1000000000);

-- 1. windows and fees (one statement: nothing late, no id twice)
SELECT pg_temp.pay('w0', 'shop', 10000), pg_temp.pay('w1', 'shop', 199),
       pg_temp.pay('w2', 'shop', 1000), pg_temp.pay('f0', 'flat', 10);
INSERT INTO ev VALUES
    ('w0', 'w0', 'shop', 10000, 'EUR', 1767225600000, 'hw0'),  -- the window's first ms
    ('w1', 'w1', 'shop', 199, 'EUR', 1767229199999, 'hw1'),    -- its last ms
    ('w2', 'w2', 'shop', 1000, 'EUR', 1767229200000, 'hw2'),   -- the next window's first
    ('f0', 'f0', 'flat', 10, 'EUR', 1767225600000, 'hf0');
SELECT pg_temp.apply('windows', 3600, 'w0', 'w1', 'w2', 'f0');
SELECT is(pg_temp.got('windows'),
          ARRAY['new:sb-shop-EUR-1767225600:false', 'new:sb-shop-EUR-1767225600:false',
                'new:sb-shop-EUR-1767229200:false', 'new:sb-flat-EUR-1767225600:false'],
          'settlement_apply_batch: a payment joins the batch of its payee and window, posted time floored to the window (start in, end out)');
SELECT is((SELECT ARRAY[extract(epoch FROM window_start), extract(epoch FROM window_end)]::bigint[]
           FROM settlement_batches WHERE id = 'sb-shop-EUR-1767225600'),
          ARRAY[1767225600, 1767229200]::bigint[],
          'settlement_apply_batch: a window is window_s long and aligned to the Unix epoch');
SELECT is(pg_temp.totals('sb-shop-EUR-1767225600'), 'count 2 gross 10199 fees_raw 255 late 0 open',
          'settlement_apply_batch: a batch''s count, gross and fees_raw are the sums of its payments');
SELECT is((SELECT array_agg(payment_id || ':' || fee || ':' || late ORDER BY payment_id)
           FROM settlement_items),
          ARRAY['f0:30:false', 'w0:250:false', 'w1:5:false', 'w2:25:false'],
          'settlement_apply_batch: a payment''s fee is settlement_fee(amount, fee_bps, fee_fixed) of its payee (half up, plus the fixed part)');
SELECT is(pg_temp.totals('sb-flat-EUR-1767225600'), 'count 1 gross 10 fees_raw 30 late 0 open',
          'settlement_apply_batch: fees_raw is not capped while the batch is open (the cap is the close''s)');
SELECT is((SELECT outcome FROM processed WHERE stage = 'settlement' AND payment_id = 'w1'),
          'batched:sb-shop-EUR-1767225600',
          'settlement_apply_batch: the processed row says batched:<batch id>');
-- the payee's fee changes: a payment joining now takes the new one
UPDATE accounts SET fee_bps = 0, fee_fixed = 7 WHERE id = 'shop';
SELECT pg_temp.pay('w3', 'shop', 100);
INSERT INTO ev VALUES ('w3', 'w3', 'shop', 100, 'EUR', 1767225601000, 'hw3');
SELECT pg_temp.apply('fee-change', 3600, 'w3');
SELECT is((SELECT array_agg(payment_id || ':' || fee ORDER BY payment_id) FROM settlement_items
           WHERE payment_id IN ('w0', 'w3')) || ARRAY[pg_temp.totals('sb-shop-EUR-1767225600')],
          ARRAY['w0:250', 'w3:7', 'count 3 gross 10299 fees_raw 262 late 0 open'],
          'settlement_apply_batch: the fee is the payee''s when the payment joins; earlier payments keep theirs');
-- one-day windows are UTC days
SELECT pg_temp.pay('d0', 'day', 5), pg_temp.pay('d1', 'day', 6);
INSERT INTO ev VALUES
    ('d0', 'd0', 'day', 5, 'EUR', (extract(epoch FROM timestamptz '2026-01-01 23:59:59.999+00') * 1000)::bigint, 'hd0'),
    ('d1', 'd1', 'day', 6, 'EUR', (extract(epoch FROM timestamptz '2026-01-02 00:00:00+00') * 1000)::bigint, 'hd1');
SELECT pg_temp.apply('day', 86400, 'd0', 'd1');
SELECT is((SELECT array_agg(b.window_start AT TIME ZONE 'UTC' ORDER BY r.ord)
           FROM res r JOIN settlement_batches b ON b.id = r.batch_id WHERE r.call = 'day'),
          ARRAY[timestamp '2026-01-01 00:00', timestamp '2026-01-02 00:00'],
          'settlement_apply_batch: with window_s 86400 a window is a UTC day (23:59:59.999 in it, midnight in the next)');

-- 2. duplicates and conflicts
SELECT pg_temp.apply('dup', 3600, 'w0');
SELECT is(pg_temp.got('dup'), ARRAY['duplicate:sb-shop-EUR-1767225600:false'],
          'settlement_apply_batch: a payment processed before is a duplicate, answered with its batch');
UPDATE ev SET hash = 'hw0-other' WHERE k = 'w0';
SELECT pg_temp.apply('conflict', 3600, 'w0');
SELECT is((SELECT verdict || ' ' || prior_payload FROM res WHERE call = 'conflict'),
          'conflict {"h":"hw0"}',
          'settlement_apply_batch: another payload under a processed payment_id is a conflict, with the first payload');
SELECT is(pg_temp.totals('sb-shop-EUR-1767225600') || ', items of w0: '
          || (SELECT count(*) FROM settlement_items WHERE payment_id = 'w0'),
          'count 3 gross 10299 fees_raw 262 late 0 open, items of w0: 1',
          'settlement_apply_batch: a duplicate or a conflict adds nothing to any batch');
-- the same payment again, claiming another window (12:00): no batch for it
INSERT INTO ev VALUES ('w0-moved', 'w0', 'shop', 10000, 'EUR', 1767268800000, 'hw0-moved');
SELECT pg_temp.apply('conflict-moved', 3600, 'w0-moved');
SELECT is((SELECT verdict FROM res WHERE call = 'conflict-moved') || ', batches of 12:00: '
          || (SELECT count(*) FROM settlement_batches WHERE window_start = to_timestamp(1767268800)),
          'conflict, batches of 12:00: 0',
          'settlement_apply_batch: a conflict claiming another window creates no batch for it');
SELECT pg_temp.pay('w4', 'shop', 50);
INSERT INTO ev VALUES ('w4', 'w4', 'shop', 50, 'EUR', 1767225602000, 'hw4');
SELECT pg_temp.apply('twice', 3600, 'w4', 'w4');
SELECT is(pg_temp.got('twice'),
          ARRAY['new:sb-shop-EUR-1767225600:false', 'duplicate:sb-shop-EUR-1767225600:false'],
          'settlement_apply_batch: a payment_id twice in one batch is new, then a duplicate with the same batch');
SELECT is(pg_temp.totals('sb-shop-EUR-1767225600'), 'count 4 gross 10349 fees_raw 269 late 0 open',
          'settlement_apply_batch: a payment_id twice in one batch is added once');

-- 3. events the ledger does not match
SELECT pg_temp.pay('u-amt', 'shop', 1000), pg_temp.pay('u-payee', 'shop', 1000),
       pg_temp.pay('u-cur', 'shop', 1000), pg_temp.pay('g1', 'shop', 40),
       pg_temp.pay('u-twice', 'shop', 70);
INSERT INTO ev VALUES
    ('u-none', 'u-none', 'shop', 1000, 'EUR', 1767225603000, 'hun'),        -- no transfer
    ('u-amt', 'u-amt', 'shop', 999, 'EUR', 1767225603000, 'hua'),           -- ledger: 1000
    ('u-payee', 'u-payee', 'other', 1000, 'EUR', 1767225603000, 'hup'),     -- ledger: shop
    ('u-cur', 'u-cur', 'shop', 1000, 'USD', 1767225603000, 'huc'),          -- ledger: EUR
    ('g1', 'g1', 'shop', 40, 'EUR', 1767225603000, 'hg1'),
    ('u-amt-real', 'u-amt', 'shop', 1000, 'EUR', 1767225603000, 'hua2'),    -- the genuine one
    ('u-twice-bad', 'u-twice', 'shop', 71, 'EUR', 1767225603000, 'hut1'),
    ('u-twice', 'u-twice', 'shop', 70, 'EUR', 1767225603000, 'hut2');
SELECT pg_temp.apply('unposted', 3600, 'u-none', 'u-amt', 'u-payee', 'u-cur', 'g1');
SELECT is(pg_temp.got('unposted'),
          ARRAY['unposted:-:false', 'unposted:-:false', 'unposted:-:false', 'unposted:-:false',
                'new:sb-shop-EUR-1767225600:false'],
          'settlement_apply_batch: an event whose payment transfer is missing or differs (amount, payee, currency) is unposted');
SELECT is((SELECT array_agg(prior_payload ORDER BY ord) FROM res WHERE call = 'unposted' AND ord <= 2),
          ARRAY['no payment transfer of this payment_id is in the ledger',
                format('the ledger''s payment transfer %s differs: amount 1000, payee shop, currency EUR',
                       (SELECT id FROM transfers WHERE kind = 'payment' AND ref = 'u-amt'))],
          'settlement_apply_batch: an unposted event says why (prior_payload)');
SELECT is((SELECT count(*) FROM processed WHERE payment_id LIKE 'u-%')
          + (SELECT count(*) FROM settlement_items WHERE payment_id LIKE 'u-%'), 0::bigint,
          'settlement_apply_batch: an unposted event leaves no processed row and no item');
SELECT is(pg_temp.totals('sb-shop-EUR-1767225600') || ', other: '
          || coalesce((SELECT sum(gross) FROM settlement_batches WHERE payee = 'other'), 0)
          || ', USD: ' || coalesce((SELECT sum(gross) FROM settlement_batches WHERE currency = 'USD'), 0),
          'count 5 gross 10389 fees_raw 276 late 0 open, other: 0, USD: 0',
          'settlement_apply_batch: an unposted event adds nothing to any batch');
SELECT pg_temp.apply('genuine', 3600, 'u-amt-real');
SELECT is(pg_temp.got('genuine'), ARRAY['new:sb-shop-EUR-1767225600:false'],
          'settlement_apply_batch: the genuine event still comes after an unposted one of its payment_id');
SELECT pg_temp.apply('bad-then-real', 3600, 'u-twice-bad', 'u-twice');
SELECT is(pg_temp.got('bad-then-real'),
          ARRAY['unposted:-:false', 'new:sb-shop-EUR-1767225600:false'],
          'settlement_apply_batch: an unposted event then the genuine one in the same batch: unposted, then new');
SELECT is((SELECT count(*) FROM settlement_batches WHERE payee = 'other' OR currency = 'USD'),
          0::bigint,
          'settlement_apply_batch: an unposted event creates no batch for the payee or currency it claims');
-- a payee that is no account at all (10:00, a window of its own)
SELECT pg_temp.pay('g2', 'other', 50);
INSERT INTO ev VALUES
    ('u-ghost', 'u-ghost', 'nobody', 50, 'EUR', 1767261600000, 'hgh'),
    ('g2', 'g2', 'other', 50, 'EUR', 1767261600000, 'hg2');
SELECT pg_temp.apply('ghost', 3600, 'u-ghost', 'g2');
SELECT is(pg_temp.got('ghost'), ARRAY['unposted:-:false', 'new:sb-other-EUR-1767261600:false'],
          'settlement_apply_batch: an event naming a payee that is no account is unposted, not an error, and the genuine payment of its batch joins');

-- 4. late: the window's batch is closed
SELECT id FROM settlement_close('sb-shop-EUR-1767225600', 1, 'test');
SELECT pg_temp.pay('l1', 'shop', 500), pg_temp.pay('l2', 'shop', 600), pg_temp.pay('l3', 'shop', 700),
       pg_temp.pay('n3', 'shop', 800), pg_temp.pay('n4', 'shop', 900);
INSERT INTO ev VALUES
    ('l1', 'l1', 'shop', 500, 'EUR', 1767225610000, 'hl1'),
    ('l2', 'l2', 'shop', 600, 'EUR', 1767225620000, 'hl2'),
    ('l3', 'l3', 'shop', 700, 'EUR', 1767225630000, 'hl3'),
    ('n3', 'n3', 'shop', 800, 'EUR', 1767236400000, 'hn3'),  -- 03:00, its own window
    ('n4', 'n4', 'shop', 900, 'EUR', 1767236500000, 'hn4');
SELECT pg_temp.apply('late', 3600, 'l1');
SELECT is(pg_temp.got('late'), ARRAY['new:sb-shop-EUR-1767229200:true'],
          'settlement_apply_batch: a payment whose window''s batch is closed joins the next window''s, marked late');
SELECT is(pg_temp.totals('sb-shop-EUR-1767225600') || ' / ' || pg_temp.totals('sb-shop-EUR-1767229200')
          || ' / item late: ' || (SELECT late FROM settlement_items WHERE payment_id = 'l1'),
          'count 7 gross 11459 fees_raw 290 late 0 closed / count 2 gross 1500 fees_raw 32 late 1 open / item late: true',
          'settlement_apply_batch: never a closed batch: it is unchanged, and the next counts the payment late');
SELECT id FROM settlement_close('sb-shop-EUR-1767229200', 1, 'test');
SELECT pg_temp.apply('late2', 3600, 'l2');
SELECT is(pg_temp.got('late2'), ARRAY['new:sb-shop-EUR-1767232800:true'],
          'settlement_apply_batch: when the next window''s batch is closed too, a late payment goes two windows on');
SELECT pg_temp.apply('late-dup', 3600, 'l1');
SELECT is(pg_temp.got('late-dup'), ARRAY['duplicate:sb-shop-EUR-1767229200:true'],
          'settlement_apply_batch: a duplicate of a late payment answers its batch, late');
-- 5. queue order, on the one-at-a-time path (l3 is late)
SELECT pg_temp.apply('order', 3600, 'l3', 'n3', 'u-none', 'l1', 'n4');
SELECT is(pg_temp.got('order'),
          ARRAY['new:sb-shop-EUR-1767232800:true', 'new:sb-shop-EUR-1767236400:false', 'unposted:-:false',
                'duplicate:sb-shop-EUR-1767229200:true', 'new:sb-shop-EUR-1767236400:false'],
          'settlement_apply_batch: one row per element, in queue order, late or not');
SELECT is((SELECT array_agg(ord ORDER BY ord) FROM res WHERE call = 'order'), ARRAY[1, 2, 3, 4, 5],
          'settlement_apply_batch: ord numbers the elements 1..n');
SELECT is(pg_temp.totals('sb-shop-EUR-1767232800') || ' / ' || pg_temp.totals('sb-shop-EUR-1767236400'),
          'count 2 gross 1300 fees_raw 14 late 2 open / count 2 gross 1700 fees_raw 14 late 0 open',
          'settlement_apply_batch: late_count counts the late payments of a batch');

-- 6. the int64 edge: a batch's gross and fees_raw are bigint.
-- big and bigfee may overdraw, so that they can receive payments summing
-- to the bigint max; sink pays them.
SELECT pg_temp.post('pre-big', 'payment', 'big', 'sink', 9000000000000000000);
SELECT pg_temp.post('fund-sink-1', 'funding', 'sys:funding:EUR', 'sink', 223372036854774807);
SELECT pg_temp.pay('h1', 'big', 9223372036854774807, 'sink');  -- max - 1000
SELECT pg_temp.post('fund-sink-2', 'funding', 'sys:funding:EUR', 'sink', 1001);
SELECT pg_temp.pay('h2', 'big', 1000, 'sink'), pg_temp.pay('h3', 'big', 1, 'sink');
SELECT pg_temp.post('pre-bigfee', 'payment', 'bigfee', 'sink', 9000000000000000000);
SELECT pg_temp.post('fund-sink-3', 'funding', 'sys:funding:EUR', 'sink', 223272036854774807);
SELECT pg_temp.pay('x1', 'bigfee', 9223272036854774807, 'sink');  -- fee: max - 1000
SELECT pg_temp.post('fund-sink-4', 'funding', 'sys:funding:EUR', 'sink', 500);
SELECT pg_temp.pay('x2', 'bigfee', 500, 'sink');                  -- fee: 10^14 + 500
INSERT INTO ev VALUES
    ('h1', 'h1', 'big', 9223372036854774807, 'EUR', 1767225600000, 'hh1'),
    ('h2', 'h2', 'big', 1000, 'EUR', 1767225600000, 'hh2'),
    ('h3', 'h3', 'big', 1, 'EUR', 1767225600000, 'hh3'),
    ('x1', 'x1', 'bigfee', 9223272036854774807, 'EUR', 1767225600000, 'hx1'),
    ('x2', 'x2', 'bigfee', 500, 'EUR', 1767225600000, 'hx2');
SELECT pg_temp.apply('int64', 3600, 'h1', 'h2', 'h3');
SELECT is((pg_temp.got('int64'))[1:2] || ARRAY[pg_temp.totals('sb-big-EUR-1767225600')],
          ARRAY['new:sb-big-EUR-1767225600:false', 'new:sb-big-EUR-1767225600:false',
                'count 2 gross 9223372036854775807 fees_raw 0 late 0 open'],
          'settlement_apply_batch: a batch''s gross may reach the bigint max exactly');
SELECT is((pg_temp.got('int64'))[3], 'new:sb-big-EUR-1767229200:true',
          'settlement_apply_batch: a payment that would take a batch''s gross past the bigint max joins the next window, marked late');
SELECT pg_temp.apply('int64-fees', 3600, 'x1', 'x2');
SELECT is(pg_temp.got('int64-fees') || ARRAY[pg_temp.totals('sb-bigfee-EUR-1767225600')],
          ARRAY['new:sb-bigfee-EUR-1767225600:false', 'new:sb-bigfee-EUR-1767229200:true',
                'count 1 gross 9223272036854774807 fees_raw 9223372036854774807 late 0 open'],
          'settlement_apply_batch: a payment that would take a batch''s fees_raw past the bigint max joins the next window, marked late');

SELECT * FROM finish();
ROLLBACK;
