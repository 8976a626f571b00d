#!/usr/bin/env bash
# Clients of the gateway suites (gateway/tests/it, cli/tests/it/serve.rs), installed from the
# package registries at pinned versions into target/peers/gateway/ (caches under
# ~/.cache/executus-npm and ~/.cache/executus-pip, so a rerun is quick):
#
#   target/peers/gateway/venv/bin/python                         the official `openai` and `anthropic` SDKs
#   target/peers/gateway/npm/node_modules/.bin/claude            @anthropic-ai/claude-code
#   target/peers/gateway/npm/node_modules/.bin/codex             @openai/codex
#
#   scripts/peer-gateway.sh [setup]   install what is missing; prints nothing on stdout
#
# Nothing here is started: the suites run the SDKs against loopback servers and the agent CLIs
# inside a loopback-only network namespace with their telemetry and update checks off.
# Idempotent: a stamp file records the pinned versions; nothing is fetched when they match.
# A failure prints a notice on stderr and exits non-zero; the suites then fail under CI=true
# and skip loudly otherwise.
set -euo pipefail

OPENAI=3.63.0
ANTHROPIC=2.17.0
CLAUDE_CODE=2.1.332
CODEX=0.171.0

ROOT=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
DIR=$ROOT/target/peers/gateway
STAMP=$DIR/stamp
WANT="openai=$OPENAI anthropic=$ANTHROPIC claude-code=$CLAUDE_CODE codex=$CODEX"

note() { echo "peer-gateway: $*" >&2; }

installed() {
  [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && [ -x "$DIR/venv/bin/python" ] \
    && [ -x "$DIR/npm/node_modules/.bin/claude" ] && [ -x "$DIR/npm/node_modules/.bin/codex" ]
}
# The agent scenarios run the CLIs in a loopback-only network namespace: `unshare -n` and
# `ip link set lo up` (Debian's util-linux and iproute2).
if ! command -v ip >/dev/null && command -v apt-get >/dev/null; then
  SUDO=""
  if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO="sudo -n"; fi
  note "installing iproute2 (ip) for the agents' network namespace"
  $SUDO apt-get update -qq >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends iproute2 >/dev/null 2>&1 \
    || note "could not install iproute2; the agent scenarios will say so"
fi
if installed; then
  exit 0
fi
for tool in python3 npm; do
  command -v "$tool" >/dev/null || { note "$tool is missing"; exit 1; }
done
mkdir -p "$DIR/npm"
note "installing the gateway's clients into $DIR (pinned: $WANT)"
if [ ! -x "$DIR/venv/bin/pip" ]; then
  rm -rf "$DIR/venv"
  if ! python3 -m venv "$DIR/venv" >/dev/null 2>&1; then
    # Debian's python3 comes without the venv module: install it (quietly) and try again.
    rm -rf "$DIR/venv"
    SUDO=""
    if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO="sudo -n"; fi
    if command -v apt-get >/dev/null; then
      pyver=$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
      $SUDO apt-get update -qq >/dev/null 2>&1 || true
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        "python$pyver-venv" >/dev/null 2>&1 \
        || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-venv >/dev/null 2>&1 \
        || true
    fi
    python3 -m venv "$DIR/venv" >&2 || { note "python3 -m venv failed (the venv module is missing)"; exit 1; }
  fi
fi
PIP_CACHE_DIR=$HOME/.cache/executus-pip PIP_DISABLE_PIP_VERSION_CHECK=1 \
  "$DIR/venv/bin/pip" install --quiet "openai==$OPENAI" "anthropic==$ANTHROPIC" >&2
(
  cd "$DIR/npm"
  [ -f package.json ] || echo '{"private": true}' > package.json
  # The CLIs' own install scripts fetch nothing we need (native binaries ship as optional
  # dependencies of the package).
  npm_config_cache=$HOME/.cache/executus-npm npm install --no-fund --no-audit --loglevel=error \
    "@anthropic-ai/claude-code@$CLAUDE_CODE" "@openai/codex@$CODEX" >&2
)
echo "$WANT" > "$STAMP"
installed || { note "the install finished but a client is missing under $DIR"; exit 1; }
note "ready"
