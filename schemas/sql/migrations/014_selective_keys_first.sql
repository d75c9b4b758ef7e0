-- 014_selective_keys_first.sql - composite keys lead with the column that
-- picks one row.
--
-- The stages look rows up by (stage, payment_id) in processed and outbox
-- and by (kind, ref) in transfers. With the three-valued column first, a
-- plan may read the index by that column alone and filter the ids: the
-- planner picks it whenever it believes the table small (a new database
-- before its first ANALYZE, a plan cached early), and then it reads every
-- row of the stage on every batch. Measured on a fresh ledger: 450 buffers
-- a settlement batch of two payments instead of a dozen. With payment_id
-- (ref) first, the only use of the index is a lookup of the batch's own
-- ids, whatever the statistics say.
--
-- The constraints keep their meaning; only the column order changes.
--
-- With every lookup of the batch functions a lookup by key, it also gave
-- them (and processed_claim, now PL/pgSQL) plan_cache_mode =
-- force_generic_plan: planning a batch's statements again each time cost
-- about a millisecond a batch. Those settings are part of the functions'
-- files in schemas/sql/functions/ now.

ALTER TABLE processed DROP CONSTRAINT processed_pkey,
    ADD CONSTRAINT processed_pkey PRIMARY KEY (payment_id, stage);

ALTER TABLE transfers DROP CONSTRAINT transfers_kind_ref_key,
    ADD CONSTRAINT transfers_ref_kind_key UNIQUE (ref, kind);

DROP INDEX outbox_payment_idx;
CREATE INDEX outbox_payment_idx ON outbox (payment_id, stage);

-- supersedes: 5a30b2806bfecb151e1eb725abe52f13cbec965b16ce30ea34bdd974b079bcb7 (its text before the functions moved out)
