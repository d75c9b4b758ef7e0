/*
 * err.c - text for the LL_E* codes of err.h, generated from LL_ERRNO_MAP.
 */
#include "err.h"

static const char *const err_msgs[] = {[LL__POS_NONE] = "success",
#define ERR_MSG(name, msg) [LL__POS_##name] = msg,
                                       LL_ERRNO_MAP(ERR_MSG)
#undef ERR_MSG
};

static const char *const err_names[] = {[LL__POS_NONE] = "LL_OK",
#define ERR_NAME(name, msg) [LL__POS_##name] = "LL_E" #name,
                                        LL_ERRNO_MAP(ERR_NAME)
#undef ERR_NAME
};

const char *ll_strerror(int code)
{
    int pos = -code;
    if (pos < 0 || pos >= LL__POS_COUNT)
        return "unknown error";
    return err_msgs[pos];
}

const char *ll_errname(int code)
{
    int pos = -code;
    if (pos < 0 || pos >= LL__POS_COUNT)
        return "LL_E?";
    return err_names[pos];
}
