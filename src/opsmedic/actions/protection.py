"""The processes no rule may kill, and the facts about a process that decide it."""

from __future__ import annotations

import os
import pwd
import time
from dataclasses import dataclass
from typing import Any

import psutil
from pydantic import Field, field_validator

from opsmedic.config.types import Strict
from opsmedic.plugins import SettingsSpec

PF_KTHREAD = 0x00200000  # include/linux/sched.h: the task is a kernel thread

# Whatever the config lists, these stay protected: killing one takes the host or our way in.
ALWAYS_PROTECTED_NAMES = (
    "init",
    "systemd",
    "systemd-journald",
    "systemd-logind",
    "systemd-udevd",
    "dbus-daemon",
    "dbus-broker",
    "sshd",
    "opsmedic",
)


class ProcessesConfig(Strict):
    """The config's `processes:` section (kill_process's settings): what kill_process never
    touches, on top of pid 1, kernel threads, root and itself."""

    protected_names: list[str] = Field(
        default_factory=lambda: list(ALWAYS_PROTECTED_NAMES),
        description="process names never killed; the built-in ones are always kept",
    )
    protected_users: list[str] = Field(
        default_factory=list, description="user names whose processes are never killed"
    )
    min_uid: int = Field(
        default=1000, ge=0, description="processes of users below this uid (system users) are kept"
    )

    @field_validator("protected_names")
    @classmethod
    def _keep_builtins(cls, names: list[str]) -> list[str]:
        # Listing one's own names must not unprotect sshd by accident.
        return [*ALWAYS_PROTECTED_NAMES, *(n for n in names if n not in ALWAYS_PROTECTED_NAMES)]


# kill_process's section of opsmedic.yaml (`processes:`).
SETTINGS = SettingsSpec("processes", ProcessesConfig)


@dataclass(frozen=True, slots=True)
class Target:
    """A live process as kill_process sees it before acting."""

    pid: int
    start_time: float  # epoch seconds, psutil's create_time
    ppid: int
    name: str
    exe: str
    cmdline: list[str]
    uids: tuple[int, int, int]  # real, effective, saved
    user: str
    rss_bytes: int
    cpu_s: float  # user + system CPU seconds so far
    kernel_thread: bool

    def describe(self) -> dict[str, Any]:
        """The victim as an outcome records it."""
        return {
            "pid": self.pid,
            "start_time": self.start_time,
            "user": self.user,
            "uid": self.uids[0],
            "name": self.name,
            "exe": self.exe,
            "cmdline": self.cmdline,
            "rss_bytes": self.rss_bytes,
            "runtime_s": round(max(0.0, time.time() - self.start_time), 1),
        }


@dataclass(frozen=True, slots=True)
class Protection:
    rule: str  # short name recorded in the outcome: pid, kernel_thread, self, ancestor, ...
    reason: str


def inspect(pid: int) -> Target:
    """The process now at `pid`; psutil.NoSuchProcess when there is none (or only a zombie)."""
    proc = psutil.Process(pid)
    with proc.oneshot():
        if proc.status() == psutil.STATUS_ZOMBIE:
            raise psutil.ZombieProcess(pid)
        # Another user's exe and cmdline are unreadable without privileges; the rules
        # below still apply on uid, name and pid.
        try:
            exe, cmdline = proc.exe(), proc.cmdline()
        except psutil.AccessDenied:
            exe, cmdline = "", []
        uids = proc.uids()
        cpu = proc.cpu_times()
        return Target(
            pid=pid,
            start_time=proc.create_time(),
            ppid=proc.ppid(),
            name=proc.name(),
            exe=exe,
            cmdline=cmdline,
            uids=(uids.real, uids.effective, uids.saved),
            user=proc.username(),
            rss_bytes=proc.memory_info().rss,
            cpu_s=cpu.user + cpu.system,
            kernel_thread=_kernel_thread(pid),
        )


def _kernel_thread(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        raise psutil.NoSuchProcess(pid) from None
    # The name in parentheses may hold spaces and ')': fields start after the last ')'.
    fields = stat.rsplit(b")", 1)[1].split()
    return bool(int(fields[6]) & PF_KTHREAD)  # field 9 of proc(5), `flags`


def protected_by(target: Target, config: ProcessesConfig) -> Protection | None:
    """The first rule that protects `target`, or None when it may be killed.

    Every uid of the process counts (real, effective, saved): a setuid-root program run by
    a user is root's as much as the user's.
    """
    if target.pid <= 2:
        return Protection("pid", f"pid {target.pid} (init or kthreadd) is never killed")
    if target.kernel_thread or target.ppid == 2:
        return Protection("kernel_thread", "it is a kernel thread")
    me = psutil.Process()
    if target.pid == me.pid:
        return Protection("self", "it is opsmedic itself")
    if target.pid in {p.pid for p in me.parents()}:
        return Protection("ancestor", f"it is an ancestor of opsmedic (pid {me.pid})")
    if 0 in target.uids:
        return Protection("root", "it runs as root (uid 0)")
    if min(target.uids) < config.min_uid:
        return Protection(
            "min_uid",
            f"it belongs to a system user (uid {min(target.uids)} < processes.min_uid "
            f"{config.min_uid})",
        )
    names = {target.name, os.path.basename(target.exe)}
    if target.cmdline:
        names.add(os.path.basename(target.cmdline[0]))
    for name in config.protected_names:
        if name in names:
            return Protection("name", f"its name {name!r} is in processes.protected_names")
    for user in config.protected_users:
        try:
            uid = pwd.getpwnam(user).pw_uid
        except KeyError:
            continue  # no such user here, so none of its processes either
        if uid in target.uids:
            return Protection("user", f"its user {user!r} is in processes.protected_users")
    return None
