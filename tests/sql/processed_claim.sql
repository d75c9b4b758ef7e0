-- processed_claim(stage, batch): claims each key of a batch once per stage
-- (docs/ledger.md#processed-rows). Since processed is partitioned by time
-- no unique index says so: the function does, under class 3 advisory
-- locks, looking in every partition. Returns {key: ordinal of its first
-- occurrence} for the keys claimed now.
BEGIN;
SELECT plan(9);
-- a claim as text, or what it raised: a failure names the rule, not the SQL
CREATE FUNCTION pg_temp.claim(p_stage text, p_batch jsonb) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    RETURN processed_claim(p_stage, p_batch)::text;
EXCEPTION WHEN OTHERS THEN
    RETURN 'raised: ' || SQLERRM;
END $$;

SELECT is(processed_claim('payment', '[{"key": "k1", "hash": "h1", "payload": "{}"},
                                       {"key": "k2", "hash": "h2", "payload": "{}"},
                                       {"key": "k1", "hash": "h9", "payload": "{}"}]'),
          '{"k1": 1, "k2": 2}'::jsonb,
          'processed_claim: new keys are claimed, each at its first occurrence in the batch');
SELECT is((SELECT payload_hash FROM processed WHERE stage = 'payment' AND payment_id = 'k1'),
          'h1', 'processed_claim: the first occurrence''s payload is the one recorded');
SELECT is((SELECT outcome FROM processed WHERE stage = 'payment' AND payment_id = 'k2'),
          'pending', 'processed_claim: a claim is pending until its stage decides');
SELECT is(pg_temp.claim('payment', '[{"key": "k2", "hash": "h2", "payload": "{}"},
                                     {"key": "k3", "hash": "h3", "payload": "{}"}]'),
          '{"k3": 2}', 'processed_claim: a key claimed before is not claimed again');
SELECT is(processed_claim('risk', '[{"key": "k1", "hash": "h1", "payload": "{}"}]'),
          '{"k1": 1}'::jsonb, 'processed_claim: each stage claims its own keys');
-- a claim made in an older partition (yesterday: the legacy partition of
-- this fresh ledger holds every time before its migration)
INSERT INTO processed (stage, payment_id, payload_hash, payload, outcome, created_at)
VALUES ('payment', 'old-1', 'h', '{}', 'completed', now() - interval '1 day');
SELECT isnt((SELECT tableoid FROM processed WHERE payment_id = 'old-1'),
            (SELECT tableoid FROM processed WHERE payment_id = 'k1' AND stage = 'payment'),
            'processed_claim: (the old claim is in another partition than today''s)');
SELECT is(pg_temp.claim('payment', '[{"key": "old-1", "hash": "h", "payload": "{}"}]'),
          '{}',
          'processed_claim: a key claimed in an older partition is not claimed again');
SELECT is((SELECT count(*) FROM processed WHERE payment_id = 'old-1'), 1::bigint,
          'processed_claim: one row per key and stage, across partitions');
SELECT is(processed_claim('payment', '[]'), '{}'::jsonb,
          'processed_claim: an empty batch claims nothing');

SELECT * FROM finish();
ROLLBACK;
