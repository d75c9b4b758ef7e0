/*
 * main.c - risk-worker: hands the risk stage to the shared runtime.
 */
#include "risk.h"

int main(int argc, char **argv)
{
    return rt_main(&risk_stage, argc, argv);
}
