-- refund_apply_batch(batch, window_s): every verdict and outcome of the
-- refund stage, at its boundaries (docs/ledger.md#refunds,
-- docs/contract.md#refund-failure-reasons): a refund_id is new once, then
-- a duplicate (same payload) or a conflict (another payload); a payment's
-- completed refunds add up to at most its amount (the exact remaining
-- amount completes, one minor unit more is refund_exceeds_payment) and a
-- failed refund uses none of it; the payee's funds are checked down to
-- -overdraft_limit; a frozen account, a payer pushed past the bigint
-- maximum and a payment never posted are refusals, recorded in `refunds`,
-- that move nothing; a completed refund is one transfer payee -> payer
-- whose two entries sum to zero, netted in the payment's open batch, else
-- in the payee's next one. Results come back in queue order. Batches are
-- built as common/stage.c and workers/refund/refund.c build them.
BEGIN;
SELECT plan(46);

INSERT INTO accounts (id, currency, kind, overdraft_limit) VALUES
    ('cust', 'EUR', 'customer', 0), ('cust9', 'EUR', 'customer', 0), ('poor', 'EUR', 'customer', 0),
    ('shop', 'EUR', 'merchant', 0), ('shop2', 'EUR', 'merchant', 30), ('shop3', 'EUR', 'merchant', 0),
    ('shop4', 'EUR', 'merchant', 0), ('shop5', 'EUR', 'merchant', 0),
    ('big', 'GBP', 'customer', 0), ('shopg', 'GBP', 'merchant', 1),
    ('sys:funding:EUR', 'EUR', 'system', 0), ('sys:funding:GBP', 'GBP', 'system', 0);
SELECT count(*) AS setup FROM (SELECT ledger_post('f-cust', 'funding', 'sys:funding:EUR', 'cust', 1000, 'EUR')
                               UNION ALL SELECT ledger_post('f-cust9', 'funding', 'sys:funding:EUR', 'cust9', 100, 'EUR')
                               UNION ALL SELECT ledger_post('f-shop', 'funding', 'sys:funding:EUR', 'shop', 1000, 'EUR')
                               UNION ALL SELECT ledger_post('f-big', 'funding', 'sys:funding:GBP', 'big', 10, 'GBP')) x;

-- one refund.requested of a batch, as stage_batch_json and refund_element
-- write it (the hash stands for the SHA-256 of the canonical payload)
CREATE FUNCTION pg_temp.r(p_id text, p_payment text, p_amount numeric, p_reason text DEFAULT NULL)
RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('key', p_id, 'hash', md5(pl::text), 'payload', pl::text) || pl
    FROM (SELECT jsonb_strip_nulls(jsonb_build_object('refund_id', p_id, 'payment_id', p_payment,
                                                      'amount', p_amount, 'reason', p_reason)) AS pl) x
$$;
-- a payment.requested (payment stage) / payment.completed (settlement stage)
CREATE FUNCTION pg_temp.p(p_id text, p_payer text, p_payee text, p_amount bigint,
                          p_cur text DEFAULT 'EUR') RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('key', p_id, 'hash', 'h' || p_id, 'payload', '{}', 'payment_id', p_id,
                              'payer', p_payer, 'payee', p_payee, 'amount', p_amount,
                              'currency', p_cur,
                              'posted_ms', floor(extract(epoch FROM now()) * 1000)::bigint)
$$;
-- every decision of a batch, kept for the tests; an error is a result too
-- (the suite goes on, and the failing test shows the SQLSTATE and message)
CREATE TEMP TABLE rr (label text, ord integer, verdict text, outcome text, transfer_id bigint,
                      payer text, payee text, currency text, refunded_total bigint,
                      remaining bigint, batch_id text, prior_payload text) ON COMMIT DROP;
CREATE FUNCTION pg_temp.refund(p_label text, p_batch jsonb) RETURNS text[] LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rr SELECT p_label, x.* FROM refund_apply_batch(p_batch, 3600) x;
    RETURN ARRAY(SELECT r.verdict || coalesce(':' || r.outcome, '') FROM rr r
                 WHERE r.label = p_label ORDER BY r.ord);
EXCEPTION WHEN OTHERS THEN
    RETURN ARRAY['error ' || SQLSTATE || ': ' || SQLERRM];
END;
$$;
-- the id of a payee's EUR batch of this window (+ offset_s)
CREATE FUNCTION pg_temp.wb(p_payee text, p_offset_s integer DEFAULT 0) RETURNS text
LANGUAGE sql AS $$
    SELECT settlement_batch_id(p_payee, 'EUR',
                               to_timestamp(floor(extract(epoch FROM now()) / 3600) * 3600 + p_offset_s))
$$;

-- the payments refunded below, posted by the payment stage; p-short is
-- refused (poor has nothing), so it has no payment transfer
SELECT count(*) AS setup FROM payment_apply_batch(pg_temp.b(
    pg_temp.p('p1', 'cust', 'shop', 100), pg_temp.p('p3', 'cust', 'shop2', 40),
    pg_temp.p('p-nb', 'cust', 'shop3', 60), pg_temp.p('p-fz', 'cust', 'shop4', 20),
    pg_temp.p('p-fp', 'cust9', 'shop3', 10), pg_temp.p('p-cm', 'cust', 'shop5', 10),
    pg_temp.p('p-short', 'poor', 'shop', 5), pg_temp.p('p-big', 'big', 'shopg', 10, 'GBP')));
-- p1 and p3 reach the settlement stage; p3's batch is closed (paid out:
-- shop2 is back to 0); the others are in no batch
SELECT count(*) AS setup FROM settlement_apply_batch(pg_temp.b(pg_temp.p('p1', 'cust', 'shop', 100),
                                               pg_temp.p('p3', 'cust', 'shop2', 40)), 3600);
SELECT count(*) AS setup FROM settlement_close(pg_temp.wb('shop2'), 1, 'test');
-- GBP: big 5 below the bigint maximum, shopg 5 (overdraft 1), the funding
-- account at -max (the three still sum to zero)
UPDATE accounts SET balance = balance + (9223372036854775807 - 5) WHERE id = 'big';
UPDATE accounts SET balance = balance - 5 WHERE id = 'shopg';
UPDATE accounts SET balance = balance - (9223372036854775807 - 10) WHERE id = 'sys:funding:GBP';

-- a partial refund of a payment whose batch is open
SELECT is(pg_temp.refund('a', pg_temp.b(pg_temp.r('rA1', 'p1', 30, 'damaged'))), ARRAY['new:completed'],
          'refund_apply_batch: a refund within its payment is new and completed');
SELECT is((SELECT (payer, payee, currency, refunded_total, remaining)::text FROM rr WHERE label = 'a'),
          '(cust,shop,EUR,30,70)',
          'refund_apply_batch: a completed refund names the payment''s payer, payee, currency, refunded_total and remaining');
SELECT is((SELECT (t.kind, t.debit_account, t.credit_account, t.amount, t.currency)::text
           FROM transfers t JOIN rr ON rr.transfer_id = t.id WHERE rr.label = 'a' AND t.ref = 'rA1'),
          '(refund,shop,cust,30,EUR)',
          'refund_apply_batch: a refund is one transfer of kind refund, ref = refund_id, from the payee to the payer');
SELECT is((SELECT array_agg(e.account_id || ':' || e.amount || ':' || e.balance_after ORDER BY e.id)
           FROM entries e JOIN transfers t ON t.id = e.transfer_id WHERE t.ref = 'rA1' AND t.kind = 'refund'),
          ARRAY['shop:-30:1070', 'cust:30:' || pg_temp.bal('cust')],
          'refund_apply_batch: a refund has two entries, -amount on the payee and +amount on the payer, with the balances after');
SELECT is((pg_temp.bal('shop'), pg_temp.bal('cust'))::text, '(1070,800)',
          'refund_apply_batch: a refund moves the payee''s and the payer''s balances by its amount');
SELECT is((SELECT (r.payment_id, r.amount, r.reason, r.outcome, r.transfer_id = rr.transfer_id, r.batch_id)::text
           FROM refunds r, rr WHERE r.refund_id = 'rA1' AND rr.label = 'a'),
          '(p1,30,damaged,completed,t,' || pg_temp.wb('shop') || ')',
          'refund_apply_batch: a completed refund is recorded in refunds with its transfer and batch');
SELECT is((SELECT batch_id FROM rr WHERE label = 'a'), (SELECT batch_id FROM settlement_items WHERE payment_id = 'p1'),
          'refund_apply_batch: a refund of a payment whose batch is open is netted in that batch');
SELECT is((SELECT (refunds, refund_count)::text FROM settlement_batches WHERE id = pg_temp.wb('shop')), '(30,1)',
          'refund_apply_batch: the netting batch''s refunds and refund_count grow by the refund');

-- partial refunds add up; 70 is left of p1 (shop has the funds for more)
SELECT is(pg_temp.refund('b', pg_temp.b(pg_temp.r('rB1', 'p1', 50), pg_temp.r('rB2', 'p1', 21),
                                        pg_temp.r('rB3', 'p1', 20), pg_temp.r('rB4', 'p1', 1))),
          ARRAY['new:completed', 'new:refund_exceeds_payment', 'new:completed', 'new:refund_exceeds_payment'],
          'refund_apply_batch: a refund never exceeds what is left of its payment: exactly the remaining amount completes, one minor unit more is refund_exceeds_payment');
SELECT is((SELECT array_agg(coalesce(refunded_total || '/' || remaining, '-') ORDER BY ord) FROM rr WHERE label = 'b'),
          ARRAY['80/20', '-', '100/0', '-'],
          'refund_apply_batch: each refund of a batch sees the refunds before it (refunded_total/remaining, in queue order)');
SELECT is((SELECT array_agg(coalesce(t.id::text, '-') || ':' || r.outcome || ':' || coalesce(r.batch_id, '-') ORDER BY r.refund_id)
           FROM refunds r LEFT JOIN transfers t ON t.ref = r.refund_id AND t.kind = 'refund'
           WHERE r.refund_id IN ('rB2', 'rB4')),
          ARRAY['-:refund_exceeds_payment:-', '-:refund_exceeds_payment:-'],
          'refund_apply_batch: refund_exceeds_payment is recorded in refunds and posts nothing');
SELECT is((SELECT sum(amount) FROM refunds WHERE payment_id = 'p1' AND outcome = 'completed'), 100::numeric,
          'refund_apply_batch: a payment''s completed refunds add up to exactly its amount, never more');
SELECT is((pg_temp.bal('shop'), (SELECT (refunds, refund_count) FROM settlement_batches WHERE id = pg_temp.wb('shop')))::text,
          '(1000,"(100,3)")',
          'refund_apply_batch: only completed refunds move the payee and are netted in the batch');

-- the same refund again: duplicate; another payload under its refund_id: conflict
SELECT is(pg_temp.refund('c', pg_temp.b(pg_temp.r('rB1', 'p1', 50), pg_temp.r('rB2', 'p1', 21))),
          ARRAY['duplicate:completed', 'duplicate:refund_exceeds_payment'],
          'refund_apply_batch: a refund_id decided before, same payload, is a duplicate with its first outcome');
SELECT is(pg_temp.refund('d', pg_temp.b(pg_temp.r('rB1', 'p1', 49))), ARRAY['conflict:completed'],
          'refund_apply_batch: another payload under a decided refund_id is a conflict');
SELECT is((SELECT prior_payload FROM rr WHERE label = 'd'), pg_temp.r('rB1', 'p1', 50) ->> 'payload',
          'refund_apply_batch: a conflict returns the first payload');
SELECT is((SELECT count(*) FROM transfers WHERE ref = 'rB1' AND kind = 'refund')
          || ':' || pg_temp.bal('shop') || ':' || (SELECT refunds FROM settlement_batches WHERE id = pg_temp.wb('shop')),
          '1:1000:100',
          'refund_apply_batch: a duplicate or a conflict moves nothing and nets nothing');

-- p-nb (60, shop3) is in no batch yet: the payee's batch of the current window nets it
SELECT is(pg_temp.refund('e', pg_temp.b(pg_temp.r('rC', 'p-nb', 10), pg_temp.r('rC', 'p-nb', 10))),
          ARRAY['new:completed', 'duplicate:completed'],
          'refund_apply_batch: a refund_id twice in one batch is new, then a duplicate');
SELECT is((SELECT count(*) FROM transfers WHERE ref = 'rC' AND kind = 'refund') || ':' || pg_temp.bal('shop3'),
          '1:60',
          'refund_apply_batch: a refund_id twice in one batch posts once');
SELECT is((SELECT batch_id FROM rr WHERE label = 'e' AND ord = 1), pg_temp.wb('shop3'),
          'refund_apply_batch: a refund of a payment in no batch is netted in the payee''s batch of the current window');
SELECT is((SELECT (status, refunds, refund_count, count)::text FROM settlement_batches WHERE id = pg_temp.wb('shop3')),
          '(open,10,1,0)',
          'refund_apply_batch: ... which it creates open, holding the refund only');

-- a payment never posted: unknown, or refused by the payment stage
SELECT is(pg_temp.refund('f', pg_temp.b(pg_temp.r('rD1', 'nope', 5), pg_temp.r('rD2', 'p-short', 5))),
          ARRAY['new:payment_not_completed', 'new:payment_not_completed'],
          'refund_apply_batch: a refund of an unknown or refused payment is payment_not_completed');
SELECT is((SELECT array_agg(r.payment_id || ':' || r.outcome || ':' || (r.transfer_id IS NULL AND r.batch_id IS NULL) ORDER BY r.refund_id)
           FROM refunds r WHERE r.refund_id IN ('rD1', 'rD2')),
          ARRAY['nope:payment_not_completed:true', 'p-short:payment_not_completed:true'],
          'refund_apply_batch: payment_not_completed is recorded in refunds (no transfer, no batch)');

-- p3 (40, shop2) was paid out: shop2 stands at 0, overdraft 30
SELECT is(pg_temp.refund('g', pg_temp.b(pg_temp.r('rE1', 'p3', 31), pg_temp.r('rE2', 'p3', 30),
                                        pg_temp.r('rE3', 'p3', 1))),
          ARRAY['new:insufficient_funds', 'new:completed', 'new:insufficient_funds'],
          'refund_apply_batch: the payee pays a refund down to exactly -overdraft_limit, one minor unit past it is insufficient_funds');
SELECT is(pg_temp.bal('shop2'), -30::bigint,
          'refund_apply_batch: the payee stands at exactly -overdraft_limit');
SELECT is((SELECT refunded_total || '/' || remaining FROM rr WHERE label = 'g' AND ord = 2), '30/10',
          'refund_apply_batch: a failed refund uses none of its payment''s amount');
SELECT is((SELECT batch_id FROM rr WHERE label = 'g' AND ord = 2), pg_temp.wb('shop2', 3600),
          'refund_apply_batch: a refund of a payment whose batch is closed is netted in the payee''s next batch');
SELECT is((SELECT array_agg((status, refunds, refund_count)::text ORDER BY window_start) FROM settlement_batches WHERE payee = 'shop2'),
          ARRAY['(closed,0,0)', '(open,30,1)'],
          'refund_apply_batch: a closed batch is never changed by a refund');
SELECT is((SELECT count(*) FROM transfers WHERE ref IN ('rE1', 'rE3')), 0::bigint,
          'refund_apply_batch: insufficient_funds posts nothing');

-- frozen accounts; the order of the checks
UPDATE accounts SET status = 'frozen' WHERE id IN ('shop4', 'cust9');
SELECT is(pg_temp.refund('h', pg_temp.b(pg_temp.r('rF1', 'p-fz', 21), pg_temp.r('rF2', 'p-fz', 20),
                                        pg_temp.r('rF3', 'p-fp', 5))),
          ARRAY['new:refund_exceeds_payment', 'new:account_frozen', 'new:account_frozen'],
          'refund_apply_batch: a frozen payee or payer is account_frozen, checked after refund_exceeds_payment');
SELECT is((pg_temp.bal('shop4'), pg_temp.bal('cust9'), (SELECT count(*) FROM transfers WHERE ref IN ('rF1', 'rF2', 'rF3')))::text,
          '(20,90,0)', 'refund_apply_batch: account_frozen moves nothing');

-- the payer's balance at the bigint limit (GBP: big at max - 5, shopg at 5, overdraft 1)
SELECT is(pg_temp.refund('i', pg_temp.b(pg_temp.r('rG1', 'p-big', 6), pg_temp.r('rG2', 'p-big', 5))),
          ARRAY['new:balance_overflow', 'new:completed'],
          'refund_apply_batch: a refund taking the payer past the bigint maximum is balance_overflow, up to it completes');
SELECT is((pg_temp.bal('big'), pg_temp.bal('shopg'))::text, '(9223372036854775807,0)',
          'refund_apply_batch: the payer stands at exactly the bigint maximum, never wrapped');
SELECT is((SELECT outcome || ':' || (transfer_id IS NULL) FROM refunds WHERE refund_id = 'rG1'), 'balance_overflow:true',
          'refund_apply_batch: balance_overflow is recorded in refunds and posts nothing');

-- queue order across payments and verdicts: 50 is left of p-nb
SELECT is(pg_temp.refund('j', pg_temp.b(pg_temp.r('rH1', 'p-nb', 50), pg_temp.r('rC', 'p-nb', 10),
                                        pg_temp.r('rH2', 'nope', 1), pg_temp.r('rH3', 'p-nb', 1),
                                        pg_temp.r('rA1', 'p1', 31))),
          ARRAY['new:completed', 'duplicate:completed', 'new:payment_not_completed',
                'new:refund_exceeds_payment', 'conflict:completed'],
          'refund_apply_batch: one row per element, in queue order, whatever its verdict');
SELECT is((SELECT array_agg(ord ORDER BY ord) FROM rr WHERE label = 'j'), ARRAY[1, 2, 3, 4, 5],
          'refund_apply_batch: ord is the element''s position in the batch');

-- amounts the decoder never lets through: an error, never a posting
SELECT throws_ok($$SELECT * FROM refund_apply_batch(pg_temp.b(pg_temp.r('rZ0', 'p-fz', 0)), 3600)$$,
                 '23514', 'new row for relation "refunds" violates check constraint "refunds_amount_check"',
                 'refund_apply_batch: an amount of 0 is refused by refunds_amount_check (23514), never recorded');
UPDATE accounts SET status = 'active' WHERE id IN ('shop4', 'cust9');
SELECT throws_ok($$SELECT * FROM refund_apply_batch(pg_temp.b(pg_temp.r('rZ0', 'p-fz', 0)), 3600)$$,
                 '23514', 'new row for relation "transfers" violates check constraint "transfers_amount_check"',
                 'refund_apply_batch: an amount of 0 is refused by transfers_amount_check (23514), never posted');
SELECT throws_ok($$SELECT * FROM refund_apply_batch(pg_temp.b(pg_temp.r('rZ1', 'p-fz', -5)), 3600)$$,
                 '23514', 'new row for relation "transfers" violates check constraint "transfers_amount_check"',
                 'refund_apply_batch: a negative amount (money from the payer to the payee) is refused (23514), never posted');
SELECT throws_ok($$SELECT * FROM refund_apply_batch(pg_temp.b(pg_temp.r('rZ2', 'p-fz', 9223372036854775808)), 3600)$$,
                 '22003', 'value "9223372036854775808" is out of range for type bigint',
                 'refund_apply_batch: an amount past the bigint maximum is an error (22003), never wrapped');
SELECT is((SELECT count(*) FROM refunds WHERE refund_id LIKE 'rZ%') + (SELECT count(*) FROM processed WHERE payment_id LIKE 'rZ%'),
          0::bigint, 'refund_apply_batch: a batch that fails leaves no refund and no processed row');
SELECT is(pg_temp.refund('k', pg_temp.b(pg_temp.r('rZ3', 'p-fz', 20))), ARRAY['new:completed'],
          'refund_apply_batch: the payment is whole after those errors: its full amount completes');

-- the payment's accounts cannot change currency: should the ledger say so, it raises
UPDATE accounts SET currency = 'USD' WHERE id = 'shop5';
SELECT throws_ok($$SELECT * FROM refund_apply_batch(pg_temp.b(pg_temp.r('rM', 'p-cm', 5)), 3600)$$,
                 'P0001', 'refund rM of payment p-cm: the ledger says currency_mismatch',
                 'refund_apply_batch: a ledger refusal that is no refund outcome (currency_mismatch) raises, records nothing');
UPDATE accounts SET currency = 'EUR' WHERE id = 'shop5';

-- the books: zero sum, and the batches net exactly their completed refunds
SELECT is((SELECT count(*) FROM (SELECT t.id FROM transfers t JOIN entries e ON e.transfer_id = t.id
                                 WHERE t.kind = 'refund' GROUP BY t.id
                                 HAVING count(*) <> 2 OR sum(e.amount) <> 0) x), 0::bigint,
          'refund_apply_batch: every refund transfer has two entries summing to zero');
SELECT is((SELECT array_agg(currency || ':' || s ORDER BY currency)
           FROM (SELECT currency, sum(balance) AS s FROM accounts GROUP BY currency) x),
          ARRAY['EUR:0', 'GBP:0'], 'refund_apply_batch: per currency the balances sum to zero');
SELECT is((SELECT count(*) FROM settlement_batches b
           CROSS JOIN LATERAL (SELECT coalesce(sum(r.amount), 0) AS s, count(*) AS n FROM refunds r
                               WHERE r.batch_id = b.id AND r.outcome = 'completed') r
           WHERE b.refunds <> r.s OR b.refund_count <> r.n), 0::bigint,
          'refund_apply_batch: a batch''s refunds and refund_count are those of its completed refunds');

SELECT * FROM finish();
ROLLBACK;
