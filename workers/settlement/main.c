/*
 * main.c - settlement-worker: hands the settlement stage to the shared
 * runtime.
 */
#include "settlement.h"

int main(int argc, char **argv)
{
    return rt_main(&settlement_stage, argc, argv);
}
