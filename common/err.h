/*
 * err.h - the one error convention of Ledgerline.
 *
 * Every fallible function returns int: 0 (LL_OK) on success, a negative
 * LL_E* code on failure. The codes come from one X-macro table so that
 * ll_strerror() and ll_errname() are free. Objects that fail carry the
 * detail themselves (an `errstr[128]` field, hiredis-style); the code only
 * says what kind of failure it was, which is what callers branch on:
 *
 *   LL_ERETRY  transient: reconnect / back off / retry the batch
 *   LL_ECONN   the server is unreachable or the connection broke
 *   LL_EREJECT the input is bad: reject it, never retry it
 *
 * Public API: LL_ERRNO_MAP, enum ll_err, ll_strerror(), ll_errname(),
 * LL_MUSTCHECK.
 */
#ifndef LL_ERR_H
#define LL_ERR_H

#define LL_MUSTCHECK __attribute__((warn_unused_result))

/* X(name, message) -- codes are assigned in order: -1, -2, ... */
#define LL_ERRNO_MAP(X)                                                                            \
    X(NOMEM, "out of memory")                                                                      \
    X(INVAL, "invalid argument")                                                                   \
    X(CONFIG, "invalid configuration")                                                             \
    X(IO, "input/output error")                                                                    \
    X(CONN, "connection failed or lost")                                                           \
    X(TIMEOUT, "timed out")                                                                        \
    X(PROTO, "protocol error")                                                                     \
    X(NACK, "publish not confirmed by the broker")                                                 \
    X(DB, "database error")                                                                        \
    X(RETRY, "transient failure, retry")                                                           \
    X(NOTFOUND, "not found")                                                                       \
    X(EXISTS, "already exists")                                                                    \
    X(RANGE, "value out of range")                                                                 \
    X(REJECT, "message rejected")                                                                  \
    X(STATE, "invalid state")

/* Positions 1..N, then the public negative codes: LL_ENOMEM == -1, ... */
enum ll__errpos {
    LL__POS_NONE = 0,
#define LL__ERR_POS(name, msg) LL__POS_##name,
    LL_ERRNO_MAP(LL__ERR_POS)
#undef LL__ERR_POS
        LL__POS_COUNT
};

enum ll_err {
    LL_OK = 0,
#define LL__ERR_NEG(name, msg) LL_E##name = -LL__POS_##name,
    LL_ERRNO_MAP(LL__ERR_NEG)
#undef LL__ERR_NEG
};

/* Human text for an LL_E* code ("out of memory"); "unknown error" otherwise. */
const char *ll_strerror(int code);
/* Symbolic name ("LL_ENOMEM"), for logs and tests. */
const char *ll_errname(int code);

#endif
