/*
 * runtime.h - the one worker loop every stage runs on.
 *
 * A stage (workers/<kind>/) hands rt_main() its table (stage.h); the
 * runtime does everything else, in this order per batch
 * (docs/contract.md#delivery-and-crashes):
 *
 *   consume (prefetch) -> gather what is there, up to
 *   worker.batch_max_messages -> decode each (stage_decode; bad ones:
 *   message.rejected + parked copy in <queue>.dead) -> Redis fast path /
 *   in-flight guard -> one PostgreSQL transaction: BEGIN, the sent marks
 *   of the last batch, stage_apply (effects + processed rows), outbox
 *   rows, COMMIT -> publish every event with confirms (signed with the
 *   stage's keyring) -> Redis outcome -> one multiple-ack.
 *
 * Failure handling:
 *   - transient (a server lost, deadlock, serialization failure, confirm
 *     timeout or nack): nothing is acked; reconnect with backoff and jitter,
 *     redeclare the topology, retry the batch (if the consumer connection
 *     itself was lost the broker redelivers the batch instead);
 *   - a batch whose transaction fails for another reason is split in
 *     halves until the message that causes it is alone; that message is
 *     retried up to worker.max_attempts, then parked with processing_failed;
 *   - SIGTERM/SIGINT: stop consuming, finish the batch in hand (bounded by
 *     worker.shutdown_timeout_ms), exit 0; a second signal exits at once;
 *   - SIGHUP: between two batches, the stage's keyrings are loaded again
 *     and its init() runs again; if either fails, both keep what they had.
 * A kill -9 anywhere loses nothing (nothing is acked before its outcome is
 * committed and its events confirmed) and doubles nothing (PostgreSQL's
 * processed rows turn a redelivery into a replay of the stored event).
 * Periodically (one tick): the stage's tick job (tick.h) and the publishing
 * of the events it committed, the outbox sweep, AMQP heartbeats, and the
 * worker's registry record and outbox sample (obs.h). Throughout, obs.h
 * hears what happens: its /healthz, /readyz and /metrics answer from their
 * own thread (docs/operations.md).
 *
 * Public API: rt_main.
 */
#ifndef LL_RUNTIME_H
#define LL_RUNTIME_H

#include <stddef.h>

#include "stage.h"

/* Parses --config FILE / --check-config / --help / --version, loads the
 * settings and runs the loop until a signal. Returns the exit status. */
int rt_main(const stage_t *stage, int argc, char **argv);

#endif
