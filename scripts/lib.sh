# shellcheck shell=bash
# Shared by scripts/*.sh: section headers, Debian packages through apt, and the project's .venv.
# Source it; it sets OPSMEDIC_ROOT (the repository) and VENV, and changes no directory.

OPSMEDIC_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$OPSMEDIC_ROOT/.venv"

# pip must never wait for an answer: CI has no standard input.
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
if [ "${CI:-}" = true ]; then export PIP_PROGRESS_BAR=off; fi

section() { printf '\n==== %s ====\n' "$*"; }

die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Installs those of the named Debian packages that are not installed yet, so a rerun on a
# machine that has them all touches neither apt's lists nor the network.
ensure_apt_packages() {
  local pkg missing=()
  if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "warning: not a Debian system; install by hand: $*" >&2
    return 0
  fi
  for pkg in "$@"; do
    if [ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null)" != installed ]; then
      missing+=("$pkg")
    fi
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    echo "already installed: $*"
    return 0
  fi
  echo "installing: ${missing[*]}"
  # Another apt run on the same machine holds the lock for a while: wait for it, don't fail.
  local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=600 -o Dpkg::Use-Pty=0)
  as_root "${apt[@]}" update
  as_root "${apt[@]}" install -y --no-install-recommends "${missing[@]}"
}

# Creates .venv when it is missing or broken, then installs the locked dependencies
# (requirements/LOCK.txt: "run" or "test", every version pinned with its hashes) and the
# project itself, editable, on top. The install is skipped while the lock is unchanged since
# the last one, which keeps local reruns fast; a fresh clone has no .venv.
ensure_venv() {
  local lock="$OPSMEDIC_ROOT/requirements/$1.txt" python="${PYTHON_FOR_VENV:-python3}" stamp digest
  [ -f "$lock" ] || die "no lock file $lock"
  command -v "$python" >/dev/null 2>&1 || die "$python not found: opsmedic needs Python 3.11 or newer"
  "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    die "$("$python" -V 2>&1) is too old: opsmedic needs Python 3.11 or newer (set PYTHON_FOR_VENV)"
  if ! "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    # Debian's own python3 ships without ensurepip; python3-venv brings it.
    if ! "$python" -c 'import ensurepip, venv' 2>/dev/null; then
      ensure_apt_packages python3-venv
    fi
    echo "creating $VENV with $("$python" -V 2>&1)"
    "$python" -m venv --clear "$VENV"
  fi
  stamp="$VENV/.opsmedic-installed-$1"
  digest="$(cat "$lock" "$OPSMEDIC_ROOT/pyproject.toml" <("$VENV/bin/python" -V 2>&1) | sha256sum | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$digest" ]; then
    echo "up to date: $1 lock in $VENV"
    return 0
  fi
  rm -f "$VENV"/.opsmedic-installed-*
  # --require-hashes: a file that is not byte for byte the one locked is refused. The lock
  # holds the build backend too, so the project installs without build isolation, and so
  # without an unpinned download.
  "$VENV/bin/python" -m pip install -q --require-hashes --no-deps -r "$lock"
  "$VENV/bin/python" -m pip install -q --no-deps --no-build-isolation -e "$OPSMEDIC_ROOT"
  echo "$digest" >"$stamp"
}
