-- settlement_close(batch, token, closer) and settlement_hold(batch, error,
-- retry_ms) (docs/ledger.md#functions, #shortfalls-are-carried): a close
-- is refused unless its fencing token is newer than every one seen, and
-- then writes nothing; it posts the fee (payee -> sys:fees:CUR, the fees
-- capped at the gross) and the payout (payee -> sys:payout:CUR, net =
-- gross - fees - refunds - carried_in when positive), takes the payee's
-- carry whole, carries a shortfall out instead of paying it negative, and
-- closes the batch once: a closed batch is never closed again. A close the
-- ledger refuses (payee frozen, short of funds, below its floor by more
-- than it carries) raises and rolls back whole, carry included; the caller
-- holds the batch, which stays open, and the next try closes it once the
-- cause is fixed.
BEGIN;
SELECT plan(36);

-- windows of an hour from 2026-01-01 00:00 UTC: sb-<payee>-EUR-1767225600,
-- then -1767229200, -1767232800, -1767236400
INSERT INTO accounts (id, currency, kind, fee_bps, fee_fixed, overdraft_limit) VALUES
    ('payer', 'EUR', 'customer', 0, 0, 0),
    ('shop', 'EUR', 'merchant', 250, 0, 0),        -- 2.5 %
    ('tiny', 'EUR', 'merchant', 0, 30, 0),         -- fees_raw above the gross
    ('exact', 'EUR', 'merchant', 10000, 0, 0),     -- fees_raw equal to the gross
    ('nofee', 'EUR', 'merchant', 0, 0, 0),
    ('ref', 'EUR', 'merchant', 300, 0, 0),         -- 3 %, refunds and carries
    ('spender', 'EUR', 'merchant', 100, 0, 0),     -- pays its money away
    ('od', 'EUR', 'merchant', 0, 100, 50),         -- may overdraw 50
    ('od2', 'EUR', 'merchant', 0, 100, 50),
    ('sys:funding:EUR', 'EUR', 'system', 0, 0, 0);

-- pg_temp.post, pg_temp.bal, pg_temp.b: tests/sql/lib/ledger.sql
-- a payment paid (payer -> payee) and settled (settlement_apply_batch, as
-- the settlement-worker calls it) at posted_ms: its batch
CREATE FUNCTION pg_temp.settle(p_id text, p_payee text, p_amount bigint, p_posted_ms bigint)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    PERFORM pg_temp.post(p_id, 'payment', 'payer', p_payee, p_amount);
    SELECT * INTO r FROM settlement_apply_batch(
        jsonb_build_array(jsonb_build_object('key', p_id, 'hash', 'h-' || p_id, 'payload', '{}',
                                             'payment_id', p_id, 'payer', 'payer', 'payee', p_payee,
                                             'amount', p_amount, 'currency', 'EUR',
                                             'posted_ms', p_posted_ms)), 3600);
    IF r.verdict <> 'new' THEN
        RAISE EXCEPTION 'setup: settling %: %', p_id, r.verdict;
    END IF;
    RETURN r.batch_id;
END $$;
-- a refund of a payment, as the refund-worker asks it (refund_apply_batch):
-- the batch that nets it
CREATE FUNCTION pg_temp.refund(p_id text, p_payment text, p_amount bigint)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    SELECT * INTO r FROM refund_apply_batch(
        jsonb_build_array(jsonb_build_object('key', p_id, 'hash', 'h-' || p_id, 'payload', '{}',
                                             'refund_id', p_id, 'payment_id', p_payment,
                                             'amount', p_amount)), 3600);
    IF r.outcome <> 'completed' THEN
        RAISE EXCEPTION 'setup: refund %: %', p_id, r.outcome;
    END IF;
    RETURN r.batch_id;
END $$;
-- settlement_close as the settlement-worker calls it, its row as text:
-- 'no row', or what it raised (a failure then names the rule, not the SQL)
CREATE FUNCTION pg_temp.close(p_batch text, p_token bigint, p_closer text DEFAULT 'closer-1')
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    SELECT * INTO r FROM settlement_close(p_batch, p_token, p_closer);
    IF NOT FOUND THEN
        RETURN 'no row';
    END IF;
    RETURN format('%s count %s gross %s fees %s refunds %s in %s net %s out %s', r.status, r.count,
                  r.gross, r.fees, r.refunds, r.carried_in, r.net, r.carried_out);
EXCEPTION WHEN OTHERS THEN
    RETURN 'raised ' || SQLSTATE || ': ' || SQLERRM;
END $$;
-- a batch as its close left it
CREATE FUNCTION pg_temp.closed(p_batch text) RETURNS text LANGUAGE sql AS $$
    SELECT format('%s gross %s fees %s refunds %s in %s net %s out %s', status, gross, coalesce(fees::text, '-'),
                  refunds, carried_in, coalesce(net::text, '-'), coalesce(carried_out::text, '-'))
    FROM settlement_batches WHERE id = p_batch
$$;
-- the fee and payout transfers of a batch, as 'kind debit>credit amount'
CREATE FUNCTION pg_temp.postings(p_batch text) RETURNS text[] LANGUAGE sql AS $$
    SELECT coalesce(array_agg(t.kind || ' ' || t.debit_account || '>' || t.credit_account || ' '
                              || t.amount ORDER BY t.kind), '{}')
    FROM transfers t WHERE t.ref = p_batch AND t.kind IN ('fee', 'payout')
$$;
CREATE FUNCTION pg_temp.balance(p_account text) RETURNS bigint LANGUAGE sql AS $$
    SELECT balance FROM accounts WHERE id = p_account
$$;
CREATE FUNCTION pg_temp.carry(p_payee text) RETURNS bigint LANGUAGE sql AS $$
    SELECT coalesce((SELECT amount FROM settlement_carry WHERE payee = p_payee AND currency = 'EUR'), 0)
$$;

SELECT pg_temp.post('fund-payer', 'funding', 'sys:funding:EUR', 'payer', 1000000000);
SELECT pg_temp.settle('s1', 'shop', 10000, 1767225600000), pg_temp.settle('s2', 'shop', 199, 1767225700000);

-- 1. the fencing token: refused unless newer than every one seen
SELECT fence_advance('settle:sb-shop-EUR-1767225600', 5);  -- a closer took over with token 5
SELECT throws_ok($$SELECT * FROM settlement_close('sb-shop-EUR-1767225600', 5, 'old')$$, 'LL001', NULL,
                 'settlement_close: a token equal to the newest seen is refused (LL001)');
SELECT throws_ok($$SELECT * FROM settlement_close('sb-shop-EUR-1767225600', 4, 'old')$$, 'LL001', NULL,
                 'settlement_close: an older token is refused (LL001)');
SELECT is(pg_temp.closed('sb-shop-EUR-1767225600') || ' ' || pg_temp.postings('sb-shop-EUR-1767225600')::text
          || ' token ' || (SELECT token FROM lock_fences WHERE name = 'settle:sb-shop-EUR-1767225600'),
          'open gross 10199 fees - refunds 0 in 0 net - out - {} token 5',
          'settlement_close: a refused token writes nothing: the batch stays open, nothing is posted');

-- 2. closing
SELECT is(pg_temp.close('sb-shop-EUR-1767225600', 6),
          'closed count 2 gross 10199 fees 255 refunds 0 in 0 net 9944 out 0',
          'settlement_close: returns the closed batch: fees = least(fees_raw, gross), net = gross - fees');
SELECT is((SELECT format('%s by %s fence %s closed_at %s', pg_temp.closed(id), closed_by, fence,
                         CASE WHEN closed_at IS NULL THEN 'unset' ELSE 'set' END) FROM settlement_batches WHERE id = 'sb-shop-EUR-1767225600'),
          'closed gross 10199 fees 255 refunds 0 in 0 net 9944 out 0 by closer-1 fence 6 closed_at set',
          'settlement_close: the batch is closed, with who closed it, when, and under which token');
SELECT is(pg_temp.postings('sb-shop-EUR-1767225600'),
          ARRAY['fee shop>sys:fees:EUR 255', 'payout shop>sys:payout:EUR 9944'],
          'settlement_close: the fee goes to sys:fees:<CUR> and the net to sys:payout:<CUR>, from the payee, ref the batch id');
SELECT is((SELECT ARRAY[fee_transfer, payout_transfer] FROM settlement_batches WHERE id = 'sb-shop-EUR-1767225600'),
          ARRAY[(SELECT id FROM transfers WHERE kind = 'fee' AND ref = 'sb-shop-EUR-1767225600'),
                (SELECT id FROM transfers WHERE kind = 'payout' AND ref = 'sb-shop-EUR-1767225600')],
          'settlement_close: the batch points at its fee and payout transfers');
SELECT is(ARRAY[pg_temp.balance('shop'), pg_temp.balance('sys:fees:EUR'), pg_temp.balance('sys:payout:EUR')],
          ARRAY[0, 255, 9944]::bigint[],
          'settlement_close: the payee pays its gross out, fees and payout (balances)');
SELECT is((SELECT array_agg(kind ORDER BY id) FROM accounts WHERE id IN ('sys:fees:EUR', 'sys:payout:EUR')),
          ARRAY['system', 'system'],
          'settlement_close: sys:fees:<CUR> and sys:payout:<CUR> are made as system accounts');
SELECT is(pg_temp.close('sb-shop-EUR-1767225600', 7, 'closer-2'), 'no row',
          'settlement_close: a batch closed already returns no row');
SELECT is((SELECT format('%s by %s fence %s', pg_temp.closed(id), closed_by, fence) FROM settlement_batches
           WHERE id = 'sb-shop-EUR-1767225600') || ' ' || pg_temp.postings('sb-shop-EUR-1767225600')::text,
          'closed gross 10199 fees 255 refunds 0 in 0 net 9944 out 0 by closer-1 fence 6 '
          '{"fee shop>sys:fees:EUR 255","payout shop>sys:payout:EUR 9944"}',
          'settlement_close: closing a closed batch again posts nothing and changes nothing');
SELECT throws_ok($$SELECT * FROM settlement_close('sb-shop-EUR-1767225600', 7, 'closer-2')$$, 'LL001', NULL,
                 'settlement_close: a token is used up even by a close that found the batch closed');
SELECT is(pg_temp.close('sb-nobody-EUR-1767225600', 1), 'no row',
          'settlement_close: a batch that does not exist: no row');

-- 3. refunds and carries (ref: 3 %)
SELECT pg_temp.settle('r1', 'ref', 100, 1767225600000);            -- fee 3
SELECT pg_temp.refund('rf1', 'r1', 100);                            -- in full, batch open: nets there
SELECT is(pg_temp.close('sb-ref-EUR-1767225600', 1),
          'closed count 1 gross 100 fees 3 refunds 100 in 0 net 0 out 3',
          'settlement_close: a shortfall (gross - fees - refunds below 0) is never paid out: net 0, carried out');
SELECT is(ARRAY[pg_temp.carry('ref'), pg_temp.balance('ref')]::text[] || pg_temp.postings('sb-ref-EUR-1767225600'),
          ARRAY['3', '-3', 'fee ref>sys:fees:EUR 3'],
          'settlement_close: the shortfall is the payee''s carry; the fee takes it below zero by exactly that');
SELECT pg_temp.settle('r2', 'ref', 1000, 1767229200000);           -- fee 30
SELECT pg_temp.refund('rf2', 'r2', 200);
SELECT fence_advance('settle:sb-ref-EUR-1767229200', 3);
SELECT throws_ok($$SELECT * FROM settlement_close('sb-ref-EUR-1767229200', 3, 'old')$$, 'LL001', NULL,
                 'settlement_close: a stale token is refused before the carry is taken');
UPDATE accounts SET status = 'frozen' WHERE id = 'ref';
SELECT throws_ok($$SELECT * FROM settlement_close('sb-ref-EUR-1767229200', 4, 'closer-1')$$, 'P0001',
                 'fee transfer of batch sb-ref-EUR-1767229200 refused: account_frozen',
                 'settlement_close: a fee the ledger refuses (payee frozen) raises');
SELECT is(pg_temp.closed('sb-ref-EUR-1767229200') || ' carry ' || pg_temp.carry('ref') || ' '
          || pg_temp.postings('sb-ref-EUR-1767229200')::text,
          'open gross 1000 fees - refunds 200 in 0 net - out - carry 3 {}',
          'settlement_close: a refused close rolls back whole: the batch open, nothing posted, the carry still there');
UPDATE accounts SET status = 'active' WHERE id = 'ref';
SELECT is(pg_temp.close('sb-ref-EUR-1767229200', 5),
          'closed count 1 gross 1000 fees 30 refunds 200 in 3 net 767 out 0',
          'settlement_close: a close takes the payee''s carry whole as carried_in: net = gross - fees - refunds - carried_in');
SELECT is(ARRAY[pg_temp.carry('ref'), pg_temp.balance('ref')] || (SELECT array_agg(amount ORDER BY kind)
          FROM transfers WHERE ref = 'sb-ref-EUR-1767229200'),
          ARRAY[0, 0, 30, 767]::bigint[],
          'settlement_close: the carry taken is gone, and the payee paid fee and net from what it had');
SELECT pg_temp.settle('r3', 'ref', 100, 1767232800000);            -- fee 3
SELECT pg_temp.refund('rf3', 'r3', 100);
SELECT pg_temp.close('sb-ref-EUR-1767232800', 1);  -- carries 3 out
SELECT pg_temp.settle('r4', 'ref', 2, 1767236400000);              -- fee 0.06: 0
SELECT is(pg_temp.close('sb-ref-EUR-1767236400', 1)
          || ', carry ' || pg_temp.carry('ref') || ' balance ' || pg_temp.balance('ref'),
          'closed count 1 gross 2 fees 0 refunds 0 in 3 net 0 out 1, carry 1 balance -1',
          'settlement_close: a close that again nets below zero carries the rest on');
SELECT is(pg_temp.close('sb-ref-EUR-1767232800', 2, 'closer-2') || ', carry ' || pg_temp.carry('ref'),
          'no row, carry 1',
          'settlement_close: closing a closed batch again leaves the carry alone');

-- 4. the fee cap, and batches without fees or payments
SELECT pg_temp.settle('t1', 'tiny', 10, 1767225600000);            -- fee 30
SELECT is(pg_temp.close('sb-tiny-EUR-1767225600', 1),
          'closed count 1 gross 10 fees 10 refunds 0 in 0 net 0 out 0',
          'settlement_close: a closed batch''s fees are capped at its gross');
SELECT is(pg_temp.postings('sb-tiny-EUR-1767225600')
          || ARRAY[pg_temp.carry('tiny')::text, pg_temp.balance('tiny')::text,
                   (SELECT coalesce(payout_transfer::text, 'no payout') FROM settlement_batches
                    WHERE id = 'sb-tiny-EUR-1767225600')],
          ARRAY['fee tiny>sys:fees:EUR 10', '0', '0', 'no payout'],
          'settlement_close: fees capped at the gross take it whole: no payout, nothing carried');
SELECT pg_temp.settle('e1', 'exact', 77, 1767225600000);           -- fee 77
SELECT is(pg_temp.close('sb-exact-EUR-1767225600', 1),
          'closed count 1 gross 77 fees 77 refunds 0 in 0 net 0 out 0',
          'settlement_close: fees equal to the gross are kept whole (the cap''s boundary)');
SELECT pg_temp.settle('n1', 'nofee', 500, 1767225600000);
SELECT is(pg_temp.close('sb-nofee-EUR-1767225600', 1) || ' '
          || (SELECT coalesce(fee_transfer::text, 'no fee transfer') FROM settlement_batches
              WHERE id = 'sb-nofee-EUR-1767225600') || ' ' || pg_temp.postings('sb-nofee-EUR-1767225600')::text,
          'closed count 1 gross 500 fees 0 refunds 0 in 0 net 500 out 0 no fee transfer {"payout nofee>sys:payout:EUR 500"}',
          'settlement_close: a batch without fees posts no fee transfer and pays its gross out');
SELECT is(pg_temp.carry('ref'), 1::bigint,
          'settlement_close: a close takes its own payee''s carry only');
-- an empty batch, as a refund that then failed leaves one
SELECT b.id FROM settlement_next_batch('nofee', 'EUR', NULL, '2026-01-01 05:00+00', 3600) b;
SELECT is(pg_temp.close('sb-nofee-EUR-1767243600', 1) || ' ' || pg_temp.postings('sb-nofee-EUR-1767243600')::text,
          'closed count 0 gross 0 fees 0 refunds 0 in 0 net 0 out 0 {}',
          'settlement_close: an empty batch closes with nothing posted');

-- 5. held: the ledger refuses the payout, then the cause is fixed
SELECT pg_temp.settle('p1', 'spender', 1000, 1767225600000);       -- fee 10
SELECT pg_temp.post('spent', 'payment', 'spender', 'payer', 1000);
SELECT throws_ok($$SELECT * FROM settlement_close('sb-spender-EUR-1767225600', 1, 'closer-1')$$, 'P0001',
                 'payout transfer of batch sb-spender-EUR-1767225600 refused: insufficient_funds',
                 'settlement_close: a payout the ledger refuses (the payee spent the money) raises');
SELECT is(pg_temp.closed('sb-spender-EUR-1767225600') || ' ' || pg_temp.postings('sb-spender-EUR-1767225600')::text,
          'open gross 1000 fees - refunds 0 in 0 net - out - {}',
          'settlement_close: a refused payout rolls the fee back too');
SELECT settlement_hold('sb-spender-EUR-1767225600', 'payout refused: insufficient_funds', 60000);
SELECT ok((SELECT status = 'open' AND close_error = 'payout refused: insufficient_funds'
                  AND close_retry_at >= now() + interval '60 s'
                  AND close_retry_at <= clock_timestamp() + interval '60 s'
           FROM settlement_batches WHERE id = 'sb-spender-EUR-1767225600'),
          'settlement_hold: a held batch stays open, says why, and is not tried again before retry_ms');
SELECT settlement_hold('sb-shop-EUR-1767225600', 'late error', 60000);
SELECT is((SELECT coalesce(close_error, 'none') || ' ' || status FROM settlement_batches
           WHERE id = 'sb-shop-EUR-1767225600'),
          'none closed',
          'settlement_hold: a closed batch is never held');
SELECT pg_temp.post('refill', 'funding', 'sys:funding:EUR', 'spender', 1000);
SELECT is(pg_temp.close('sb-spender-EUR-1767225600', 2),
          'closed count 1 gross 1000 fees 10 refunds 0 in 0 net 990 out 0',
          'settlement_close: a held batch closes at the next try once its cause is fixed');

-- 6. the payee's floor: -overdraft_limit, less what it carries
SELECT pg_temp.settle('o1', 'od', 100, 1767225600000);             -- fee 100: net 0
SELECT pg_temp.post('od-spent', 'payment', 'od', 'payer', 150);     -- od at -50
SELECT throws_ok($$SELECT * FROM settlement_close('sb-od-EUR-1767225600', 1, 'closer-1')$$, 'P0001',
                 'closing batch sb-od-EUR-1767225600 would leave payee od at -150, below -50 (its overdraft '
                 'limit) by more than the 0 it carries',
                 'settlement_close: the fee may not take the payee below -overdraft_limit by more than it carries');
SELECT pg_temp.settle('o2', 'od2', 100, 1767225600000);            -- fee 100: net 0
SELECT pg_temp.post('od2-spent', 'payment', 'od2', 'payer', 50);    -- od2 at 50
SELECT is(pg_temp.close('sb-od2-EUR-1767225600', 1) || ', balance ' || pg_temp.balance('od2'),
          'closed count 1 gross 100 fees 100 refunds 0 in 0 net 0 out 0, balance -50',
          'settlement_close: the fee may take the payee down to -overdraft_limit exactly');

SELECT is((SELECT sum(balance) FROM accounts WHERE currency = 'EUR'), 0::numeric,
          'settlement_close: per currency the balances sum to zero');

SELECT * FROM finish();
ROLLBACK;
