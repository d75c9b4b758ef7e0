/*
 * crash.h - named crash points for tests: in a build configured with
 * -DLEDGERLINE_CRASH_POINTS=ON (./ops/test does), the environment variable
 * LEDGERLINE_CRASH_AT=<point> makes the process SIGKILL itself the N-th
 * time it reaches crash_point("<point>"), N = LEDGERLINE_CRASH_AFTER
 * (default 1). Tests use it to prove that a kill at that line loses and
 * doubles nothing. In other builds crash_point() compiles to nothing.
 *
 * The points of the worker runtime: mid_batch, after_decode, before_commit,
 * after_commit, after_publish, after_ack; of the settlement closer:
 * before_close_commit, after_close_commit (and the pause point
 * closer_locked); of the retention job: before_retention_commit,
 * after_retention_commit (expiry), before_retention_ahead_commit,
 * after_retention_ahead_commit (partitions ahead); of `ledgerctl archive`:
 * archive_mid_write, archive_before_rename.
 *
 * Public API: crash_point(), pause_point().
 */
#ifndef LL_CRASH_H
#define LL_CRASH_H

#ifdef LEDGERLINE_CRASH_POINTS
void crash_point(const char *name);
/* LEDGERLINE_PAUSE_AT=<name>: the process SIGSTOPs itself there (a test
 * then plays the stopped-the-world scenario and sends SIGCONT). */
void pause_point(const char *name);
#else
#define crash_point(name) ((void)0)
#define pause_point(name) ((void)0)
#endif

#endif
