-- 017_retention.sql - the bookkeeping is partitioned by time, so that
-- what has outlived its window is dropped whole; and failed payments join
-- the books, so that a late duplicate can still be answered from them.
--
-- processed and outbox grew by a row per message for ever (about two
-- thirds of the database). They become tables PARTITIONED BY RANGE
-- (created_at). Their rows so far stay where they are: each old table is
-- renamed <table>_legacy and attached as the partition of every time
-- before this migration ran; retention_prepare() (functions/) then
-- creates the partitions of the time after it, and retention_expire()
-- drops the partitions older than retention.window_s, the legacy one
-- included (docs/ledger.md#retention).
--
-- A partitioned table's unique keys must hold the partition key:
-- processed's primary key becomes (payment_id, stage, created_at) and no
-- longer says that a key is claimed once; processed_claim() says it, under
-- a class 3 advisory lock per key (docs/ledger.md#locks, rule 3).
-- PostgreSQL 15 has no identity column on a partitioned table: outbox.id
-- takes its values from a sequence, outbox_id_seq, that continues the
-- identity's numbers.
--
-- Pause: the tables are locked while the migration runs; attaching builds
-- the new primary key index on each legacy table. Stop the workers first
-- (docs/operations.md#retention): a worker of the build before this one
-- claims keys through the unique index that is gone.

-- What `ledgerctl archive` wrote: with retention.archive_first, the
-- retention job drops only partitions that end at or before the newest
-- `before` archived here.
CREATE TABLE retention_archives (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    before          timestamptz NOT NULL,  -- every row older than this was written
    location        text NOT NULL,         -- the directory, as the operator named it
    manifest_sha256 text NOT NULL,
    archived_at     timestamptz NOT NULL DEFAULT now()
);

LOCK TABLE processed, outbox IN ACCESS EXCLUSIVE MODE;

CREATE TABLE payment_failures (
    payment_id text PRIMARY KEY,
    reason     text NOT NULL,               -- payment.failed's reason
    failed_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO payment_failures (payment_id, reason, failed_at)
SELECT payment_id, outcome, created_at FROM processed
WHERE stage = 'payment' AND outcome NOT IN ('completed', 'pending');

ALTER TABLE processed RENAME TO processed_legacy;
-- its primary key is replaced by the partitioned table's (built on attach)
ALTER TABLE processed_legacy DROP CONSTRAINT processed_pkey;
CREATE TABLE processed (
    stage        text NOT NULL,
    payment_id   text NOT NULL,   -- the key: payment_id, refund_id or "deposit:<id>"...
    payload_hash text NOT NULL,
    payload      text NOT NULL,
    outcome      text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (payment_id, stage, created_at)
) PARTITION BY RANGE (created_at);

ALTER TABLE outbox RENAME TO outbox_legacy;
ALTER TABLE outbox_legacy DROP CONSTRAINT outbox_pkey;
ALTER INDEX outbox_payment_idx RENAME TO outbox_legacy_payment_idx;
CREATE TABLE outbox (
    id          bigint NOT NULL,
    stage       text NOT NULL,
    payment_id  text,                 -- NULL for batch events
    event_id    text NOT NULL,
    exchange    text NOT NULL,
    routing_key text NOT NULL,
    body        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
CREATE INDEX outbox_payment_idx ON outbox (payment_id, stage);

DO $$
DECLARE
    -- every row of the old tables is older: nothing writes them while
    -- this transaction holds their locks
    bound timestamptz := clock_timestamp();
    last_id bigint;
BEGIN
    SELECT max(id) INTO last_id FROM outbox_legacy;
    ALTER TABLE outbox_legacy ALTER COLUMN id DROP IDENTITY;
    CREATE SEQUENCE outbox_id_seq AS bigint OWNED BY outbox.id;
    IF last_id IS NOT NULL THEN
        PERFORM setval('outbox_id_seq', last_id);
    END IF;
    ALTER TABLE outbox ALTER COLUMN id SET DEFAULT nextval('outbox_id_seq');
    EXECUTE format('ALTER TABLE processed ATTACH PARTITION processed_legacy '
                   'FOR VALUES FROM (MINVALUE) TO (%L)', bound);
    EXECUTE format('ALTER TABLE outbox ATTACH PARTITION outbox_legacy '
                   'FOR VALUES FROM (MINVALUE) TO (%L)', bound);
END;
$$;
