#!/usr/bin/env bash
# check_readme_config.sh LEDGERCTL - the configuration reference in README.md
# (between the config-reference markers) must be exactly what
# `ledgerctl config reference` prints from the settings table.
set -euo pipefail
ctl=$1
readme=README.md
want=$(env -u LEDGERLINE_CONFIG "$ctl" config reference)
got=$(sed -n '/<!-- config-reference:begin -->/,/<!-- config-reference:end -->/p' "$readme" |
    sed '1d;$d')
if [ "$want" != "$got" ]; then
    echo "README.md's configuration reference differs from the settings table:"
    diff <(printf '%s\n' "$got") <(printf '%s\n' "$want") || true
    echo "fix: ./ops/readme-config $ctl   (rewrites the block between the markers)"
    exit 1
fi
echo "README configuration reference matches the settings table ($(printf '%s\n' "$want" | grep -c '^| `') settings)"
