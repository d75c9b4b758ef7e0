-- payment_apply_batch(batch): the payment stage's decisions, in queue
-- order, exactly as one payment at a time would make them
-- (docs/ledger.md#functions): each payment sees the balances the ones
-- before it left, a key twice is new then duplicate, another payload under
-- a decided key is a conflict, a refusal is recorded in the books.
BEGIN;
SELECT plan(16);

INSERT INTO accounts (id, currency, kind) VALUES
    ('payer', 'EUR', 'customer'), ('shop', 'EUR', 'merchant'), ('usd', 'USD', 'merchant'),
    ('sys:funding:EUR', 'EUR', 'system');
SELECT status FROM ledger_post('f', 'funding', 'sys:funding:EUR', 'payer', 100, 'EUR');

CREATE TEMP TABLE el (id text, amount bigint, hash text, payee text) ON COMMIT DROP;
CREATE FUNCTION pg_temp.batch(VARIADIC ids text[]) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_agg(jsonb_build_object('key', e.id, 'hash', e.hash, 'payload', '{}',
                     'payment_id', e.id, 'payer', 'payer', 'payee', e.payee,
                     'amount', e.amount, 'currency', 'EUR') ORDER BY u.n)
    FROM unnest(ids) WITH ORDINALITY u(id, n) JOIN el e ON e.id = u.id
$$;
INSERT INTO el VALUES ('a', 60, 'ha', 'shop'), ('b', 60, 'hb', 'shop'), ('c', 30, 'hc', 'shop'),
                      ('d', 5, 'hd', 'usd'), ('e', 5, 'he', 'shop'), ('e2', 5, 'hX', 'shop');

-- queue order: b is short only because a went first; c still fits
SELECT is(array_agg(r.verdict || ':' || r.outcome ORDER BY r.ord),
          ARRAY['new:completed', 'new:insufficient_funds', 'new:completed'],
          'payment_apply_batch: each payment sees the balances left by those before it')
FROM payment_apply_batch(pg_temp.batch('a', 'b', 'c')) r;
SELECT is((SELECT balance FROM accounts WHERE id = 'payer'), 10::bigint,
          'payment_apply_batch: 100 - 60 - 30 left');
SELECT is((SELECT reason FROM payment_failures WHERE payment_id = 'b'), 'insufficient_funds',
          'payment_apply_batch: a refusal is recorded in the books (payment_failures)');
SELECT is((SELECT count(*) FROM transfers WHERE kind = 'payment'), 2::bigint,
          'payment_apply_batch: a refused payment leaves no transfer');
-- the same payments again: duplicates, with their first outcomes
SELECT is(array_agg(r.verdict || ':' || r.outcome ORDER BY r.ord),
          ARRAY['duplicate:completed', 'duplicate:insufficient_funds'],
          'payment_apply_batch: a key decided before is a duplicate with its first outcome')
FROM payment_apply_batch(pg_temp.batch('a', 'b')) r;
-- another payload under a decided key
UPDATE el SET hash = 'hA2', amount = 61 WHERE id = 'a';
SELECT is((SELECT r.verdict FROM payment_apply_batch(pg_temp.batch('a')) r), 'conflict',
          'payment_apply_batch: another payload under a decided key is a conflict');
SELECT is((SELECT count(*) FROM transfers WHERE ref = 'a'), 1::bigint,
          'payment_apply_batch: a conflict posts nothing');
-- a currency the payee does not hold; a key twice in one batch
SELECT is((SELECT r.outcome FROM payment_apply_batch(pg_temp.batch('d')) r), 'currency_mismatch',
          'payment_apply_batch: a payee of another currency');
SELECT is(array_agg(r.verdict || ':' || r.outcome ORDER BY r.ord),
          ARRAY['new:completed', 'duplicate:completed'],
          'payment_apply_batch: a key twice in one batch is new, then a duplicate')
FROM payment_apply_batch(pg_temp.batch('e', 'e')) r;
SELECT is((SELECT count(*) FROM transfers WHERE ref = 'e'), 1::bigint,
          'payment_apply_batch: a key twice in one batch posts once');
-- refused before, its processed row gone (expired): refused again, from the books
DELETE FROM processed WHERE payment_id = 'b';
UPDATE accounts SET balance = balance + 1000 WHERE id = 'payer';
UPDATE accounts SET balance = balance - 1000 WHERE id = 'sys:funding:EUR';
SELECT is((SELECT r.verdict || ':' || r.outcome FROM payment_apply_batch(pg_temp.batch('b')) r),
          'new:insufficient_funds',
          'payment_apply_batch: a payment refused before is refused again, even with funds now');
SELECT is((SELECT count(*) FROM transfers WHERE ref = 'b'), 0::bigint,
          'payment_apply_batch: ... and never posted');
-- the set-based path (everyone has the funds): running balances in queue order
INSERT INTO accounts (id, currency) VALUES ('rich', 'EUR');
SELECT status FROM ledger_post('f2', 'funding', 'sys:funding:EUR', 'rich', 1000, 'EUR');
INSERT INTO el VALUES ('x', 10, 'hx', 'shop'), ('y', 20, 'hy', 'shop'), ('z', 30, 'hz', 'shop');
SELECT is(array_agg(r.verdict || ':' || r.outcome ORDER BY r.ord),
          ARRAY['new:completed', 'new:completed', 'new:completed'],
          'payment_apply_batch: a batch everyone can pay is posted (set-based path)')
FROM payment_apply_batch((SELECT jsonb_agg(jsonb_set(x, '{payer}', '"rich"') ORDER BY n)
                          FROM jsonb_array_elements(pg_temp.batch('x', 'y', 'z'))
                               WITH ORDINALITY j(x, n))) r;
SELECT is((SELECT array_agg(e.balance_after ORDER BY t.id) FROM entries e
           JOIN transfers t ON t.id = e.transfer_id
           WHERE e.account_id = 'rich' AND t.kind = 'payment'),
          ARRAY[990, 970, 940]::bigint[],
          'payment_apply_batch: set-based, each entry carries the balance after it, in queue order');
-- the entries' running balances follow the queue order
SELECT is((SELECT array_agg(e.balance_after ORDER BY e.id) FROM entries e
           WHERE e.account_id = 'payer'),
          ARRAY[100, 40, 10, 5]::bigint[],
          'payment_apply_batch: each entry carries the balance after it, in queue order');
SELECT is((SELECT sum(balance) FROM accounts WHERE currency = 'EUR'), 0::numeric,
          'payment_apply_batch: per currency the balances sum to zero');

SELECT * FROM finish();
ROLLBACK;
