-- fence_advance(name, token): a fencing token passes only if it is newer
-- than every token its lock has seen (docs/ledger.md#fences). The equal
-- token is the boundary: a Redis that lost its last INCR (a restore, a
-- failover to a replica that missed it) hands the same token out twice.
BEGIN;
SELECT plan(9);

SELECT lives_ok($$SELECT fence_advance('settle:b1', 5)$$,
                'fence_advance: the first token of a lock is recorded');
SELECT is((SELECT token FROM lock_fences WHERE name = 'settle:b1'), 5::bigint,
          'fence_advance: lock_fences holds the first token');
SELECT lives_ok($$SELECT fence_advance('settle:b1', 6)$$,
                'fence_advance: a newer token passes');
SELECT throws_ok($$SELECT fence_advance('settle:b1', 6)$$, 'LL001', NULL,
                 'fence_advance: a token EQUAL to the newest seen is refused (LL001)');
SELECT throws_ok($$SELECT fence_advance('settle:b1', 5)$$, 'LL001', NULL,
                 'fence_advance: an older token is refused (LL001)');
SELECT is((SELECT token FROM lock_fences WHERE name = 'settle:b1'), 6::bigint,
          'fence_advance: a refused token changes nothing');
SELECT lives_ok($$SELECT fence_advance('settle:b2', 1)$$,
                'fence_advance: each lock has its own tokens');
SELECT throws_ok($$SELECT fence_advance('settle:b2', 1)$$, 'LL001', NULL,
                 'fence_advance: the equal token is refused for the first token too');
SELECT lives_ok($$SELECT fence_advance('settle:b1', 9223372036854775807)$$,
                'fence_advance: the largest token passes once');

SELECT * FROM finish();
ROLLBACK;
