"""Services as real processes (`python -m services.<name>`), each on its own PostgreSQL database,
all on the real Kafka broker with a topic prefix of their own: the distributed mode the
Kubernetes manifests run, started by the tests (tests/e2e) and by bench/bench_journey.py."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

REPO = Path(__file__).resolve().parent.parent
SERVICES = ("ingest", "diagnosis", "campaigns", "content")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServiceProcess:
    name: str
    env: dict[str, str]
    log_path: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    # What to run after `python`: by default `-m services.<name>`.
    args: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, f"{self.name} already running"
        self.starts += 1
        log = self.log_path.open("ab")
        log.write(f"\n--- start {self.starts} ---\n".encode())
        log.flush()
        self.proc = subprocess.Popen(
            [sys.executable, *(self.args or ("-m", f"services.{self.name}"))],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    async def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        async with httpx.AsyncClient(base_url=self.url, timeout=5) as c:
            while True:
                if self.proc is None or self.proc.poll() is not None:
                    raise AssertionError(f"{self.name} exited:\n{self.log_tail()}")
                try:
                    if (await c.get("/readyz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if asyncio.get_running_loop().time() > deadline:
                    raise AssertionError(f"{self.name} not ready:\n{self.log_tail()}")
                await asyncio.sleep(0.2)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM: a graceful stop (uvicorn drains, the lifespan closes the consumers)."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def kill(self) -> None:
        """SIGKILL: no shutdown at all, as when a node dies."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


@dataclass
class Platform:
    """The four services apart: own databases, one broker, one topic prefix."""

    pg_dsn: str  # postgresql://postgres@host:port/postgres
    kafka: str
    workdir: Path
    api_key: str = field(default_factory=lambda: f"e2e-{uuid.uuid4().hex}")
    prefix: str = field(default_factory=lambda: f"e2e{uuid.uuid4().hex[:8]}.")
    names: tuple[str, ...] = SERVICES
    extra_env: dict[str, str] = field(default_factory=dict)
    services: dict[str, ServiceProcess] = field(default_factory=dict)

    def database(self, name: str) -> str:
        return f"{self.prefix.rstrip('.')}_{name}"

    def dsn(self, name: str) -> str:
        return self.pg_dsn.rsplit("/", 1)[0] + "/" + self.database(name)

    def async_url(self, name: str) -> str:
        return self.dsn(name).replace("postgresql://", "postgresql+asyncpg://", 1)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def url(self, name: str) -> str:
        return self.services[name].url

    def client(self, name: str, **kw: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url(name), timeout=kw.pop("timeout", 60), **kw)

    async def _admin(self, sql: str) -> None:
        conn = await asyncpg.connect(self.pg_dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for name in self.names:
            await self._admin(f'DROP DATABASE IF EXISTS "{self.database(name)}" WITH (FORCE)')
            await self._admin(f'CREATE DATABASE "{self.database(name)}"')
            var = self.workdir / name
            var.mkdir(exist_ok=True)
            env = {
                **os.environ,
                "DATABASE_URL": self.async_url(name),
                "KAFKA_BOOTSTRAP_SERVERS": self.kafka,
                "KAFKA_TOPIC_PREFIX": self.prefix,
                "KAFKA_SESSION_TIMEOUT_MS": "6000",
                "KAFKA_HEARTBEAT_INTERVAL_MS": "500",
                "OUTBOX_POLL_SECONDS": "0.1",
                "OPS_BOOTSTRAP_API_KEY": self.api_key,
                "VAR_DIR": str(var),
                "PORT": str(free_port()),
                "LOG_LEVEL": "INFO",
                "RATE_LIMIT_PER_SECOND": "100000",
                "RATE_LIMIT_BURST": "100000",
                **self.extra_env,
            }
            self.services[name] = ServiceProcess(
                name, env, self.workdir / f"{name}.log", int(env["PORT"])
            )
        for svc in self.services.values():
            svc.start()
        await asyncio.gather(*(svc.wait_ready() for svc in self.services.values()))

    async def restart(self, name: str, *, kill: bool = False) -> None:
        svc = self.services[name]
        svc.kill() if kill else svc.stop()
        svc.start()
        await svc.wait_ready()

    async def close(self) -> None:
        for svc in self.services.values():
            svc.stop()
        for name in self.names:
            # PostgreSQL stopped by a fault test that failed: the cluster is thrown away anyway.
            with contextlib.suppress(OSError, asyncpg.PostgresError):
                await self._admin(f'DROP DATABASE IF EXISTS "{self.database(name)}" WITH (FORCE)')

    async def query(self, name: str, sql: str, *args: Any) -> list[Any]:
        """Read a service's own database (tests only: services never read each other's)."""
        conn = await asyncpg.connect(self.dsn(name))
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()
