-- ledger_post(ref, kind, debit, credit, amount, currency): every status it
-- returns, in the order it checks them, and what each leaves behind
-- (docs/ledger.md#functions): a refusal is a status, never an error, and
-- moves nothing.
BEGIN;
SELECT plan(20);

INSERT INTO accounts (id, currency, kind, overdraft_limit) VALUES
    ('alice', 'EUR', 'customer', 0), ('bob', 'EUR', 'merchant', 0),
    ('carol', 'USD', 'customer', 0), ('dave', 'EUR', 'customer', 50),
    ('sys:funding:EUR', 'EUR', 'system', 0), ('sys:withdrawals:EUR', 'EUR', 'system', 0);
INSERT INTO accounts (id, currency, status) VALUES ('frozen', 'EUR', 'frozen');

SELECT is((SELECT status FROM ledger_post('f-1', 'funding', 'sys:funding:EUR', 'alice', 100, 'EUR')),
          'posted', 'ledger_post: funding from sys:funding is posted');
SELECT is((SELECT balance FROM accounts WHERE id = 'alice'), 100::bigint,
          'ledger_post: the credit moves the balance');
SELECT is((SELECT status FROM ledger_post('p-1', 'payment', 'alice', 'bob', 60, 'EUR')),
          'posted', 'ledger_post: a payment within the balance is posted');
SELECT is((SELECT count(*) FROM entries e JOIN transfers t ON t.id = e.transfer_id
           WHERE t.ref = 'p-1' AND t.kind = 'payment'), 2::bigint,
          'ledger_post: a transfer has exactly two entries');
SELECT is((SELECT sum(e.amount) FROM entries e JOIN transfers t ON t.id = e.transfer_id
           WHERE t.ref = 'p-1'), 0::numeric, 'ledger_post: its entries sum to zero');
SELECT is((SELECT status FROM ledger_post('p-1', 'payment', 'alice', 'bob', 60, 'EUR')),
          'duplicate', 'ledger_post: the same (ref, kind) again is a duplicate');
SELECT is((SELECT l.transfer_id FROM ledger_post('p-1', 'payment', 'alice', 'bob', 1, 'EUR') l),
          (SELECT id FROM transfers WHERE ref = 'p-1' AND kind = 'payment'),
          'ledger_post: a duplicate returns the first transfer, whatever its amount');
SELECT is((SELECT balance FROM accounts WHERE id = 'alice'), 40::bigint,
          'ledger_post: a duplicate moves nothing');
SELECT is((SELECT status FROM ledger_post('p-2', 'payment', 'alice', 'nobody', 1, 'EUR')),
          'unknown_account', 'ledger_post: an unknown account');
SELECT is((SELECT status FROM ledger_post('p-3', 'payment', 'sys:funding:EUR', 'bob', 1, 'EUR')),
          'unknown_account', 'ledger_post: a payment may not touch a system account');
SELECT is((SELECT status FROM ledger_post('w-1', 'withdrawal', 'sys:funding:EUR', 'sys:withdrawals:EUR', 1, 'EUR')),
          'unknown_account', 'ledger_post: a withdrawal may not take from a system account');
SELECT is((SELECT status FROM ledger_post('p-4', 'payment', 'alice', 'frozen', 1, 'EUR')),
          'account_frozen', 'ledger_post: a frozen account');
SELECT is((SELECT status FROM ledger_post('p-5', 'payment', 'alice', 'carol', 1, 'EUR')),
          'currency_mismatch', 'ledger_post: an account of another currency');
SELECT is((SELECT status FROM ledger_post('p-6', 'payment', 'alice', 'bob', 41, 'EUR')),
          'insufficient_funds', 'ledger_post: one minor unit past the balance (overdraft 0)');
SELECT is((SELECT status FROM ledger_post('p-7', 'payment', 'alice', 'bob', 40, 'EUR')),
          'posted', 'ledger_post: exactly the balance is posted (down to 0)');
SELECT is((SELECT status FROM ledger_post('p-8', 'payment', 'dave', 'bob', 50, 'EUR')),
          'posted', 'ledger_post: exactly the overdraft is posted (down to -overdraft_limit)');
SELECT is((SELECT status FROM ledger_post('p-9', 'payment', 'dave', 'bob', 1, 'EUR')),
          'insufficient_funds', 'ledger_post: one minor unit past -overdraft_limit is refused');
UPDATE accounts SET balance = 9223372036854775807 - 10 WHERE id = 'bob';
UPDATE accounts SET balance = balance - (9223372036854775807 - 10 - 150) WHERE id = 'sys:funding:EUR';
SELECT is((SELECT status FROM ledger_post('f-2', 'funding', 'sys:funding:EUR', 'bob', 11, 'EUR')),
          'balance_overflow', 'ledger_post: a credit past the bigint range is balance_overflow, no error');
SELECT is((SELECT status FROM ledger_post('f-3', 'funding', 'sys:funding:EUR', 'bob', 10, 'EUR')),
          'posted', 'ledger_post: a credit up to the bigint maximum is posted');
SELECT is((SELECT count(*) FROM transfers WHERE ref IN ('p-2', 'p-3', 'w-1', 'p-4', 'p-5', 'p-6', 'p-9', 'f-2')),
          0::bigint, 'ledger_post: no refusal leaves a transfer');

SELECT * FROM finish();
ROLLBACK;
