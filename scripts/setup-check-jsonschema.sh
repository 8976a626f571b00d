#!/usr/bin/env bash
# Installs the workflow-schema validator the pr-review-swarm tests use to check the shipped CI
# files (examples/pr-review-swarm/ci/): check-jsonschema, pinned, from PyPI, into a venv under
# target/ (its own schemas for GitHub workflows and GitLab CI are bundled: it works offline).
# Downloads are cached in ~/.cache/executus-pip, so a rerun is quick and quiet.
#
#   scripts/setup-check-jsonschema.sh   prints, on stdout, the one line
#                                       EXECUTUS_CHECK_JSONSCHEMA=<path of the executable>
#
# When python3 or the registry is missing, it says so on stderr and prints nothing; the tests
# then skip loudly, or fail under CI=true.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VERSION=0.39.0
VENV=$ROOT/target/venv-check-jsonschema
BIN=$VENV/bin/check-jsonschema
CACHE=${EXECUTUS_PIP_CACHE:-$HOME/.cache/executus-pip}

note() { echo "setup-check-jsonschema: $*" >&2; }

if [ -x "$BIN" ] && [ "$("$BIN" --version 2>/dev/null | awk '{print $NF}')" = "$VERSION" ]; then
  echo "EXECUTUS_CHECK_JSONSCHEMA=$BIN"
  exit 0
fi
if ! command -v python3 >/dev/null; then
  note "python3 not found; the workflow schema tests cannot run"
  exit 0
fi
rm -rf "$VENV"
if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
  note "python3 -m venv failed (is the venv module installed?)"
  exit 0
fi
mkdir -p "$CACHE"
if ! PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV/bin/pip" install --quiet --cache-dir "$CACHE" \
  "check-jsonschema==$VERSION" >&2; then
  note "pip could not install check-jsonschema==$VERSION"
  exit 0
fi
echo "EXECUTUS_CHECK_JSONSCHEMA=$BIN"
