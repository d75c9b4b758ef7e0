-- fence_advance(name, token): lets a fencing token through only if it is
-- newer than every token lock `name` has seen, and records it; raises
-- SQLSTATE LL001 otherwise.
--
-- The settlement closer calls it first in its transaction (docs/ledger.md
-- #locks, rule 1: the lock_fences row before anything else). A closer that
-- was paused past its Redis lease wakes up with an older token than the one
-- that took over, and its writes are refused before they start.
CREATE OR REPLACE FUNCTION fence_advance(p_name text, p_token bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    seen bigint;
BEGIN
    INSERT INTO lock_fences (name, token) VALUES (p_name, p_token)
    ON CONFLICT (name) DO NOTHING;
    IF FOUND THEN
        RETURN;
    END IF;
    SELECT token INTO seen FROM lock_fences WHERE name = p_name FOR NO KEY UPDATE;
    IF seen >= p_token THEN
        RAISE EXCEPTION 'stale fencing token % for %: % was already used', p_token, p_name, seen
            USING ERRCODE = 'LL001';
    END IF;
    UPDATE lock_fences SET token = p_token WHERE name = p_name;
END;
$$;
