/*
 * main.c - payment-worker: hands the payment stage to the shared runtime.
 */
#include "payment.h"

int main(int argc, char **argv)
{
    return rt_main(&payment_stage, argc, argv);
}
