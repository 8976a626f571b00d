#!/usr/bin/env bash
# P1 beside a Python framework: creates (once) a virtualenv under target/bench-venv holding the
# OpenAI Agents SDK (pinned), then runs the P1 workload through it (agents_bench.py).
#
#   bench/python/run.sh setup          install if needed; print the venv's python path
#   bench/python/run.sh bench ARGS...  run agents_bench.py with ARGS (see its --help)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
venv="$root/target/bench-venv"
AGENTS_VERSION=0.24.0

setup() {
  if ! "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('openai-agents') != '$AGENTS_VERSION')" 2>/dev/null; then
    python3 -m venv "$venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "openai-agents==$AGENTS_VERSION" >&2
  fi
  echo "$venv/bin/python"
}

case "${1:-}" in
  setup) setup ;;
  bench) shift; py=$(setup); exec "$py" "$here/agents_bench.py" "$@" ;;
  *) echo "usage: $0 setup | bench ARGS..." >&2; exit 2 ;;
esac
