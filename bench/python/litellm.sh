#!/usr/bin/env bash
# The gateway benchmark's reference: the LiteLLM proxy (pinned), in a virtualenv under
# target/litellm-venv (pip cache ~/.cache/executus-pip).
#
#   bench/python/litellm.sh setup   install if needed; print the `litellm` executable's path
#
# Started by the bench offline: `LITELLM_LOCAL_MODEL_COST_MAP=True` (otherwise it fetches a
# price list from outside at import and stalls), `--host 127.0.0.1` (its default is 0.0.0.0)
# and a `master_key` (it refuses to start without one).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
venv="$root/target/litellm-venv"
LITELLM_VERSION=1.108.7

setup() {
  if ! "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('litellm') != '$LITELLM_VERSION')" 2>/dev/null; then
    python3 -m venv "$venv" >&2
    PIP_CACHE_DIR=$HOME/.cache/executus-pip "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
      "litellm[proxy]==$LITELLM_VERSION" >&2
  fi
  echo "$venv/bin/litellm"
}

case "${1:-}" in
  setup) setup ;;
  *) echo "usage: $0 setup" >&2; exit 2 ;;
esac
