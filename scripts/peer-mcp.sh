#!/usr/bin/env bash
# Peers of the MCP and OpenTelemetry suites (batteries/mcp/tests/it, cli/tests/it/telemetry.rs),
# installed from the package registries at pinned versions into target/peers/ (caches under
# ~/.cache/executus-npm and ~/.cache/executus-pip, so a rerun is quick and offline-safe):
#
#   target/peers/mcp/node_modules/.bin/mcp-server-everything   @modelcontextprotocol/server-everything
#   target/peers/mcp/node_modules/.bin/mcp-server-filesystem   @modelcontextprotocol/server-filesystem
#   target/peers/venv/bin/python                               with the `mcp` package (test servers)
#   target/peers/venv/.../rotel/rotel-agent                    the OTLP receiver (`rotel`, a pre-release)
#
#   scripts/peer-mcp.sh [setup]    install what is missing; prints nothing on stdout
#
# Idempotent: a stamp file records the pinned versions; nothing is fetched when they match.
# A failure prints a notice on stderr and exits non-zero; the suites then fail under CI=true
# and skip loudly otherwise.
set -euo pipefail

EVERYTHING=2026.8.31
FILESYSTEM=2026.8.31
MCP_PY=2.3.0
ROTEL=0.0.1a15

ROOT=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
DIR=$ROOT/target/peers
STAMP=$DIR/stamp
WANT="everything=$EVERYTHING filesystem=$FILESYSTEM mcp=$MCP_PY rotel=$ROTEL"

note() { echo "peer-mcp: $*" >&2; }

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
  exit 0
fi
mkdir -p "$DIR/mcp"
note "installing MCP servers and the OTLP receiver into $DIR (pinned: $WANT)"
(
  cd "$DIR/mcp"
  [ -f package.json ] || echo '{"private": true}' > package.json
  npm_config_cache=$HOME/.cache/executus-npm npm install --no-fund --no-audit --loglevel=error \
    "@modelcontextprotocol/server-everything@$EVERYTHING" \
    "@modelcontextprotocol/server-filesystem@$FILESYSTEM" >&2
)
if [ ! -x "$DIR/venv/bin/python" ]; then
  python3 -m venv "$DIR/venv" >&2
fi
PIP_CACHE_DIR=$HOME/.cache/executus-pip PIP_DISABLE_PIP_VERSION_CHECK=1 \
  "$DIR/venv/bin/pip" install --quiet --pre "mcp==$MCP_PY" "rotel==$ROTEL" >&2
echo "$WANT" > "$STAMP"
note "ready"
