-- 002_runtime.sql: what the worker runtime needs for exactly-once effects
-- on at-least-once delivery (docs/contract.md#idempotency), and the payment stage.
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

-- payment_apply() was created here; 010 folded it into payment_apply_batch()
-- and dropped it.
-- supersedes: d4c2231f175364458cf5bb5c016896947ab4a23a5026be2cd614f2f41431fb0a (its text before the functions moved out)
