-- 012_outbox_pending.sql - outbox rows are written once and never
-- updated; what is still to be published is a small table of its own.
--
-- Marking an event sent used to UPDATE its outbox row (sent_at, the claim
-- columns). sent_at is in the predicate of the partial index of unsent
-- rows, so every such update wrote a whole new version of the row (the
-- event body) and new entries in every index of the table: about a quarter
-- of PostgreSQL's CPU per payment in the pipeline benchmark.
--
-- Now:
--   outbox          the events, immutable: the replay of a duplicate reads
--                   its original event here;
--   outbox_pending  one narrow row per event not yet confirmed by the
--                   broker, inserted with the event in the same
--                   transaction, deleted once the broker confirmed it; the
--                   sweep claims its rows (claimed_by, claimed_until) like
--                   it claimed outbox rows before.
-- An event is unsent exactly when its id is in outbox_pending. (No foreign
-- key from outbox_pending to outbox: both rows are written by the same
-- statement of outbox.c, and the check would cost a lookup per event.)

CREATE TABLE outbox_pending (
    id            bigint PRIMARY KEY,  -- outbox.id
    stage         text NOT NULL,       -- outbox.stage: a stage sweeps its own events
    created_at    timestamptz NOT NULL DEFAULT now(),
    claimed_by    text,
    claimed_until timestamptz
);

INSERT INTO outbox_pending (id, stage, created_at, claimed_by, claimed_until)
SELECT id, stage, created_at, claimed_by, claimed_until FROM outbox WHERE sent_at IS NULL;

DROP INDEX outbox_unsent_idx;
ALTER TABLE outbox DROP COLUMN sent_at, DROP COLUMN claimed_by, DROP COLUMN claimed_until;
