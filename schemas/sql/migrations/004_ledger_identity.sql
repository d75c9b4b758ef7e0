-- 004_ledger_identity.sql: a random identity per ledger database.
--
-- Workers put it into every Redis key they write (idem:<ledger>:<stage>:...),
-- so a Redis that outlived its database, or serves several, can never
-- answer for a payment this ledger has not processed: its entries simply do
-- not match. (Found by a benchmark: a dropped and recreated database met
-- the old database's "done" entries and one payment was never applied.)
CREATE TABLE ledger_identity (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    id        text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO ledger_identity (id)
VALUES (substr(md5(gen_random_uuid()::text || clock_timestamp()::text), 1, 16));
