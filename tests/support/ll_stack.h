/*
 * ll_stack.h - the stack's servers (PostgreSQL, Redis, RabbitMQ) under a
 * fault test: stop, start and query them with ops/stack. llw_stack() runs
 * ops/stack in a new session (setsid), so a server it starts never belongs
 * to the test's process group (which Check kills after each test).
 * llw_stack_restore() starts whatever is down and never fails the test: it
 * is safe in an unchecked fixture.
 *
 * Public API: llw_stack, llw_stack_is_up, llw_stack_restore.
 */
#ifndef LL_STACK_H
#define LL_STACK_H

#include <stdbool.h>

/* Runs `$LL_SOURCE_DIR/ops/stack --name $LEDGERLINE_STACK_NAME cmd server`
 * in a new session with a 180 s deadline; returns its exit status (its
 * output is printed when it is not 0). */
int llw_stack(const char *cmd, const char *server);
/* What `ops/stack status` says of `server`. */
bool llw_stack_is_up(const char *server);
/* start-one for each server that is down. Never fails the test. */
void llw_stack_restore(void);

#endif
