/*
 * risk_rules.h - the risk rule configuration, built from the `risk`
 * settings and the blocklist file, as the SQL rule engines take it: the
 * risk stage's risk_apply_batch() screens payments with it, the funds
 * stage's funds_apply_batch() screens withdrawals with the same hard rules
 * (max_amount, blocklisted, velocity_count, velocity_sum).
 *
 * Public API: risk_config_json.
 */
#ifndef LL_RISK_RULES_H
#define LL_RISK_RULES_H

#include "settings.h"

/* The rule configuration, from the settings and the blocklist file. LL_OK
 * with *out (JSON text, caller frees), or LL_ECONFIG with the reason in
 * err. */
int risk_config_json(const settings_t *cfg, char **out, char *err, size_t errlen);

#endif
