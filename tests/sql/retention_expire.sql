-- retention_expire(window_s, archive_first) and retention_prepare
-- (docs/ledger.md#retention): a partition is dropped once it ends
-- window_s ago; never an outbox partition holding an event the broker has
-- not confirmed; with archive_first, only what an archive holds; the
-- partitions ahead come in pairs of the same bounds.
BEGIN;
SELECT plan(13);

-- ten days of daily partitions (tests/sql/lib/retention.sql)
SELECT pg_temp.past_partitions(10);
-- a processed row and its event 9 days old; an event 7.5 days old not yet
-- confirmed; one of 3 days (the partition of day i holds [now - i days,
-- now - (i - 1) days), about)
INSERT INTO processed (stage, payment_id, payload_hash, payload, outcome, created_at) VALUES
    ('payment', 'old', 'h', '{}', 'completed', now() - interval '9 days'),
    ('payment', 'young', 'h', '{}', 'completed', now() - interval '3 days');
INSERT INTO outbox (stage, payment_id, event_id, exchange, routing_key, body, created_at) VALUES
    ('payment', 'old', 'e1', 'x', 'payment.completed', '{}', now() - interval '9 days'),
    ('payment', 'unsent', 'e2', 'x', 'payment.completed', '{}', now() - interval '7 days 12 hours'),
    ('payment', 'young', 'e3', 'x', 'payment.completed', '{}', now() - interval '3 days');
INSERT INTO outbox_pending (id, stage, created_at)
SELECT id, stage, created_at FROM outbox WHERE event_id = 'e2';

-- archive first, and no archive: nothing goes
SELECT is((SELECT count(*) FROM retention_expire(604800, true) WHERE action = 'dropped'), 0::bigint,
          'retention_expire: with archive_first and no archive, nothing is dropped');
SELECT is((SELECT count(*) FROM retention_expire(604800, true)
           WHERE action LIKE 'kept: not archived yet%'), 3::bigint,
          'retention_expire: ... each processed partition past the window says it waits for an archive');
INSERT INTO retention_archives (before, location, manifest_sha256)
VALUES (now() - interval '9 days', '/a', 'x');
SELECT is((SELECT count(*) FROM retention_expire(604800, true)
           WHERE action = 'dropped' AND part LIKE 'processed%'), 1::bigint,
          'retention_expire: with archive_first, what ends by the archive''s before goes');
SELECT is((SELECT count(*) FROM processed WHERE payment_id = 'old'), 1::bigint,
          'retention_expire: ... not the partition of 9 days ago, which ends after it');

SELECT is((SELECT count(*) FROM retention_expire(604800, false)
           WHERE action = 'dropped' AND part LIKE 'processed%'), 2::bigint,
          'retention_expire: without archive_first, every processed partition past the window goes');
SELECT is((SELECT count(*) FROM processed), 1::bigint,
          'retention_expire: a processed row inside the window stays');
SELECT is((SELECT count(*) FROM outbox WHERE event_id = 'e1'), 0::bigint,
          'retention_expire: a confirmed event past the window goes with its partition');
SELECT is((SELECT count(*) FROM outbox WHERE event_id = 'e2'), 1::bigint,
          'retention_expire: an event the broker has not confirmed keeps its partition');
SELECT is((SELECT action FROM retention_expire(604800, false) WHERE part LIKE 'outbox%'),
          'kept: 1 event(s) not confirmed by the broker',
          'retention_expire: ... and says why');
DELETE FROM outbox_pending;
SELECT is((SELECT action FROM retention_expire(604800, false) WHERE part LIKE 'outbox%'),
          'dropped', 'retention_expire: once confirmed, it goes');
SELECT is((SELECT count(*) FROM outbox), 1::bigint, 'retention_expire: the young event stays');

-- partitions ahead: in pairs of the same bounds, up to ahead_s
SELECT ok(retention_prepare(3600, 864000) > 0, 'retention_prepare: creates what is missing ahead');
SELECT is((SELECT count(*) FROM retention_bounds('processed') p
           FULL JOIN retention_bounds('outbox') o ON o.lo = p.lo AND o.hi = p.hi
           WHERE p.part IS NULL OR o.part IS NULL), 0::bigint,
          'retention_prepare: processed and outbox have the same bounds');

SELECT * FROM finish();
ROLLBACK;
