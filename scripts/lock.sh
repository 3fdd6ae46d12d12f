#!/usr/bin/env bash
# Rewrites the lock files in requirements/ from pyproject.toml (pip-tools, with hashes).
# `bash scripts/lock.sh` keeps every pin it can and only resolves what pyproject.toml changed;
# `bash scripts/lock.sh --upgrade` moves every pin to the newest release and then runs the
# whole test suite against them (scripts/test.sh), so a red run shows what moved.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$OPSMEDIC_ROOT"

# pip-tools itself is pinned: a new release may write a different file from the same input.
PIP_TOOLS=pip-tools==7.7.0
upgrade=()
case "${1:-}" in
  "") ;;
  --upgrade) upgrade=(--upgrade) ;;
  *) die "usage: bash scripts/lock.sh [--upgrade]" ;;
esac

tools="$(mktemp -d)"
trap 'rm -rf "$tools"' EXIT
section "pip-tools ($PIP_TOOLS) in $tools"
python3 -m venv "$tools"
"$tools/bin/python" -m pip install -q "$PIP_TOOLS"

# Only the public index, whatever this machine's pip.conf adds: the hashes must be those of
# the files any other machine downloads. Build dependencies (hatchling, editables) are locked
# too, since the scripts install the project without build isolation.
compile() {
  local out="$1"
  shift
  section "$out"
  PIP_CONFIG_FILE=/dev/null "$tools/bin/pip-compile" -q "${upgrade[@]}" --generate-hashes \
    --allow-unsafe --strip-extras --all-build-deps --no-emit-index-url --no-emit-find-links \
    "$@" -o "$out" pyproject.toml
}
compile requirements/test.txt --extra test
# The run lock takes its versions from the test lock, so the demo runs what the tests tested.
compile requirements/run.txt -c requirements/test.txt

if [ "${#upgrade[@]}" -gt 0 ]; then
  section "the suite against the new pins"
  exec bash scripts/test.sh
fi
