#!/usr/bin/env bash
# Dependency invariants: the provider crate (executus-llm), the core crate (executus) and the
# light-host example (pr-review-swarm) never have sqlx, SQLite, cron or any executus
# battery/store crate in their normal dependency tree, and no source file under llm/ or core/
# names a battery crate.
#
#   ci/check-deps.sh              check the workspace
#   ci/check-deps.sh --self-test  prove the checker fails on a tree that contains a forbidden crate
set -euo pipefail
cd "$(dirname "$0")/.."

FORBIDDEN='^(sqlx[a-z0-9_-]*|libsqlite3-sys|rusqlite|sqlite[a-z0-9_-]*|cron|executus-(persona|skill|audit|critic|budget|schedule|store))$'
LEAN_CRATES=(executus-llm executus executus-swarm pr-review-swarm)

# Reads `cargo tree --prefix none --format {p}` lines on stdin; prints offenders; fails if any.
check_tree() {
  local offenders
  offenders=$(awk '{print $1}' | sort -u | grep -E "$FORBIDDEN" || true)
  if [ -n "$offenders" ]; then
    printf '%s\n' "$offenders"
    return 1
  fi
}

if [ "${1:-}" = "--self-test" ]; then
  if printf 'executus v0.1.0\ntokio v1.0.0\nsqlx v0.8.6\n' | check_tree >/dev/null; then
    echo "self-test FAILED: a tree with sqlx passed" >&2; exit 1
  fi
  if printf 'executus v0.1.0\ncron v0.15.0\n' | check_tree >/dev/null; then
    echo "self-test FAILED: a tree with cron passed" >&2; exit 1
  fi
  if ! printf 'executus v0.1.0\ntokio v1.0.0\n' | check_tree >/dev/null; then
    echo "self-test FAILED: a clean tree failed" >&2; exit 1
  fi
  echo "check-deps self-test ok"
  exit 0
fi

status=0
for crate in "${LEAN_CRATES[@]}"; do
  if ! cargo metadata --no-deps --format-version 1 2>/dev/null | grep -q "\"name\":\"$crate\""; then
    continue
  fi
  if ! out=$(cargo tree -p "$crate" -e normal --prefix none --format '{p}' 2>&1); then
    echo "cargo tree failed for $crate:" >&2; echo "$out" >&2; exit 2
  fi
  if ! bad=$(printf '%s\n' "$out" | check_tree); then
    echo "FORBIDDEN dependency in $crate's normal tree: $bad" >&2
    status=1
  fi
done
if grep -rnE 'executus_(persona|skill|audit|critic|budget|schedule|store)\b' llm/ core/ --include='*.rs' --include='Cargo.toml' >/dev/null 2>&1; then
  echo "a battery/store crate is referenced from llm/ or core/:" >&2
  grep -rnE 'executus_(persona|skill|audit|critic|budget|schedule|store)\b' llm/ core/ --include='*.rs' >&2 || true
  status=1
fi
[ $status -eq 0 ] && echo "check-deps ok: ${LEAN_CRATES[*]} are free of sqlx, sqlite, cron and batteries"
exit $status
