#!/usr/bin/env bash
# The long reliability suite (RELIABILITY.md): everything the normal `cargo test --workspace`
# runs only in a short form, at full size, printing the figures RELIABILITY.md quotes.
#
#   scripts/reliability.sh            everything below, fuzzing included (about 70 minutes,
#                                     60 of them fuzzing: 10 minutes per target)
#   scripts/reliability.sh --no-fuzz  everything but fuzzing (a few minutes)
#
# Knobs (environment): EXECUTUS_LOAD_RUNS (fairness, default 10000), EXECUTUS_CRASH_RANDOM
# (randomly killed runs, default 200), FUZZ_ARGS (passed to scripts/fuzz.sh, default: none,
# i.e. every target for 10 minutes).
#
# Output: every step's figures on stdout, and a copy in target/reliability/<step>.log.
set -euo pipefail
cd "$(dirname "$0")/.."

fuzz=1
for arg in "$@"; do
    case "$arg" in
        --no-fuzz) fuzz=0 ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "unknown option $arg" >&2; exit 2 ;;
    esac
done

logs=target/reliability
mkdir -p "$logs"
failed=()

step() {
    local name="$1"; shift
    echo "==> $name: $*"
    local started=$SECONDS
    if "$@" 2>&1 | tee "$logs/$name.log"; then
        echo "<== $name: ok in $((SECONDS - started)) s"
    else
        echo "<== $name: FAILED after $((SECONDS - started)) s (log: $logs/$name.log)"
        failed+=("$name")
    fi
}

# Build once, so each step's time is its own.
cargo test --workspace --locked --no-run >/dev/null

# 1. Provider faults: the provider crate, the whole runtime, the CLI (tables on stdout).
# Release builds with the timers checked: each case must end inside its own timers plus a
# small slack (the normal test run only guards against hangs; see the suites' SLACK).
export EXECUTUS_STRICT_TIMERS=1
step faults-llm cargo test --release -p executus-llm --test it faults --locked
step faults-runtime cargo test --release -p executus --test it faults --locked -- --nocapture
step faults-cli cargo test --release -p executus-run --test it faults --locked -- --nocapture

# 2. Crash and restart: the 20-point gauntlet, the 20 points as independent runs, random
#    kills until every run finishes, SIGTERM on run and schedule; the store's own crash test.
#    (The normal test run takes 4 of the points and 3 random-kill runs.)
step crash-cli env EXECUTUS_CRASH_FULL=1 EXECUTUS_CRASH_RANDOM="${EXECUTUS_CRASH_RANDOM:-200}" \
    cargo test -p executus-run --test it crash --locked -- --nocapture --test-threads 1
step crash-store cargo test -p executus-store --test it crash --locked -- --nocapture

# 3. Load and fairness: 10,000 runs, 3 tenants, 4 lanes.
step fairness env EXECUTUS_LOAD_RUNS="${EXECUTUS_LOAD_RUNS:-10000}" \
    cargo test -p executus --test it fairness --locked -- --nocapture
# ... and the live heap returns to its baseline after each wave of 10,000 runs.
step memory env EXECUTUS_LOAD_RUNS="${EXECUTUS_LOAD_RUNS:-10000}" \
    cargo test -p executus --test memory --locked -- --nocapture

# 4. Budget under concurrency: 100 concurrent runs over three OS processes and one SQLite file.
step budget-processes cargo test -p executus-store --test it budget_processes --locked -- --nocapture

# 8. Workers on PostgreSQL (a throwaway cluster unless EXECUTUS_TEST_PG_URL is set): SIGKILLed
#    workers (300 runs, 20 kills), a cron job over 3 workers for 50 slots, one spend cap
#    across workers, a SQLite store copied into PostgreSQL and finished there.
pg_started=""
if [ -z "${EXECUTUS_TEST_PG_URL:-}" ] && line=$(scripts/peer-postgres.sh start); then
    export "$line"; pg_started=1
fi
step workers-pg env EXECUTUS_PG_CHAOS_FULL=1 \
    cargo test -p executus-store --test it workers --locked -- --nocapture --test-threads 1
if [ -n "$pg_started" ]; then scripts/peer-postgres.sh stop || true; fi

# 6. Secrets, 7. runaway agents, 5. hostile tool traffic.
step secrets-cli cargo test -p executus-run --test it secrets --locked -- --nocapture
step secrets-inprocess cargo test -p executus-run --test secrets --locked -- --nocapture
step runaway cargo test -p executus-run --test it runaway --locked -- --nocapture

# 5. Hostile input: fuzzing (see fuzz/README.md), when the fuzz crate is present.
if [[ $fuzz -eq 1 && -x scripts/fuzz.sh ]]; then
    # shellcheck disable=SC2086 # FUZZ_ARGS is a list of arguments
    step fuzz scripts/fuzz.sh ${FUZZ_ARGS:-}
elif [[ $fuzz -eq 1 ]]; then
    echo "==> fuzz: skipped (scripts/fuzz.sh is not in this tree)"
fi

if [[ ${#failed[@]} -gt 0 ]]; then
    echo "FAILED: ${failed[*]}"
    exit 1
fi
echo "all reliability steps passed"
