"""Real services for the tests: PostgreSQL, OpenSSH and an SMTP server, from Debian's packages.

Each session fixture starts its service on 127.0.0.1 on a free port in a temporary
directory, waits until the service really answers, and stops it and removes what it made at
teardown, also when a test or the start-up failed. A missing program fails the fixture (it
never skips): `bash scripts/test.sh` installs every one of them.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from mailbox import Maildir
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest

HOST = "127.0.0.1"
# Generous: it bounds a wait for a real signal on a loaded CI machine, it is no test timing.
START_TIMEOUT = 60.0
INSTALL_HINT = "run `bash scripts/test.sh`, which installs it"
SSH_TEST_USER = "opsmedic-test"
POSTGRES_ROLE = "opsmedic"


@dataclass(frozen=True)
class SSHServer:
    host: str
    port: int
    user: str
    key_file: Path  # the client's private key, authorized for `user`
    known_hosts: Path  # holds the server's host key as `[host]:port`

    def host_entry(self, **changes: Any) -> dict[str, Any]:
        """An `ssh_hosts` entry for this server, with `changes` over it."""
        entry: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "key_file": str(self.key_file),
            "known_hosts": str(self.known_hosts),
            "connect_timeout": 10,
        }
        return entry | changes


@dataclass(frozen=True)
class SMTPServer:
    host: str
    port: int
    mailbox: Path  # a Maildir directory: every message the server accepted

    def messages(self) -> list[Message]:
        """Every message received so far, oldest first (re-read on each call)."""
        if not self.mailbox.exists():
            return []
        box = Maildir(self.mailbox, create=False)
        found = sorted(box.items(), key=lambda item: (item[1].get_date(), item[0]))
        return [message for _, message in found]


def free_port(host: str = HOST) -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    host: str,
    port: int,
    deadline: float,
    proc: subprocess.Popen[bytes] | None = None,
) -> None:
    """Return once host:port accepts a TCP connection.

    `deadline` is a `time.monotonic()` value; past it this raises TimeoutError. With `proc`,
    it raises RuntimeError as soon as that process has exited, rather than wait in vain.
    """
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode} before listening")
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError as exc:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"nothing accepted connections on {host}:{port}") from exc
        time.sleep(0.05)


def wait_ready(url: str, deadline: float, log: Path | None = None) -> None:
    """Return once `url` answers 200 (a server's readiness page, such as Prometheus'
    `/-/ready` while its blocks load); past `deadline` (monotonic) raise TimeoutError."""
    while True:
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} not ready" + (f": {log}" if log else ""))
        time.sleep(0.2)


@contextlib.contextmanager
def serving(argv: list[str], port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`argv` running (its output in `log`) once it accepts connections on HOST:port; stopped
    on the way out."""
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT)  # fmt: skip
    try:
        wait_for_port(HOST, port, time.monotonic() + START_TIMEOUT, proc)
        yield proc
    finally:
        _stop(proc)


def _fail(message: str, log: Path | None = None) -> NoReturn:
    if log is not None and log.exists():
        tail = log.read_text(errors="replace").splitlines()[-30:]
        message += f"\n--- last lines of {log} ---\n" + "\n".join(tail)
    pytest.fail(message, pytrace=False)


def _program(name: str, *, package: str) -> str:
    # sbin is not on every user's PATH, but Debian installs servers and useradd there.
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/bin"])
    found = shutil.which(name, path=path)
    if found is None:
        _fail(f"{name} not found (Debian package {package}): {INSTALL_HINT}")
    return found


def _run(argv: list[str], what: str, log: Path | None = None, cwd: Path | None = None) -> str:
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=START_TIMEOUT, cwd=cwd, check=False
    )
    if result.returncode != 0:
        _fail(
            f"{what} failed (exit {result.returncode}): {' '.join(argv)}\n"
            f"{result.stdout}{result.stderr}",
            log,
        )
    return result.stdout


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _is_root() -> bool:
    return os.geteuid() == 0


def _shared_dir(name: str, owner: pwd.struct_passwd) -> Path:
    """A fresh directory that `owner` owns and can reach, removed by the caller.

    pytest's own temporary root is private to the user running pytest (mode 0700), so a
    service that runs as another user cannot live under tmp_path_factory.
    """
    path = Path(tempfile.mkdtemp(prefix=f"opsmedic-{name}-", dir="/tmp"))
    os.chown(path, owner.pw_uid, owner.pw_gid)
    return path


# --- PostgreSQL ------------------------------------------------------------------------------


def _postgres_bindir() -> Path:
    # Debian keeps the server programs per major version, off PATH.
    versions = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").exists()]
    if versions:
        return max(versions, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    initdb = shutil.which("initdb")  # a developer machine that is not Debian
    if initdb is None:
        _fail(f"PostgreSQL's initdb not found (Debian package postgresql): {INSTALL_HINT}")
    return Path(initdb).resolve().parent


def _postgres_os_user() -> pwd.struct_passwd | None:
    """The user the server runs as when we are root (PostgreSQL refuses to run as root)."""
    if not _is_root():
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    _fail("neither a `postgres` nor a `nobody` user exists to run PostgreSQL as")


@contextlib.contextmanager
def running_postgres() -> Iterator[str]:
    """A fresh PostgreSQL server whose role `opsmedic` is a superuser, for as long as the
    block runs: yields its SQLAlchemy URL (bench/_unleash_peer.py uses it outside pytest)."""
    bindir = _postgres_bindir()
    os_user = _postgres_os_user()
    as_user: list[str] = []
    if os_user is None:
        base = Path(tempfile.mkdtemp(prefix="opsmedic-postgres-"))
    else:
        base = _shared_dir("postgres", os_user)
        as_user = [_program("runuser", package="util-linux"), "-u", os_user.pw_name, "--"]
    data, log, port = base / "data", base / "server.log", free_port()
    pg_ctl = [*as_user, str(bindir / "pg_ctl"), "-D", str(data)]
    started = False
    try:
        _run(
            [
                *as_user,
                str(bindir / "initdb"),
                *("-D", str(data), "-U", "postgres", "-A", "trust"),
                *("-E", "UTF8", "--no-locale", "--no-sync"),
            ],
            "initdb",
            cwd=base,
        )
        options = f"-c listen_addresses={HOST} -p {port} -k {base} -c fsync=off"
        started = True  # from here on a half-started server must be stopped too
        _run(
            [*pg_ctl, "-l", str(log), "-w", "-t", str(int(START_TIMEOUT)), "-o", options, "start"],
            "starting PostgreSQL",
            log,
            cwd=base,
        )
        _run(
            [
                str(bindir / "psql"),
                *("-X", "-q", "-v", "ON_ERROR_STOP=1"),
                *("-h", HOST, "-p", str(port), "-U", "postgres", "-d", "postgres"),
                *("-c", f"CREATE ROLE {POSTGRES_ROLE} LOGIN SUPERUSER"),
            ],
            "creating the opsmedic role",
            log,
        )
        yield f"postgresql+psycopg://{POSTGRES_ROLE}@{HOST}:{port}/postgres"
    finally:
        if started:
            stop = subprocess.run(
                [*pg_ctl, "-m", "fast", "-w", "stop"], cwd=base, capture_output=True, check=False
            )
            if stop.returncode != 0 and (data / "postmaster.pid").exists():
                subprocess.run(
                    [*pg_ctl, "-m", "immediate", "-w", "stop"],
                    cwd=base,
                    capture_output=True,
                    check=False,
                )
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """SQLAlchemy URL of a fresh PostgreSQL server whose role `opsmedic` is a superuser."""
    with running_postgres() as url:
        yield url


# --- OpenSSH -------------------------------------------------------------------------------


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory the SSH login user can write to (pytest's own tmp is private to us)."""
    path = Path(tempfile.mkdtemp(prefix="opsmedic-ssh-test-", dir="/tmp"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _ssh_login_user() -> pwd.struct_passwd:
    """The account the tests log in as: a dedicated unprivileged one when we are root.

    A non-root sshd can only let its own user in, so on a developer's machine that is us.
    """
    if not _is_root():
        return pwd.getpwuid(os.geteuid())
    try:
        pwd.getpwnam(SSH_TEST_USER)
    except KeyError:
        useradd = _program("useradd", package="passwd")
        result = subprocess.run(
            [useradd, "--create-home", "--shell", "/bin/sh", SSH_TEST_USER],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode not in (0, 9):  # 9: a parallel session created it first
            _fail(f"useradd {SSH_TEST_USER} failed: {result.stderr}")
    # useradd leaves the password "!" (locked); sshd without PAM refuses a locked account
    # even a key login. "*" means no password can match, but the account is not locked.
    _run([_program("usermod", package="passwd"), "-p", "*", SSH_TEST_USER], "unlocking")
    return pwd.getpwnam(SSH_TEST_USER)


def _authorized_keys_file(user: pwd.struct_passwd, workdir: Path) -> Path:
    if not _is_root():
        return workdir / "authorized_keys"
    # sshd reads the file as the user who logs in, who cannot enter pytest's private
    # temp root: keep it in that user's home, named for this session only.
    ssh_dir = Path(user.pw_dir) / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    os.chown(ssh_dir, user.pw_uid, user.pw_gid)
    return ssh_dir / f"authorized_keys.opsmedic-{uuid.uuid4().hex}"


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHServer]:
    """A real OpenSSH server that lets `user` in with `key_file` (sftp included)."""
    sshd_bin = _program("sshd", package="openssh-server")
    ssh_keygen = _program("ssh-keygen", package="openssh-client")
    ssh = _program("ssh", package="openssh-client")
    workdir = tmp_path_factory.mktemp("sshd")
    user = _ssh_login_user()
    host_key, client_key = workdir / "host_ed25519", workdir / "client_ed25519"
    for key, comment in ((host_key, "opsmedic-test-host"), (client_key, "opsmedic-test-client")):
        _run([ssh_keygen, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(key)], "keygen")
    port = free_port()
    known_hosts = workdir / "known_hosts"
    host_pub = host_key.with_suffix(".pub").read_text().split()
    known_hosts.write_text(f"[{HOST}]:{port} {host_pub[0]} {host_pub[1]}\n")
    if _is_root():
        Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)  # privilege separation
    authorized_keys = _authorized_keys_file(user, workdir)
    log = workdir / "sshd.log"
    proc: subprocess.Popen[bytes] | None = None
    try:
        authorized_keys.write_text(client_key.with_suffix(".pub").read_text())
        authorized_keys.chmod(0o600)
        os.chown(authorized_keys, user.pw_uid, user.pw_gid)
        config = workdir / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"ListenAddress {HOST}",
                    f"Port {port}",
                    f"HostKey {host_key}",
                    f"PidFile {workdir / 'sshd.pid'}",
                    f"AuthorizedKeysFile {authorized_keys}",
                    f"AllowUsers {user.pw_name}",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PermitRootLogin no",
                    "UsePAM no",
                    "StrictModes no",
                    "Subsystem sftp internal-sftp",
                    "LogLevel VERBOSE",
                    "",
                ]
            )
        )
        with log.open("wb") as log_file:
            proc = subprocess.Popen(
                [sshd_bin, "-D", "-e", "-f", str(config), "-p", str(port)],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT
        try:
            wait_for_port(HOST, port, deadline, proc)
        except (RuntimeError, TimeoutError) as exc:
            _fail(f"sshd did not start: {exc}", log)
        server = SSHServer(HOST, port, user.pw_name, client_key, known_hosts)
        _wait_for_ssh_login(ssh, server, deadline, proc, log)
        yield server
    finally:
        if proc is not None:
            _stop(proc)
        if _is_root():
            authorized_keys.unlink(missing_ok=True)


def _wait_for_ssh_login(
    ssh: str, server: SSHServer, deadline: float, proc: subprocess.Popen[bytes], log: Path
) -> None:
    """Return once `ssh ... true` logs in with the key and the known host key."""
    argv = [ssh, "-F", "/dev/null", "-i", str(server.key_file), "-p", str(server.port)]
    for option in (
        "BatchMode=yes",
        "IdentitiesOnly=yes",
        "StrictHostKeyChecking=yes",
        f"UserKnownHostsFile={server.known_hosts}",
        "GlobalKnownHostsFile=/dev/null",
        "ConnectTimeout=10",
    ):
        argv += ["-o", option]
    argv += [f"{server.user}@{server.host}", "true"]
    while True:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        if result.returncode == 0:
            return
        if proc.poll() is not None or time.monotonic() >= deadline:
            _fail(f"ssh login to the test sshd failed: {result.stderr.strip()}", log)
        time.sleep(0.1)


# --- SMTP --------------------------------------------------------------------------------------


def _smtpd_python() -> str:
    """A Python that has aiosmtpd: Debian's python3-aiosmtpd first, else this venv's."""
    debian = "/usr/bin/python3"
    if Path(debian).exists():
        probe = subprocess.run([debian, "-c", "import aiosmtpd"], capture_output=True, check=False)
        if probe.returncode == 0:
            return debian
    probe = subprocess.run(
        [sys.executable, "-c", "import aiosmtpd"], capture_output=True, check=False
    )
    if probe.returncode == 0:
        return sys.executable
    _fail(f"aiosmtpd not found (Debian package python3-aiosmtpd): {INSTALL_HINT}")


@pytest.fixture(scope="session")
def smtp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SMTPServer]:
    """A real SMTP server (aiosmtpd) that stores every message it accepts in a Maildir."""
    python = _smtpd_python()
    workdir = tmp_path_factory.mktemp("smtp")
    maildir, log, port = workdir / "maildir", workdir / "smtpd.log", free_port()
    argv = [python, "-m", "aiosmtpd", "-n", "-l", f"{HOST}:{port}"]
    argv += ["-c", "aiosmtpd.handlers.Mailbox", str(maildir)]
    with log.open("wb") as log_file:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT
        )
    try:
        try:
            wait_for_port(HOST, port, time.monotonic() + START_TIMEOUT, proc)
        except (RuntimeError, TimeoutError) as exc:
            _fail(f"the SMTP server did not start: {exc}", log)
        yield SMTPServer(HOST, port, maildir)
    finally:
        _stop(proc)
