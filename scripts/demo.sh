#!/usr/bin/env bash
# Quick start: sets up .venv with opsmedic installed, then runs `opsmedic demo` (arguments go
# to it) from the directory you called this from.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

section "Python environment: $VENV"
ensure_venv run

section "opsmedic demo"
exec "$VENV/bin/opsmedic" demo "$@"
