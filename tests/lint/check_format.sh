#!/usr/bin/env bash
# check_format.sh CLANG_FORMAT - fails when any tracked C file differs from
# what .clang-format says; prints the files and the command that fixes them.
set -euo pipefail
cf=${1:-clang-format}
mapfile -t files < <(git ls-files '*.c' '*.h' 2>/dev/null || find common workers ops tests -name '*.[ch]')
[ ${#files[@]} -gt 0 ] || { echo "no C files found"; exit 1; }
bad=()
for f in "${files[@]}"; do
    [ -f "$f" ] || continue
    "$cf" --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if [ ${#bad[@]} -gt 0 ]; then
    echo "not clang-formatted (${#bad[@]} files):"
    printf '  %s\n' "${bad[@]}"
    echo "fix: $cf -i ${bad[*]}"
    exit 1
fi
echo "clang-format: ${#files[@]} files clean"
