/*
 * main.c - funds-worker: hands the funds stage to the shared runtime.
 */
#include "funds.h"

int main(int argc, char **argv)
{
    return rt_main(&funds_stage, argc, argv);
}
