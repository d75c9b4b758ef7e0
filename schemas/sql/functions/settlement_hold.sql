-- settlement_hold(batch, error, retry_ms): records a refused close: the
-- batch stays open with close_error saying why, and closers skip it until
-- close_retry_at, so refused batches never starve the others of a closer.
-- Fixing the cause (unfreeze, fund) needs nothing more: the next try
-- closes it.
CREATE OR REPLACE FUNCTION settlement_hold(p_batch text, p_error text, p_retry_ms bigint)
RETURNS void
LANGUAGE sql AS $$
    UPDATE settlement_batches
    SET close_error = p_error,
        close_retry_at = clock_timestamp() + p_retry_ms * interval '1 millisecond'
    WHERE id = p_batch AND status = 'open';
$$;
