"""Each real-service fixture starts its server and the server really answers."""

from __future__ import annotations

import smtplib
import uuid
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING

import asyncssh
import psycopg
import pytest

if __package__:
    from ..services import free_port
    from ..services_redis import RedisServer
else:
    from services import free_port
    from services_redis import RedisServer

if TYPE_CHECKING:
    from services import SMTPServer, SSHServer


def test_postgres_answers_as_the_opsmedic_superuser(postgres_url: str) -> None:
    assert postgres_url.startswith("postgresql+psycopg://opsmedic@127.0.0.1:")
    conninfo = postgres_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(conninfo) as conn:
        row = conn.execute("SELECT 1, current_user, current_setting('is_superuser')").fetchone()
    assert row == (1, "opsmedic", "on")


async def test_sshd_runs_a_command_for_the_key_and_known_host(sshd: SSHServer) -> None:
    async with asyncssh.connect(
        sshd.host,
        port=sshd.port,
        username=sshd.user,
        client_keys=[str(sshd.key_file)],
        known_hosts=str(sshd.known_hosts),
        config=[],
    ) as conn:
        result = await conn.run("echo hi", check=True)
    assert result.stdout == "hi\n"


async def test_sshd_host_key_is_checked_against_known_hosts(
    sshd: SSHServer, tmp_path: Path
) -> None:
    other_key = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    wrong_known_hosts = tmp_path / "known_hosts"
    wrong_known_hosts.write_text(f"[{sshd.host}]:{sshd.port} {other_key}")
    with pytest.raises(asyncssh.HostKeyNotVerifiable):
        await asyncssh.connect(
            sshd.host,
            port=sshd.port,
            username=sshd.user,
            client_keys=[str(sshd.key_file)],
            known_hosts=str(wrong_known_hosts),
            config=[],
        )


def test_smtp_server_keeps_the_sent_message(smtp_server: SMTPServer) -> None:
    subject = f"disk almost full {uuid.uuid4()}"
    message = EmailMessage()
    message["From"] = "opsmedic@example.test"
    message["To"] = "oncall@example.test"
    message["Subject"] = subject
    message.set_content("archived /var/log/app\n")
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=30) as client:
        client.send_message(message)

    received = [m for m in smtp_server.messages() if m["Subject"] == subject]
    assert len(received) == 1
    assert received[0]["To"] == "oncall@example.test"
    assert received[0].get_payload() == "archived /var/log/app\n"


@pytest.mark.parametrize("kill", [False, True], ids=["stopped", "killed"])
def test_redis_comes_back_on_its_port_with_every_acknowledged_write(
    redis_server: RedisServer, kill: bool
) -> None:
    assert redis_server.cli("SET", "k", "v") == "OK"
    redis_server.stop(kill=kill)
    assert not redis_server.running
    assert redis_server.cli("PING", check=False) == ""
    redis_server.start()
    assert redis_server.cli("GET", "k") == "v"
    assert redis_server.cli("CONFIG", "GET", "save") == "save"  # no RDB snapshots


def test_redis_without_persistence_comes_back_empty(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, free_port(), durable=False)
    server.start()
    try:
        server.cli("SET", "k", "v")
        server.stop()
        server.start()
        assert server.cli("DBSIZE") == "0"
    finally:
        server.stop()
