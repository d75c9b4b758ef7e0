-- processed_expired(stage, keys) -> setof text: the keys of a stage that
-- were processed so long ago that their processed row has expired
-- (retention_expire) while the books still hold their outcome. A message
-- with such a key is a late duplicate: the stage rejects it as
-- duplicate_expired and never processes it again (docs/ledger.md#retention).
--
-- The books of each stage, and the time of their row (never earlier than
-- the processed row's created_at: the same transaction wrote both): risk,
-- risk_decisions (decided_at); payment, a transfer of kind payment or a
-- payment_failures row; settlement, settlement_items (added_at); refund,
-- refunds; funds, deposits and withdrawals (a return: its returned_at).
-- A key is expired when its books row is older than the retention horizon
-- (plus an hour: a transaction that began before a partition's end and
-- wrote its books row later, risk's decided_at being clock_timestamp())
-- and no processed row of it is left. While nothing has expired the
-- horizon is -infinity, and no key is: the function returns at once,
-- without looking the keys up.
--
-- Called in the batch's transaction before processed_claim. It first takes
-- processed's ACCESS SHARE lock (held to the commit: no partition is
-- dropped until then), and only then reads the horizon: VOLATILE, so each
-- statement has a snapshot taken after that lock, and a drop that
-- committed while this transaction waited for it is seen. A books row,
-- once there, stays.
CREATE OR REPLACE FUNCTION processed_expired(p_stage text, p_keys text[]) RETURNS SETOF text
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    h timestamptz;
BEGIN
    LOCK TABLE processed IN ACCESS SHARE MODE;
    h := retention_horizon() + interval '1 hour';
    IF h = '-infinity' THEN
        RETURN; -- nothing has expired yet: no books lookup can find a key
    END IF;
    RETURN QUERY
    SELECT k.k FROM unnest(p_keys) k(k)
    WHERE CASE p_stage
          WHEN 'risk' THEN
              EXISTS (SELECT 1 FROM risk_decisions d WHERE d.payment_id = k.k AND d.decided_at < h)
          WHEN 'payment' THEN
              EXISTS (SELECT 1 FROM transfers t
                      WHERE t.ref = k.k AND t.kind = 'payment' AND t.created_at < h)
              OR EXISTS (SELECT 1 FROM payment_failures f WHERE f.payment_id = k.k AND f.failed_at < h)
          WHEN 'settlement' THEN
              EXISTS (SELECT 1 FROM settlement_items i WHERE i.payment_id = k.k AND i.added_at < h)
          WHEN 'refund' THEN
              EXISTS (SELECT 1 FROM refunds r WHERE r.refund_id = k.k AND r.created_at < h)
          WHEN 'funds' THEN CASE
              WHEN k.k LIKE 'deposit:%' THEN
                  EXISTS (SELECT 1 FROM deposits d
                          WHERE d.deposit_id = substr(k.k, 9) AND d.created_at < h)
              WHEN k.k LIKE 'withdrawal:%' THEN
                  EXISTS (SELECT 1 FROM withdrawals w
                          WHERE w.withdrawal_id = substr(k.k, 12) AND w.created_at < h)
              WHEN k.k LIKE 'return:%' THEN
                  EXISTS (SELECT 1 FROM withdrawals w
                          WHERE w.withdrawal_id = substr(k.k, 8) AND w.returned_at < h)
              ELSE false END
          ELSE false END
      AND NOT EXISTS (SELECT 1 FROM processed p WHERE p.payment_id = k.k AND p.stage = p_stage);
END;
$$;
