#!/usr/bin/env bash
# check_shell.sh [SHELLCHECK] - fails when shellcheck reports anything, at any
# severity (error, warning, info, style), in a shell script of the project:
# every file git knows (tracked, or new and not ignored; a find over the tree
# outside a git checkout) whose name ends in .sh or whose first line is a
# bash or sh shebang. Sourced files are followed (-x); a ~/.shellcheckrc is
# ignored (--norc), so every machine judges alike. Prints the findings, the
# files and the command that re-checks them. Without shellcheck it FAILS
# (it never skips), naming the package.
set -euo pipefail
sc=${1:-shellcheck}
# the `# shellcheck source=ops/lib/...` directives are relative to the root
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
opts=(--norc --external-sources --severity=style)

command -v "$sc" >/dev/null 2>&1 || {
    echo "FAIL: '$sc' is not installed"
    echo "fix: apt-get install -y shellcheck   (or ./ops/test, which installs the project's Debian packages)"
    exit 1
}

# is_shell FILE: a .sh name, or a first line such as #!/bin/sh, #!/bin/bash,
# #!/usr/bin/env bash
is_shell() {
    local first=""
    [[ "$1" == *.sh ]] && return 0
    IFS= read -r -n 128 first <"$1" 2>/dev/null || true
    [[ "$first" =~ ^#![[:space:]]*[^[:space:]]*/(env[[:space:]]+)?(ba)?sh([[:space:]]|$) ]]
}

mapfile -d '' -t files < <(git ls-files -z --cached --others --exclude-standard 2>/dev/null ||
    find . \( -path ./.git -o -path ./.stack -o -path './build*' -o -path ./Testing \) -prune \
        -o -type f -printf '%P\0')
scripts=()
for f in "${files[@]}"; do
    [[ -f "$f" && ! -L "$f" ]] || continue # deleted but still tracked; links
    if is_shell "$f"; then scripts+=("$f"); fi
done
[ ${#scripts[@]} -gt 0 ] || { echo "FAIL: no shell scripts found"; exit 1; }

bad=()
for f in "${scripts[@]}"; do
    if ! out=$("$sc" "${opts[@]}" "$f" 2>&1); then
        printf '%s\n' "$out"
        bad+=("$f")
    fi
done
if [ ${#bad[@]} -gt 0 ]; then
    echo
    echo "shellcheck findings in ${#bad[@]} of ${#scripts[@]} shell scripts:"
    printf '  %s\n' "${bad[@]}"
    echo "fix: correct what is reported above, then re-check: $sc ${opts[*]} ${bad[*]}"
    echo "     the fixes shellcheck can make itself: $sc ${opts[*]} -f diff ${bad[*]} | git apply"
    echo "     a finding that is wrong: '# shellcheck disable=SCxxxx # why' on the line above it"
    exit 1
fi
echo "shellcheck $("$sc" --version | awk '/^version:/ { print $2 }'): ${#scripts[@]} shell scripts clean (${opts[*]})"
