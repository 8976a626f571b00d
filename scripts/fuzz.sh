#!/usr/bin/env bash
# Fuzzes executus's parsers with cargo-fuzz (libFuzzer). See fuzz/README.md.
#
#   scripts/fuzz.sh                 every target for 10 minutes, then minimise the corpus
#   scripts/fuzz.sh --smoke         every target for ~10 s on the committed corpus (CI)
#   scripts/fuzz.sh --time 60 sse   chosen targets, chosen seconds each
#
# Targets: sse ndjson dsn chain tool_args config (fuzz/fuzz_targets/). A full run adds the
# inputs it found to fuzz/corpus/<target>/ and minimises that folder (`cargo fuzz cmin`);
# a smoke run never changes the committed corpus. fuzz/regressions/<target>/ (inputs behind
# past fixes) are extra seeds. Crashes land in fuzz/artifacts/<target>/;
# logs in fuzz/logs/. Exit status 1 if any target crashed.
#
# Requirements, installed here when missing:
# - cargo-fuzz (`cargo install cargo-fuzz --locked --version 0.13.2`, pinned, from the crates registry);
# - nightly compiler flags: cargo-fuzz passes -Zsanitizer / sancov options, so on the stable
#   toolchain this script sets RUSTC_BOOTSTRAP=1 (only for the fuzz build, which has its own
#   workspace and target folder: the main workspace's builds are untouched).
# Targets are built without a sanitizer (`-s none`: the code under test forbids `unsafe`, and
# the fuzzer runs about twice as fast) and with debug assertions (integer overflow panics).
# Every run is `nice -n 19`: the machine is shared.
set -euo pipefail

cd "$(dirname "$0")/.."

ALL_TARGETS=(sse ndjson dsn chain tool_args config)
seconds=600
smoke=0
targets=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --smoke) smoke=1; seconds=10; shift ;;
        --time) seconds="$2"; shift 2 ;;
        -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
        -*) echo "unknown option $1" >&2; exit 2 ;;
        *) targets+=("$1"); shift ;;
    esac
done
[[ ${#targets[@]} -gt 0 ]] || targets=("${ALL_TARGETS[@]}")

export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    nice -n 19 cargo install cargo-fuzz --locked --version 0.13.2
fi

FUZZ_FLAGS=(-s none --debug-assertions)
echo "building fuzz targets" >&2
build_log=$(mktemp)
if ! nice -n 19 cargo fuzz build "${FUZZ_FLAGS[@]}" >"$build_log" 2>&1; then
    # The whole reason, not only the last lines (a compile error is above cargo-fuzz's backtrace).
    grep -v '^ *Compiling ' "$build_log" | head -n 60 >&2
    rm -f "$build_log"
    echo "error: the fuzz targets did not build" >&2
    exit 1
fi
tail -n 1 "$build_log" >&2
rm -f "$build_log"

mkdir -p fuzz/logs
failed=0
summary=()
for target in "${targets[@]}"; do
    corpus="fuzz/corpus/$target"
    mkdir -p "$corpus" "fuzz/artifacts/$target"
    # New inputs go to a scratch folder first; the committed corpus is read as a seed.
    scratch=$(mktemp -d "${TMPDIR:-/tmp}/executus-fuzz-$target.XXXXXX")
    dict=()
    [[ -f "fuzz/dict/$target.dict" ]] && dict=("-dict=fuzz/dict/$target.dict")
    log="fuzz/logs/$target.log"
    echo "fuzzing $target for ${seconds}s (log: $log)" >&2
    started=$(date +%s)
    status=0
    # The inputs behind past fixes (fuzz/regressions/) are extra seeds, never minimised away.
    seeds=("$corpus")
    [[ -d "fuzz/regressions/$target" ]] && seeds+=("fuzz/regressions/$target")
    nice -n 19 cargo fuzz run "${FUZZ_FLAGS[@]}" "$target" "$scratch" "${seeds[@]}" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
        -print_final_stats=1 "${dict[@]}" >"$log" 2>&1 || status=$?
    # libFuzzer's own count of seconds spent fuzzing (building is not counted).
    # (`|| true`: a crashed run has no "Done" line, and the summary must still be printed.)
    took=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | grep -o '[0-9]* second' | grep -o '[0-9]*' | tail -n 1 || true)
    [[ -n "$took" ]] || took=$(( $(date +%s) - started ))
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n 1 || true)
    rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n 1 || true)
    if [[ $status -ne 0 ]]; then
        failed=1
        result="CRASH (exit $status; see $log and fuzz/artifacts/$target/)"
        grep -m 5 -E 'panicked|ERROR: libFuzzer|Test unit written' "$log" >&2 || true
    else
        result="ok"
    fi
    if [[ $smoke -eq 0 && $status -eq 0 ]]; then
        cp -n "$scratch"/* "$corpus"/ 2>/dev/null || true
        # Keep one input per covered edge (not per hit-count bucket): a small corpus to commit.
        nice -n 19 cargo fuzz cmin "${FUZZ_FLAGS[@]}" "$target" "$corpus" -- -use_counters=0 >>"$log" 2>&1
    fi
    rm -rf "$scratch"
    files=$(find "$corpus" -type f | wc -l)
    summary+=("$(printf '%-10s %6ss %12s execs %8s/s  corpus %5s files  %s' \
        "$target" "$took" "${execs:-?}" "${rate:-?}" "$files" "$result")")
done

printf '%s\n' "${summary[@]}"
exit $failed
