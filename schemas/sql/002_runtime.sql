-- 002_runtime.sql: what the worker runtime needs for exactly-once effects
-- on at-least-once delivery (DESIGN.md section 3), and the payment stage.
--
-- processed: what each stage has done, under a unique (stage, payment_id),
--   written in the same transaction as the effects. A repeated payment_id
--   meets this row: same payload_hash = duplicate, other = conflict. payload
--   is the canonical request (to name the fields of a conflict).
-- outbox: every outgoing event, written in the same transaction, published
--   after commit, then marked sent; a periodic sweep republishes rows a
--   crash left unsent, claiming them so two workers never sweep the same row.

CREATE TABLE processed (
    stage        text NOT NULL,
    payment_id   text NOT NULL,
    payload_hash text NOT NULL,
    payload      text NOT NULL,
    outcome      text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stage, payment_id)
);

CREATE TABLE outbox (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stage         text NOT NULL,
    payment_id    text,                 -- NULL for batch events
    event_id      text NOT NULL,
    exchange      text NOT NULL,
    routing_key   text NOT NULL,
    body          text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    sent_at       timestamptz,
    claimed_by    text,
    claimed_until timestamptz
);
CREATE INDEX outbox_unsent_idx ON outbox (id) WHERE sent_at IS NULL;
CREATE INDEX outbox_payment_idx ON outbox (stage, payment_id);

-- payment_apply: the payment stage's decision for one payment, in queue
-- order inside the batch transaction.
--   verdict 'new'       : processed now; outcome 'completed' (transfer_id
--                         set) or the refusal reason of ledger_post
--   verdict 'duplicate' : processed before with the same payload; outcome
--                         and transfer_id are the original ones
--   verdict 'conflict'  : processed before with another payload;
--                         prior_payload is that payload
-- If another transaction holds an uncommitted row for the same payment_id,
-- the INSERT waits for it: the payment is still decided once.
CREATE FUNCTION payment_apply(p_id text, p_hash text, p_payload text, p_payer text,
                              p_payee text, p_amount bigint, p_currency text,
                              OUT verdict text, OUT outcome text, OUT transfer_id bigint,
                              OUT prior_payload text)
LANGUAGE plpgsql AS $$
DECLARE
    st text;
    prior_hash text;
BEGIN
    INSERT INTO processed (stage, payment_id, payload_hash, payload, outcome)
    VALUES ('payment', p_id, p_hash, p_payload, 'pending')
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        SELECT p.payload_hash, p.outcome, p.payload INTO prior_hash, outcome, prior_payload
        FROM processed p WHERE p.stage = 'payment' AND p.payment_id = p_id;
        verdict := CASE WHEN prior_hash = p_hash THEN 'duplicate' ELSE 'conflict' END;
        SELECT t.id INTO transfer_id FROM transfers t WHERE t.kind = 'payment' AND t.ref = p_id;
        RETURN;
    END IF;
    SELECT l.status, l.transfer_id INTO st, transfer_id
    FROM ledger_post(p_id, 'payment', p_payer, p_payee, p_amount, p_currency) l;
    -- 'duplicate' here means a payment transfer with this ref exists without
    -- a processed row (posted by hand): it is the payment's transfer
    outcome := CASE WHEN st IN ('posted', 'duplicate') THEN 'completed' ELSE st END;
    IF outcome <> 'completed' THEN
        transfer_id := NULL;
    END IF;
    UPDATE processed p SET outcome = payment_apply.outcome
    WHERE p.stage = 'payment' AND p.payment_id = p_id;
    verdict := 'new';
END;
$$;
