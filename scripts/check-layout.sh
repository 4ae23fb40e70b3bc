#!/usr/bin/env bash
# Checks the house rules of docs/architecture.md that the compiler does not:
#   1. the server roles (rustre-server/src/{mgs,mds,oss}) import none of each other;
#   2. the client crate (rustre-fuse) and the server crate (rustre-server) import none of
#      each other, in code or in Cargo.toml;
#   3. no source file outside tests is over MAX_LINES lines (test files: `tests.rs`, anything
#      under a `tests/` folder).
# Prints every breach and exits 1 if there is one. Run by scripts/test.sh.
set -uo pipefail
cd "$(dirname "$0")/.."
MAX_LINES=${MAX_LINES:-800}
ROLES=(mgs mds oss)
failed=0
breach() {
  echo "check-layout: $*" >&2
  failed=1
}

# 1. Roles side by side: a role may name another only as `crate::<role>` (or through
#    `super::super::<role>` from a nested module); both are searched for.
for role in "${ROLES[@]}"; do
  for other in "${ROLES[@]}"; do
    [ "$role" = "$other" ] && continue
    while IFS= read -r hit; do
      breach "role $role imports role $other: $hit"
    done < <(grep -rnE "(crate|super::super)::$other\b" "rustre-server/src/$role" --include='*.rs' |
      grep -vE '^[^:]+:[0-9]+:\s*//')
  done
done

# 2. Client and server crates side by side.
for pair in "rustre-fuse:rustre_server:rustre-server" "rustre-server:rustre_fuse:rustre-fuse"; do
  IFS=: read -r crate code_name package <<<"$pair"
  while IFS= read -r hit; do
    breach "$crate imports $package: $hit"
  done < <(grep -rnE "\b$code_name\b" "$crate/src" "$crate/examples" --include='*.rs' 2>/dev/null |
    grep -vE '^[^:]+:[0-9]+:\s*//')
  if grep -qE "^\s*$package\s*(=|\.)" "$crate/Cargo.toml"; then
    breach "$crate/Cargo.toml depends on $package"
  fi
done

# 3. File size.
while IFS= read -r file; do
  case "$file" in
  */tests.rs | */tests/* | tests/*) continue ;;
  esac
  lines=$(wc -l <"$file")
  if [ "$lines" -gt "$MAX_LINES" ]; then
    breach "$file has $lines lines (at most $MAX_LINES outside tests)"
  fi
done < <(git ls-files --cached --others --exclude-standard -- '*.rs')

if [ "$failed" = 0 ]; then
  echo "check-layout: roles side by side, client and server crates apart, no file over $MAX_LINES lines"
fi
exit "$failed"
