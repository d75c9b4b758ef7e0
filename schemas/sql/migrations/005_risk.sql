-- 005_risk.sql: the risk stage's audited decisions and its rules.
--
-- risk_decisions: every decision (approved or declined), its score, the
--   rules that fired and the rule-set version, written in the same
--   transaction as the processed row and the outbox event.
-- risk_apply_batch(batch, cfg): decides a batch in queue order. Rules, in
--   this fixed order (a hard rule declines at once):
--     max_amount        amount above the currency's limit           (hard)
--     blocklisted       payer or payee on the blocklist              (hard)
--     velocity_count    payer already has N approved payments in W    (hard)
--     velocity_sum      approved amount in W plus this one exceeds S  (hard)
--     score             sum of the weights of the soft signals that
--                       fired, capped at 100, declines at >= threshold:
--                         new_payee     first payment from payer to payee
--                         above_median  amount > factor x the median of
--                                       the payer's last 20 approvals (3+)
--   Velocity counts approved decisions only, each exactly once: a payment
--   has one decision row whatever its redeliveries and duplicates, and the
--   payers of a batch are locked (advisory, sorted) so replicas count one
--   after the other.
-- cfg: {"version", "max_amount": {"EUR": n, ...}, "blocklist": [ids],
--       "velocity_count", "velocity_sum", "velocity_window_s",
--       "score_threshold", "weight_new_payee", "weight_above_median",
--       "median_factor"}   (0 disables a numeric rule)

CREATE TABLE risk_decisions (
    payment_id      text PRIMARY KEY,
    payer           text NOT NULL,
    payee           text NOT NULL,
    amount          bigint NOT NULL,
    currency        char(3) NOT NULL,
    decision        text NOT NULL CHECK (decision IN ('approved', 'declined')),
    score           integer NOT NULL CHECK (score BETWEEN 0 AND 100),
    rules           text[] NOT NULL,
    ruleset_version text NOT NULL,
    decided_at      timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX risk_decisions_payer_idx ON risk_decisions (payer, decided_at);

-- Functions written here then, kept since in schemas/sql/functions/:
-- risk_apply_batch.
-- supersedes: f3e69b3f0fa562b7f2e2d059656606c1dffb43b98fb99c90385676a2b713c130 (its text before the functions moved out)
