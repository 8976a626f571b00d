#!/usr/bin/env bash
# Dependency invariants (the layers point down only: llm <- core <- batteries <- store <- cli,
# and the examples sit on the product, never on the CLI):
#
#   1. the provider crate (executus-llm), the core crate (executus) and the light-host example
#      (pr-review-swarm) never have sqlx, SQLite, cron, an MCP client, OpenTelemetry (export
#      happens in the hosts) or any executus battery/store crate in their normal dependency
#      tree, and no source file under llm/ or core/ names a battery;
#   2. no battery (every crate under batteries/) has executus-store, executus-run or the SQLite
#      stack (sqlx, libsqlite3-sys, rusqlite) in its normal tree: a battery is a port's
#      implementation with an in-memory store; its SQLite store lives in executus-store;
#   3. no example (every crate under examples/) depends on executus-run, in its normal, build or
#      dev dependencies: examples are built on the libraries a user gets, not on the CLI;
#   4. the core and the light host (executus, executus-swarm, pr-review-swarm) have no image
#      codec in their normal tree: the `image` crate comes only with executus-llm's `media`
#      feature, which the CLI, the heavy host and the bench turn on.
#
#   ci/check-deps.sh              check the workspace
#   ci/check-deps.sh --self-test  prove each rule fails on a tree that breaks it
set -euo pipefail
cd "$(dirname "$0")/.."

LEAN_FORBIDDEN='^(sqlx[a-z0-9_-]*|libsqlite3-sys|rusqlite|sqlite[a-z0-9_-]*|cron|rmcp|opentelemetry[a-z0-9_-]*|tracing-opentelemetry|executus-(persona|skill|audit|critic|budget|schedule|store|chat|mcp))$'
LEAN_CRATES=(executus-llm executus executus-swarm pr-review-swarm)
BATTERY_FORBIDDEN='^(executus-store|executus-run|sqlx[a-z0-9_-]*|libsqlite3-sys|rusqlite)$'
EXAMPLE_FORBIDDEN='^(executus-run)$'
CODECS='^(image|png|gif|zune-jpeg|zune-core|image-webp|jpeg-decoder|color_quant|moxcms)$'
CODEC_FREE=(executus executus-swarm pr-review-swarm)

# Reads `cargo tree --prefix none --format {p}` lines on stdin; prints the crates matching the
# regex $1; fails if there is any.
check_tree() {
  local offenders
  offenders=$(awk '{print $1}' | sort -u | grep -E "$1" || true)
  if [ -n "$offenders" ]; then
    printf '%s\n' "$offenders"
    return 1
  fi
}

# The package names of the crates whose manifests are at the paths given.
package_names() {
  local manifest
  for manifest in "$@"; do
    [ -f "$manifest" ] || continue
    # The first `name = "..."` of the manifest is its [package] name.
    sed -n 's/^name *= *"\([^"]*\)".*/\1/p' "$manifest" | head -n 1
  done
}

if [ "${1:-}" = "--self-test" ]; then
  fail() { echo "self-test FAILED: $*" >&2; exit 1; }
  printf 'executus v0.1.0\ntokio v1.0.0\nsqlx v0.8.6\n' | check_tree "$LEAN_FORBIDDEN" >/dev/null \
    && fail "a lean tree with sqlx passed"
  printf 'executus v0.1.0\ncron v0.15.0\n' | check_tree "$LEAN_FORBIDDEN" >/dev/null \
    && fail "a lean tree with cron passed"
  printf 'executus v0.1.0\ntokio v1.0.0\n' | check_tree "$LEAN_FORBIDDEN" >/dev/null \
    || fail "a clean lean tree failed"
  printf 'executus-audit v0.1.0\nexecutus v0.1.0\nexecutus-store v0.1.0\n' | check_tree "$BATTERY_FORBIDDEN" >/dev/null \
    && fail "a battery tree with executus-store passed"
  printf 'executus-audit v0.1.0\nsqlx-sqlite v0.8.6\n' | check_tree "$BATTERY_FORBIDDEN" >/dev/null \
    && fail "a battery tree with sqlx-sqlite passed"
  printf 'executus-schedule v0.1.0\nexecutus v0.1.0\ncron v0.15.0\n' | check_tree "$BATTERY_FORBIDDEN" >/dev/null \
    || fail "a clean battery tree (cron is a battery's own business) failed"
  printf 'chatbot v0.1.0\nexecutus-store v0.1.0\nexecutus-run v0.1.0\n' | check_tree "$EXAMPLE_FORBIDDEN" >/dev/null \
    && fail "an example tree with executus-run passed"
  printf 'chatbot v0.1.0\nexecutus-store v0.1.0\n' | check_tree "$EXAMPLE_FORBIDDEN" >/dev/null \
    || fail "a clean example tree failed"
  printf 'executus v0.1.0\nimage v0.25.10\n' | check_tree "$CODECS" >/dev/null \
    && fail "a tree with the image crate passed the codec check"
  printf 'executus v0.1.0\nimage-meta v0.1.0\n' | check_tree "$CODECS" >/dev/null \
    || fail "a codec-free tree failed the codec check"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  printf '[package]\nname = "executus-x"\nversion = "1"\n\n[dependencies.y]\nname = "z"\n' >"$tmp/Cargo.toml"
  [ "$(package_names "$tmp/Cargo.toml")" = "executus-x" ] || fail "a manifest's package name was not read"
  [ -n "$(package_names batteries/*/Cargo.toml)" ] || fail "no battery crate found under batteries/"
  [ -n "$(package_names examples/*/Cargo.toml)" ] || fail "no example crate found under examples/"
  echo "check-deps self-test ok"
  exit 0
fi

members=$(cargo metadata --no-deps --format-version 1 2>/dev/null)
status=0
# check CRATE EDGES REGEX WHAT: the crate's tree over EDGES must hold nothing matching REGEX.
check() {
  local crate=$1 edges=$2 regex=$3 what=$4 out bad
  if ! grep -q "\"name\":\"$crate\"" <<<"$members"; then
    return 0
  fi
  if ! out=$(cargo tree -p "$crate" -e "$edges" --prefix none --format '{p}' 2>&1); then
    echo "cargo tree failed for $crate:" >&2; echo "$out" >&2; exit 2
  fi
  if ! bad=$(printf '%s\n' "$out" | check_tree "$regex"); then
    echo "FORBIDDEN dependency in $crate ($what):" $bad >&2
    status=1
  fi
}

for crate in "${LEAN_CRATES[@]}"; do
  check "$crate" normal "$LEAN_FORBIDDEN" "the lean crates have no sqlx, sqlite, cron or battery"
done
for crate in "${CODEC_FREE[@]}"; do
  check "$crate" normal "$CODECS" "the core and the light host have no image codec (only executus-llm's media feature brings one)"
done
mapfile -t batteries < <(package_names batteries/*/Cargo.toml)
for crate in "${batteries[@]}"; do
  check "$crate" normal "$BATTERY_FORBIDDEN" "batteries never depend on the store, the CLI or SQLite"
done
mapfile -t examples < <(package_names examples/*/Cargo.toml)
for crate in "${examples[@]}"; do
  check "$crate" normal,build,dev "$EXAMPLE_FORBIDDEN" "examples never depend on the CLI"
done
# The product never depends on its examples (examples depend on the product): no member that
# is not an example may have an example in its tree.
example_regex="^($(IFS='|'; echo "${examples[*]}"))\$"
mapfile -t products < <(package_names */Cargo.toml batteries/*/Cargo.toml)
for crate in "${products[@]}"; do
  case $crate in executus*) check "$crate" normal,build "$example_regex" "the product never depends on an example" ;; esac
done
if grep -rnE 'executus_(persona|skill|audit|critic|budget|schedule|store|mcp)\b' llm/ core/ --include='*.rs' --include='Cargo.toml' >/dev/null 2>&1; then
  echo "a battery/store crate is referenced from llm/ or core/:" >&2
  grep -rnE 'executus_(persona|skill|audit|critic|budget|schedule|store|mcp)\b' llm/ core/ --include='*.rs' >&2 || true
  status=1
fi
[ $status -eq 0 ] && echo "check-deps ok: ${LEAN_CRATES[*]} are free of sqlx, sqlite, cron and batteries;" \
  "batteries (${batteries[*]}) free of the store, the CLI and SQLite; examples (${examples[*]}) free of the CLI;" \
  "no product crate depends on an example; ${CODEC_FREE[*]} have no image codec"
exit $status
