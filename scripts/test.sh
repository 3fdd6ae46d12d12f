#!/usr/bin/env bash
# The project's test command: installs what the tests need, then runs lint, format check,
# type check and pytest. Arguments go to pytest: `bash scripts/test.sh tests/unit -x`.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$OPSMEDIC_ROOT"

# Debian packages whose programs the tests start for real or call. A feature that needs
# another real service adds its package here (and nowhere else).
OS_PACKAGES=(
  postgresql       # the PostgreSQL store (tests/services.py: postgres_url)
  openssh-server   # sshd for remote actions (tests/services.py: sshd)
  openssh-client   # ssh and ssh-keygen
  python3-aiosmtpd # the SMTP server for notify (tests/services.py: smtp_server)
  procps           # ps, pgrep: process probes and actions
  iproute2         # ss, ip
  unzip            # unzip -t checks opsmedic's zip archives (tests/integration)
  zstd             # zstd -t checks opsmedic's tar.zst archives
  passwd           # useradd: the unprivileged users that own test CPU hogs
  bind9            # named: primary and secondary DNS servers (tests/services_dns.py)
  bind9-utils      # tsig-keygen, named-checkconf
  bind9-dnsutils   # dig, nsupdate: the tests read records back with them
  nginx            # the real TLS server for tls_cert (tests/services_tls.py)
  prometheus-alertmanager # the real Alertmanager that posts webhooks (tests/services_alertmanager.py)
  prometheus       # prometheus and promtool: Prometheus SLIs against a real one (tests/services_prometheus.py)
  redis-server     # flags shared between processes (tests/services_redis.py); brings redis-cli
  systemd          # systemd-analyze verify checks the generated units (tests/integration/test_systemd_unit.py)
  ripgrep          # rg, the log hunt's optional prefilter (tests/unit/loghunt/test_loghunt_prefilter.py)
  chromium         # the dashboard in a real browser, driven by Playwright (tests/browser)
)

timed() {
  local start=$SECONDS
  "$@"
  echo "($1: $((SECONDS - start)) s)"
}

section "OS packages"
timed ensure_apt_packages "${OS_PACKAGES[@]}"

section "Python environment: $VENV"
timed ensure_venv test

# Every check runs even when an earlier one failed, so one run shows every problem.
failed=()
check() {
  local name="$1"
  shift
  section "$name"
  local start=$SECONDS
  if "$@"; then
    echo "($name: ok, $((SECONDS - start)) s)"
  else
    echo "($name: FAILED, $((SECONDS - start)) s)"
    failed+=("$name")
  fi
}

check "ruff check" "$VENV/bin/ruff" check .
check "ruff format --check" "$VENV/bin/ruff" format --check .
check "mypy" "$VENV/bin/mypy"
check "lint-imports" "$VENV/bin/lint-imports" --no-logo # the import direction (pyproject.toml)
check "pytest" "$VENV/bin/python" -m pytest "$@"

section "summary"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
echo "all checks passed"
