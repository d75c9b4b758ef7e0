-- tests/sql/lib/ledger.sql: session helpers (pg_temp) that the SQL suites
-- share; tests/sql/run.sh loads every file of tests/sql/lib/ before a
-- suite, in the suite's session.

-- pg_temp.post(ref, kind, debit, credit, amount): a setup transfer in EUR
-- through ledger_post that must be posted (raises otherwise: a suite's
-- setup that silently failed would make its checks prove nothing).
CREATE OR REPLACE FUNCTION pg_temp.post(p_ref text, p_kind text, p_debit text, p_credit text,
                                        p_amount bigint)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    st text;
BEGIN
    SELECT status INTO st FROM ledger_post(p_ref, p_kind, p_debit, p_credit, p_amount, 'EUR');
    IF st <> 'posted' THEN
        RAISE EXCEPTION 'setup: % % not posted: %', p_kind, p_ref, st;
    END IF;
    RETURN st;
END $$;

-- pg_temp.bal(account): its balance.
CREATE OR REPLACE FUNCTION pg_temp.bal(p_id text) RETURNS bigint LANGUAGE sql AS $$
    SELECT balance FROM accounts WHERE id = p_id
$$;

-- pg_temp.b(element, ...): a batch, the elements in queue order.
CREATE OR REPLACE FUNCTION pg_temp.b(VARIADIC els jsonb[]) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_agg(u.x ORDER BY u.n) FROM unnest(els) WITH ORDINALITY u(x, n)
$$;
