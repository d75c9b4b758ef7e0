/*
 * main.c - refund-worker: hands the refund stage to the shared runtime.
 */
#include "refund.h"

int main(int argc, char **argv)
{
    return rt_main(&refund_stage, argc, argv);
}
