-- 006_settlement.sql: settlement batches, fees, payouts, fenced closing
-- (DESIGN.md sections 4 and 5).
--
-- Each completed payment joins exactly one batch keyed by (payee, currency,
-- window); the window is the payment's posted_at floored to the window
-- length (aligned to the Unix epoch, so one day = UTC midnight). A payment
-- whose window is already closed joins the next open window of that payee
-- and currency, marked late: never a closed batch, never lost.
-- Per payment fee = round_half_up(amount * fee_bps / 10000) + fee_fixed of
-- the payee at the time it joins; a batch's fees are capped at its gross.
--
-- Closing takes a Redis lock and a fencing token (a Redis counter); the
-- closing transaction first calls fence_advance(), which only lets a token
-- through that is higher than every token seen for that lock: a closer
-- that was paused past its lease and wakes up holds an older token and
-- its writes are refused.

CREATE TABLE settlement_batches (
    id              text PRIMARY KEY,
    payee           text NOT NULL REFERENCES accounts (id),
    currency        char(3) NOT NULL,
    window_start    timestamptz NOT NULL,
    window_end      timestamptz NOT NULL,
    status          text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    count           integer NOT NULL DEFAULT 0,
    gross           bigint NOT NULL DEFAULT 0,
    fees_raw        bigint NOT NULL DEFAULT 0,  -- sum of the items' fees, before the cap
    fees            bigint,                     -- set at close: least(fees_raw, gross)
    net             bigint,                     -- set at close: gross - fees
    late_count      integer NOT NULL DEFAULT 0,
    fee_transfer    bigint REFERENCES transfers (id),
    payout_transfer bigint REFERENCES transfers (id),
    closed_at       timestamptz,
    closed_by       text,
    fence           bigint,
    UNIQUE (payee, currency, window_start)
);
CREATE INDEX settlement_batches_open_idx ON settlement_batches (window_end) WHERE status = 'open';

CREATE TABLE settlement_items (
    payment_id text PRIMARY KEY,                -- in exactly one batch
    batch_id   text NOT NULL REFERENCES settlement_batches (id),
    amount     bigint NOT NULL CHECK (amount > 0),
    fee        bigint NOT NULL CHECK (fee >= 0),
    late       boolean NOT NULL,
    added_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX settlement_items_batch_idx ON settlement_items (batch_id);

CREATE TABLE lock_fences (
    name  text PRIMARY KEY,
    token bigint NOT NULL
);

-- fence_advance: raises (SQLSTATE LL001) unless p_token is newer than any
-- token this lock has seen; records it. Call it first in the transaction.
CREATE FUNCTION fence_advance(p_name text, p_token bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    seen bigint;
BEGIN
    INSERT INTO lock_fences (name, token) VALUES (p_name, p_token)
    ON CONFLICT (name) DO NOTHING;
    IF FOUND THEN
        RETURN;
    END IF;
    SELECT token INTO seen FROM lock_fences WHERE name = p_name FOR UPDATE;
    IF seen >= p_token THEN
        RAISE EXCEPTION 'stale fencing token % for %: % was already used', p_token, p_name, seen
            USING ERRCODE = 'LL001';
    END IF;
    UPDATE lock_fences SET token = p_token WHERE name = p_name;
END;
$$;

-- round_half_up(amount * bps / 10000) + fixed, in exact numeric
CREATE FUNCTION settlement_fee(p_amount bigint, p_bps integer, p_fixed bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
    SELECT (floor((p_amount::numeric * p_bps) / 10000 + 0.5))::bigint + p_fixed
$$;

-- "sb-<payee>-<CUR>-<window start, epoch s>", or when that is longer than
-- an id may be (64), "sb-" and 32 hex chars of its md5
CREATE FUNCTION settlement_batch_id(p_payee text, p_currency text, p_start timestamptz)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN length(x) <= 64 THEN x ELSE 'sb-' || md5(x) END
    FROM (SELECT 'sb-' || p_payee || '-' || p_currency || '-'
                 || extract(epoch FROM p_start)::bigint AS x) s
$$;

-- settlement_apply_batch: adds each completed payment (in queue order) to
-- its batch. batch: [{payment_id, hash, payload, payee, amount, currency,
-- posted_ms}], p_window_s: the window length.
-- verdict: 'new' (added; batch_id, late), 'duplicate', 'conflict'.
CREATE FUNCTION settlement_apply_batch(p_batch jsonb, p_window_s bigint)
RETURNS TABLE (ord integer, verdict text, batch_id text, late boolean, prior_payload text)
LANGUAGE plpgsql AS $$
DECLARE
    e jsonb;
    prior_hash text;
    w_start timestamptz;
    b settlement_batches%ROWTYPE;
    a accounts%ROWTYPE;
    v_fee bigint;
BEGIN
    -- the batches this batch touches, created and locked in sorted order
    -- first, so concurrent workers never deadlock on each other's batches
    INSERT INTO settlement_batches (id, payee, currency, window_start, window_end)
    SELECT settlement_batch_id(k.payee, k.currency, k.w), k.payee, k.currency, k.w,
           k.w + make_interval(secs => p_window_s)
    FROM (SELECT DISTINCT x.value ->> 'payee' AS payee, x.value ->> 'currency' AS currency,
                 to_timestamp(floor((x.value ->> 'posted_ms')::numeric / 1000 / p_window_s)
                              * p_window_s) AS w
          FROM jsonb_array_elements(p_batch) x) k
    ORDER BY 1
    ON CONFLICT DO NOTHING;
    PERFORM 1 FROM settlement_batches s
    WHERE s.id IN (SELECT settlement_batch_id(x.value ->> 'payee', x.value ->> 'currency',
                          to_timestamp(floor((x.value ->> 'posted_ms')::numeric / 1000
                                             / p_window_s) * p_window_s))
                   FROM jsonb_array_elements(p_batch) x)
    ORDER BY s.id FOR UPDATE;
    ord := 0;
    FOR e IN SELECT x.value FROM jsonb_array_elements(p_batch) WITH ORDINALITY x
             ORDER BY x.ordinality LOOP
        ord := ord + 1;
        prior_payload := NULL;
        batch_id := NULL;
        late := false;
        INSERT INTO processed (stage, payment_id, payload_hash, payload, outcome)
        VALUES ('settlement', e ->> 'payment_id', e ->> 'hash', e ->> 'payload', 'pending')
        ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            SELECT p.payload_hash, p.payload INTO prior_hash, prior_payload
            FROM processed p WHERE p.stage = 'settlement' AND p.payment_id = e ->> 'payment_id';
            verdict := CASE WHEN prior_hash = e ->> 'hash' THEN 'duplicate' ELSE 'conflict' END;
            SELECT i.batch_id, i.late INTO batch_id, late
            FROM settlement_items i WHERE i.payment_id = e ->> 'payment_id';
            RETURN NEXT;
            CONTINUE;
        END IF;
        SELECT * INTO a FROM accounts WHERE id = e ->> 'payee';
        v_fee := settlement_fee((e ->> 'amount')::bigint, coalesce(a.fee_bps, 0),
                                coalesce(a.fee_fixed, 0));
        w_start := to_timestamp(floor((e ->> 'posted_ms')::numeric / 1000 / p_window_s)
                                * p_window_s);
        LOOP
            INSERT INTO settlement_batches (id, payee, currency, window_start, window_end)
            VALUES (settlement_batch_id(e ->> 'payee', e ->> 'currency', w_start),
                    e ->> 'payee', e ->> 'currency', w_start,
                    w_start + make_interval(secs => p_window_s))
            ON CONFLICT (payee, currency, window_start) DO NOTHING;
            SELECT * INTO b FROM settlement_batches s
            WHERE s.payee = e ->> 'payee' AND s.currency = e ->> 'currency'
              AND s.window_start = w_start
            FOR UPDATE;
            EXIT WHEN b.status = 'open';
            late := true; -- closed: the next window of this payee and currency
            w_start := w_start + make_interval(secs => p_window_s);
        END LOOP;
        INSERT INTO settlement_items (payment_id, batch_id, amount, fee, late)
        VALUES (e ->> 'payment_id', b.id, (e ->> 'amount')::bigint, v_fee, late);
        UPDATE settlement_batches s
        SET count = s.count + 1, gross = s.gross + (e ->> 'amount')::bigint,
            fees_raw = s.fees_raw + v_fee, late_count = s.late_count + late::int
        WHERE s.id = b.id;
        UPDATE processed p SET outcome = 'batched:' || b.id
        WHERE p.stage = 'settlement' AND p.payment_id = e ->> 'payment_id';
        verdict := 'new';
        batch_id := b.id;
        RETURN NEXT;
    END LOOP;
END;
$$;

-- settlement_close: closes one batch for the holder of fencing token
-- p_token (fence_advance first): posts the fee transfer (payee ->
-- sys:fees:CUR) and the payout transfer (payee -> sys:payout:CUR, amount
-- net), marks the batch closed. Returns the closed batch, or no row when it
-- was already closed. The caller writes the outbox event in the same
-- transaction.
CREATE FUNCTION settlement_close(p_batch text, p_token bigint, p_closer text)
RETURNS SETOF settlement_batches
LANGUAGE plpgsql AS $$
DECLARE
    b settlement_batches%ROWTYPE;
    v_fees bigint;
    r record;
    fee_t bigint;
    payout_t bigint;
BEGIN
    PERFORM fence_advance('settle:' || p_batch, p_token);
    SELECT * INTO b FROM settlement_batches WHERE id = p_batch FOR UPDATE;
    IF NOT FOUND OR b.status = 'closed' THEN
        RETURN;
    END IF;
    v_fees := least(b.fees_raw, b.gross);
    INSERT INTO accounts (id, currency, kind) VALUES ('sys:fees:' || b.currency, b.currency, 'system'),
                                                   ('sys:payout:' || b.currency, b.currency, 'system')
    ON CONFLICT (id) DO NOTHING;
    IF v_fees > 0 THEN
        SELECT * INTO r FROM ledger_post(b.id, 'fee', b.payee, 'sys:fees:' || b.currency, v_fees,
                                         b.currency);
        IF r.status NOT IN ('posted', 'duplicate') THEN
            RAISE EXCEPTION 'fee transfer of batch % refused: %', b.id, r.status;
        END IF;
        fee_t := r.transfer_id;
    END IF;
    IF b.gross - v_fees > 0 THEN
        SELECT * INTO r FROM ledger_post(b.id, 'payout', b.payee, 'sys:payout:' || b.currency,
                                         b.gross - v_fees, b.currency);
        IF r.status NOT IN ('posted', 'duplicate') THEN
            RAISE EXCEPTION 'payout transfer of batch % refused: %', b.id, r.status;
        END IF;
        payout_t := r.transfer_id;
    END IF;
    UPDATE settlement_batches
    SET status = 'closed', fees = v_fees, net = gross - v_fees, fee_transfer = fee_t,
        payout_transfer = payout_t, closed_at = clock_timestamp(), closed_by = p_closer,
        fence = p_token
    WHERE id = b.id
    RETURNING * INTO b;
    RETURN NEXT b;
END;
$$;
