#!/usr/bin/env bash
# The test command (README, and what .ci/run calls): invariants, format, lints, the whole
# workspace's tests — including the suite against a real llama.cpp server when one can be
# set up on this machine (see scripts/peer-llama.sh), and the PostgreSQL suites against a
# throwaway PostgreSQL cluster (scripts/peer-postgres.sh; under CI=true one that cannot be
# started fails the run).
set -euo pipefail
cd "$(dirname "$0")/.."

ci/check-deps.sh --self-test
ci/check-deps.sh
cargo fmt --all --check

# The workflow-schema validator for the shipped pr-review-swarm CI files (check-jsonschema,
# pinned, into target/; the tests fail under CI=true without it).
if line=$(scripts/setup-check-jsonschema.sh); then
  case "$line" in
    EXECUTUS_CHECK_JSONSCHEMA=*) export "$line" ;;
  esac
fi
cargo clippy --workspace --all-targets --locked -- -D warnings
# The API docs build without a warning (broken intra-doc links, links to private items...).
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked

peer_started=""
if [ -z "${EXECUTUS_TEST_LLAMA_URL:-}" ] && [ -x scripts/peer-llama.sh ]; then
  if line=$(scripts/peer-llama.sh start); then
    case "$line" in
      EXECUTUS_TEST_LLAMA_URL=*) export "$line"; peer_started=1 ;;
    esac
  fi
fi
pg_started=""
if [ -z "${EXECUTUS_TEST_PG_URL:-}" ]; then
  if line=$(scripts/peer-postgres.sh start); then
    case "$line" in
      EXECUTUS_TEST_PG_URL=*) export "$line"; pg_started=1 ;;
    esac
  elif [ "${CI:-}" = "true" ]; then
    echo "FAILED: PostgreSQL could not be started (scripts/peer-postgres.sh); CI never skips it" >&2
    exit 1
  fi
fi
cleanup() {
  if [ -n "$peer_started" ]; then scripts/peer-llama.sh stop || true; fi
  if [ -n "$pg_started" ]; then scripts/peer-postgres.sh stop || true; fi
}
trap cleanup EXIT
if [ -n "${EXECUTUS_TEST_LLAMA_URL:-}" ]; then
  echo "real llama.cpp peer at $EXECUTUS_TEST_LLAMA_URL"
elif [ "${CI:-}" = true ]; then
  # A CI run must not pass without its peer (the tests would fail on their own too; this
  # fails before the long part, with the reason).
  echo "error: CI=true and the llama.cpp peer could not be started (scripts/peer-llama.sh start)" >&2
  exit 1
else
  echo "*** NOTICE: no llama.cpp peer could be started; the peer suite (llm/tests/it/peer_llama.rs) will be SKIPPED ***" >&2
fi
if [ -n "${EXECUTUS_TEST_PG_URL:-}" ]; then
  echo "real PostgreSQL at ${EXECUTUS_TEST_PG_URL%%\?*}"
else
  echo "NOTICE: no PostgreSQL available; the PostgreSQL suites will report that they did not run"
fi

# MCP servers and the OTLP receiver (pinned, into target/peers/; quick when already there).
# Without them the MCP and telemetry suites fail under CI=true and skip loudly elsewhere.
scripts/peer-mcp.sh || echo "NOTICE: scripts/peer-mcp.sh failed; the MCP and telemetry suites will say so"
# The fleet's browser test needs Debian's chromium (installed once, quietly).
scripts/setup-chromium.sh || echo "NOTICE: chromium could not be installed; the fleet's browser test will say it did not run"

cargo test --workspace --locked

# The benchmarks' smoke (tiny sizes, seconds, no peers, writes nothing): it must keep running;
# its figures (a debug build) mean nothing and no target is enforced here.
cargo run -p executus-bench --locked -- all --smoke
