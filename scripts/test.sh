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
else
  echo "NOTICE: no llama.cpp peer available; the peer suite will report that it did not run"
fi
if [ -n "${EXECUTUS_TEST_PG_URL:-}" ]; then
  echo "real PostgreSQL at ${EXECUTUS_TEST_PG_URL%%\?*}"
else
  echo "NOTICE: no PostgreSQL available; the PostgreSQL suites will report that they did not run"
fi

cargo test --workspace --locked

# The benchmarks' smoke (tiny sizes, seconds, no peers, writes nothing): it must keep running;
# its figures (a debug build) mean nothing and no target is enforced here.
cargo run -p executus-bench --locked -- all --smoke
