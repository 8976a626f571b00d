#!/usr/bin/env bash
# A real llama.cpp `llama-server` for the `peer_llama` integration tests (llm/tests/it/peer_llama.rs).
#
#   scripts/peer-llama.sh [start]   set the server up if needed (built once per machine, cached),
#                                   start it on a free loopback port and print, on stdout, the
#                                   one line  EXECUTUS_TEST_LLAMA_URL=http://127.0.0.1:PORT
#   scripts/peer-llama.sh stop      stop the server this checkout started
#
# Progress and notices go to stderr; stdout carries only that line. When the peers folder is
# missing the script says so and exits 0 printing nothing, and the tests skip with a notice.
#
# The peers folder is $EXECUTUS_PEERS_DIR, by default <repo root>/../shared/peers; from a linked
# git worktree whose own ../shared/peers does not exist, the main checkout's is used; failing
# both, the copy in scripts/peers/ (so a fresh clone can build the peer itself).
# Model: $EXECUTUS_PEER_MODEL (default tiny-llama3; the tests expect tiny-llama3).
#
# In .ci/run:
#   line=$(scripts/peer-llama.sh start)
#   if [ -n "$line" ]; then export "$line"; trap 'scripts/peer-llama.sh stop' EXIT; fi
set -euo pipefail

ROOT=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
MODEL=${EXECUTUS_PEER_MODEL:-tiny-llama3}
# Where llama-server.sh keeps its build and models (its own default).
CACHE=${EXECUTUS_PEERS:-$HOME/.cache/executus-peers}
# The port of the server this checkout started.
STATE=$ROOT/target/peer-llama.port

note() { echo "peer-llama: $*" >&2; }

peers_dir() {
  if [ -n "${EXECUTUS_PEERS_DIR:-}" ]; then
    echo "$EXECUTUS_PEERS_DIR"
    return
  fi
  local dir=$ROOT/../shared/peers
  if [ ! -d "$dir" ]; then
    # A linked worktree: try next to the main checkout.
    local common
    common=$(git -C "$ROOT" rev-parse --path-format=absolute --git-common-dir 2>/dev/null || true)
    if [ -n "$common" ] && [ -d "$(dirname "$common")/../shared/peers" ]; then
      dir=$(dirname "$common")/../shared/peers
    fi
  fi
  if [ ! -d "$dir" ]; then
    # A checkout without the shared folder (e.g. a fresh CI clone): the copy kept in the repo.
    dir=$ROOT/scripts/peers
  fi
  echo "$dir"
}

free_port() {
  if command -v python3 >/dev/null; then
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
    return
  fi
  local port
  for _ in $(seq 1 50); do
    port=$((20000 + RANDOM % 20000))
    # Nothing answering means nothing listens there.
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return
    fi
  done
  note "no free port found"
  return 1
}

healthy() { curl -sf "http://127.0.0.1:$1/health" >/dev/null 2>&1; }

start() {
  local peers url port
  peers=$(peers_dir)
  if [ ! -x "$peers/llama-server.sh" ]; then
    note "no peers folder at $peers (set EXECUTUS_PEERS_DIR); peer tests will be skipped"
    return 0
  fi
  if [ -f "$STATE" ] && healthy "$(cat "$STATE")"; then
    note "already running on port $(cat "$STATE")"
    echo "EXECUTUS_TEST_LLAMA_URL=http://127.0.0.1:$(cat "$STATE")"
    return 0
  fi
  if [ ! -x "$CACHE/llama.cpp/build/bin/llama-server" ] || [ ! -f "$CACHE/models/$MODEL.gguf" ]; then
    note "setting up llama-server (first time on this machine: several minutes)"
    "$peers/llama-server.sh" setup >&2
  fi
  mkdir -p "$(dirname "$STATE")"
  # A free port can be taken between the check and the bind: try a few.
  for _ in 1 2 3; do
    port=$(free_port)
    if url=$("$peers/llama-server.sh" start "$port" "$MODEL"); then
      echo "$port" > "$STATE"
      note "$MODEL serving on $url"
      echo "EXECUTUS_TEST_LLAMA_URL=$url"
      return 0
    fi
    "$peers/llama-server.sh" stop "$port"
  done
  note "llama-server did not start; see $CACHE/logs"
  return 1
}

stop() {
  local peers port
  peers=$(peers_dir)
  if [ ! -f "$STATE" ]; then
    note "no server started by this checkout"
    return 0
  fi
  port=$(cat "$STATE")
  if [ -x "$peers/llama-server.sh" ]; then
    "$peers/llama-server.sh" stop "$port"
  else
    note "no peers folder at $peers; cannot stop the server on port $port"
  fi
  rm -f "$STATE"
  note "stopped the server on port $port"
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  *) sed -n '2,19p' "$0" >&2; exit 2 ;;
esac
