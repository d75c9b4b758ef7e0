-- settlement_next_batch(payee, currency, except, at, window_s): the batch a
-- refund of an already paid-out payment is deducted from
-- (docs/ledger.md#netting-in-settlement): the payee's oldest open batch in
-- that currency other than `except`, whatever `at` says; when it has none,
-- the batch of the window holding `at` (window_s long, aligned to the
-- epoch), created if missing, or of the next window whose batch is still
-- open. Never a closed batch, never `except`, never another payee's or
-- currency's. A held batch is still open.
BEGIN;
SELECT plan(17);

-- windows of an hour from 2026-01-01 00:00 UTC (epoch 1767225600)
INSERT INTO accounts (id, currency, kind) VALUES
    ('a1', 'EUR', 'merchant'), ('a2', 'EUR', 'merchant'), ('a3', 'EUR', 'merchant'),
    ('b', 'EUR', 'merchant'), ('c', 'EUR', 'merchant'), ('d1', 'EUR', 'merchant'),
    ('d2', 'EUR', 'merchant'), ('e', 'EUR', 'merchant'), ('h', 'EUR', 'merchant'),
    ('day', 'EUR', 'merchant');

-- the id of the batch settlement_next_batch returns, or what it raised
CREATE FUNCTION pg_temp.next(p_payee text, p_except text, p_at timestamptz,
                             p_currency text DEFAULT 'EUR', p_window_s bigint DEFAULT 3600)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    b settlement_batches%ROWTYPE;
BEGIN
    b := settlement_next_batch(p_payee, p_currency, p_except, p_at, p_window_s);
    RETURN coalesce(b.id, 'no batch');
EXCEPTION WHEN OTHERS THEN
    RETURN 'raised: ' || SQLERRM;
END $$;
-- a batch of the payee's window starting at epoch second p_start, made as
-- settlement_apply_batch makes it
CREATE FUNCTION pg_temp.mk(p_payee text, p_start bigint, p_currency text DEFAULT 'EUR')
RETURNS text LANGUAGE sql AS $$
    INSERT INTO settlement_batches (id, payee, currency, window_start, window_end)
    VALUES (settlement_batch_id(p_payee, p_currency, to_timestamp(p_start)), p_payee, p_currency,
            to_timestamp(p_start), to_timestamp(p_start + 3600))
    RETURNING id
$$;
-- a batch closed by the closer (empty: nothing to post)
CREATE FUNCTION pg_temp.shut(p_batch text) RETURNS text LANGUAGE sql AS $$
    SELECT id || ' ' || status FROM settlement_close(p_batch, 1, 'closer-1')
$$;
CREATE FUNCTION pg_temp.batches(p_payee text) RETURNS text[] LANGUAGE sql AS $$
    SELECT array_agg(id || ' ' || status ORDER BY window_start) FROM settlement_batches
    WHERE payee = p_payee
$$;

-- 1. no open batch: the window of `at`
SELECT is(pg_temp.next('a1', NULL, '2026-01-01 00:30+00'), 'sb-a1-EUR-1767225600',
          'settlement_next_batch: a payee without an open batch gets the batch of the window holding at, created');
SELECT is((SELECT format('%s %s %s %s..%s count %s gross %s', payee, currency, status,
                         extract(epoch FROM window_start)::bigint, extract(epoch FROM window_end)::bigint, count, gross)
           FROM settlement_batches WHERE id = 'sb-a1-EUR-1767225600'),
          'a1 EUR open 1767225600..1767229200 count 0 gross 0',
          'settlement_next_batch: the batch it makes is open, empty, window_s long and aligned to the epoch');
SELECT is(pg_temp.next('a2', NULL, '2026-01-01 01:00:00+00'), 'sb-a2-EUR-1767229200',
          'settlement_next_batch: at on a window''s start is in that window');
SELECT is(pg_temp.next('a3', NULL, '2026-01-01 00:59:59.999999+00'), 'sb-a3-EUR-1767225600',
          'settlement_next_batch: at a microsecond before a window''s end is still in it');
SELECT is(pg_temp.next('day', NULL, '2026-01-01 23:59:59.999+00', 'EUR', 86400), 'sb-day-EUR-1767225600',
          'settlement_next_batch: with window_s 86400 the window is the UTC day of at');
SELECT is(ARRAY[pg_temp.next('a1', NULL, '2026-01-01 00:45+00')] || pg_temp.batches('a1'),
          ARRAY['sb-a1-EUR-1767225600', 'sb-a1-EUR-1767225600 open'],
          'settlement_next_batch: called again it returns the same batch, and makes no other');

-- 2. open batches: the oldest, whatever at says
SELECT pg_temp.mk('b', 1767225600), pg_temp.mk('b', 1767232800), pg_temp.mk('b', 1767229200);
SELECT pg_temp.shut('sb-b-EUR-1767225600');
SELECT is(pg_temp.next('b', NULL, '2026-01-01 10:00+00'), 'sb-b-EUR-1767229200',
          'settlement_next_batch: the payee''s oldest open batch, whatever the window of at (closed ones skipped)');
SELECT is(pg_temp.batches('b'),
          ARRAY['sb-b-EUR-1767225600 closed', 'sb-b-EUR-1767229200 open', 'sb-b-EUR-1767232800 open'],
          'settlement_next_batch: with an open batch it makes none');
SELECT is(pg_temp.next('b', 'sb-b-EUR-1767229200', '2026-01-01 10:00+00'), 'sb-b-EUR-1767232800',
          'settlement_next_batch: the oldest open batch other than except');
SELECT is(pg_temp.next('b', NULL, '2026-01-01 00:30+00'), 'sb-b-EUR-1767229200',
          'settlement_next_batch: the oldest open batch, also when it is later than the window of at');
-- another payee's and another currency's open batches
SELECT pg_temp.mk('c', 1767222000, 'USD');
SELECT is(pg_temp.next('c', NULL, '2026-01-01 00:30+00') || ' ' || pg_temp.next('c', NULL, '2026-01-01 00:30+00', 'USD'),
          'sb-c-EUR-1767225600 sb-c-USD-1767222000',
          'settlement_next_batch: only the payee''s batches of that currency count');

-- 3. no open batch and the window of at closed: the next open window
SELECT pg_temp.shut(pg_temp.mk('d1', 1767225600));
SELECT is(pg_temp.next('d1', NULL, '2026-01-01 00:30+00'), 'sb-d1-EUR-1767229200',
          'settlement_next_batch: when the batch of at''s window is closed, the next window''s, created');
SELECT pg_temp.shut(pg_temp.mk('d2', 1767225600)), pg_temp.shut(pg_temp.mk('d2', 1767229200));
SELECT is(pg_temp.next('d2', NULL, '2026-01-01 00:30+00'), 'sb-d2-EUR-1767232800',
          'settlement_next_batch: two windows on when the next window''s batch is closed too');
SELECT is(pg_temp.batches('d2'),
          ARRAY['sb-d2-EUR-1767225600 closed', 'sb-d2-EUR-1767229200 closed', 'sb-d2-EUR-1767232800 open'],
          'settlement_next_batch: a closed batch is never reopened');
-- except is never returned, even as the window of at
SELECT pg_temp.mk('e', 1767225600);
SELECT is(pg_temp.next('e', 'sb-e-EUR-1767225600', '2026-01-01 00:30+00'), 'sb-e-EUR-1767229200',
          'settlement_next_batch: except is never returned, even when it is the batch of at''s window');

-- 4. a held batch (its close refused) is still open
SELECT pg_temp.mk('h', 1767225600), pg_temp.mk('h', 1767229200);
SELECT settlement_hold('sb-h-EUR-1767225600', 'payee frozen', 60000);
SELECT is(pg_temp.next('h', NULL, '2026-01-01 01:30+00'), 'sb-h-EUR-1767225600',
          'settlement_next_batch: a held batch is still open: it is returned, oldest first');
SELECT is((SELECT status || ' ' || close_error FROM settlement_batches WHERE id = 'sb-h-EUR-1767225600'),
          'open payee frozen',
          'settlement_next_batch: returning a held batch leaves it held');

SELECT * FROM finish();
ROLLBACK;
