"""The production topology of `faults.py`, on loopback, in a temp dir: a throw-away PostgreSQL 15 cluster with PostGIS,
a Redis, two `tocsin serve` API workers sharing the lean citizen listener's port, and `tocsin scheduler` processes.

Everything here is started by us, listens on 127.0.0.1 on free ports, and is stopped by `Topology.stop_all`.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tocsin.testing import free_port, without_tocsin_settings

REPO = Path(__file__).resolve().parents[1]
PG_BIN = Path("/usr/lib/postgresql/15/bin")
DATABASE = "tocsin"
SCHEDULER_LOCK_KEY = 7_404_002  # tocsin.backend.SCHEDULER_LOCK_KEY
# Rate limits are per address and every simulated device comes from 127.0.0.1: lift them, as ingest.py does.
UNLIMITED = "1000000000"
RECORD_START = re.compile(rb"^\d{4}-\d{2}-\d{2}T", re.MULTILINE)  # the first line of a log record


def _as_postgres(argv: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: run them as the `postgres` OS user then."""
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@dataclass
class PostgresCluster:
    """Our own cluster in `root` (never the shared one on 5432): trust auth, loopback only, restartable."""

    root: Path
    port: int = field(default_factory=free_port)

    @property
    def data(self) -> Path:
        return self.root / "data"

    def dsn(self, database: str = DATABASE) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def init(self) -> None:
        self.root.mkdir(mode=0o700)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        command = [str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust"]
        _run(_as_postgres([*command, "-E", "UTF8", "--locale=C", "--no-sync"]))

    def start(self) -> None:
        options = (
            f"-c port={self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root}"
            " -c fsync=off -c max_connections=300"
        )
        command = [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "postgres.log")]
        _run(_as_postgres([*command, "-w", "-t", "60", "-o", options, "start"]))

    def stop(self, mode: str = "fast") -> None:
        command = [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop"]
        _run(_as_postgres(command), check=False)

    def create_database(self) -> None:
        psql = [str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-q"]
        _run([*psql, "-d", "postgres", "-c", f"CREATE DATABASE {DATABASE}"])
        _run([*psql, "-d", DATABASE, "-c", "CREATE EXTENSION postgis"])


def _run(argv: list[str], check: bool = True) -> None:
    subprocess.run(argv, check=check, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)


@dataclass
class Service:
    """One process we started, in its own process group, its output appended to its log file."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True
            )
        self.starts += 1

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def exit_code(self) -> int | None:
        return self.process.poll() if self.process is not None else None

    def kill(self) -> None:
        """kill -9 the process itself (not its group: a worker's supervisor must see it die)."""
        if self.alive and self.pid is not None:
            os.kill(self.pid, signal.SIGKILL)
            assert self.process is not None
            self.process.wait(timeout=10)

    def stop(self, timeout: float = 10) -> None:
        if self.process is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)  # the group: a supervisor's workers too
            try:
                self.process.wait(timeout=timeout)
                break
            except subprocess.TimeoutExpired:
                continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # leftovers of the group whose leader already exited

    def log_count(self, marker: bytes) -> int:
        try:
            return self.log_path.read_bytes().count(marker)
        except FileNotFoundError:
            return 0

    def log_volume(self) -> tuple[int, int]:
        """Bytes and log records written so far: a record is a line that starts with its timestamp, so a traceback
        and its lines count once (Tocsin logs each kind of failure once a minute, with its traceback the first time)."""
        try:
            content = self.log_path.read_bytes()
        except FileNotFoundError:
            return 0, 0
        return len(content), len(RECORD_START.findall(content))


@dataclass
class RedisServer:
    root: Path
    port: int = field(default_factory=free_port)
    service: Service | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        if self.service is None:
            argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            self.service = Service("redis", [*argv, "--dir", str(self.root)], dict(os.environ), self.root / "redis.log")
        self.service.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
            time.sleep(0.05)
        raise RuntimeError("redis did not start")

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop()


def tcp_client_ports(pid: int, server_port: int) -> set[int]:
    """Local ports of the TCP connections process `pid` holds to `server_port` on loopback (to tell, from
    pg_stat_activity.client_port, which of our processes a database session belongs to)."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 9 and fields[9] in inodes and int(fields[2].rsplit(":", 1)[1], 16) == server_port:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


class Topology:
    """PostgreSQL, Redis, the API workers (lean citizen listener on one shared port), schedulers, late starters."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.postgres = PostgresCluster(root / "pg")
        self.redis = RedisServer(root)
        self.worker_ports: dict[str, int] = {}
        self.citizen_port = free_port()
        self.secret = secrets.token_urlsafe(48)
        self.services: dict[str, Service] = {}

    def env(self, **extra: str) -> dict[str, str]:
        env = without_tocsin_settings(
            PYTHONPATH=str(REPO / "backend"),  # the code of this checkout, whatever the venv has installed
            PYTHONUNBUFFERED="1",
            TOCSIN_MODE="production",
            TOCSIN_DATABASE_URL=self.postgres.dsn().replace("postgresql://", "postgresql+asyncpg://"),
            TOCSIN_REDIS_URL=self.redis.url,
            TOCSIN_SECRET_KEY=self.secret,
            TOCSIN_DATA_DIR=str(self.root / "var"),
            TOCSIN_RUN_SCHEDULER="false",
            TOCSIN_SCHEDULER_INTERVAL_SECONDS="1",
            TOCSIN_DEVICE_MESSAGES_PER_MINUTE=UNLIMITED,
            TOCSIN_DEVICE_REPORTS_PER_MINUTE=UNLIMITED,
            TOCSIN_IP_MESSAGES_PER_MINUTE=UNLIMITED,
            TOCSIN_IP_REPORTS_PER_MINUTE=UNLIMITED,
        )
        env.update(extra)
        return env

    def tocsin(self, *args: str, stdin: str | None = None) -> None:
        """A one-shot `tocsin` command (migrations, accounts)."""
        command = [sys.executable, "-m", "tocsin.cli", *args]
        subprocess.run(command, env=self.env(), input=stdin, text=True, check=True, capture_output=True, timeout=120)

    def add(self, name: str, *args: str, **env: str) -> Service:
        service = Service(name, [sys.executable, "-m", "tocsin.cli", *args], self.env(**env), self.root / f"{name}.log")
        self.services[name] = service
        service.start()
        return service

    def start_worker(self, name: str) -> Service:
        """An API worker: `tocsin serve` on an HTTP port of its own, and the lean citizen listener on the port all
        workers share (SO_REUSEPORT: the kernel spreads devices over them). Started again under the same name, it
        keeps its port, like a container restarted by its supervisor."""
        if name in self.services:
            self.services[name].start()
            return self.services[name]
        self.worker_ports[name] = free_port()
        args = ("serve", "--port", str(self.worker_ports[name]))
        return self.add(name, *args, TOCSIN_CITIZEN_PORT=str(self.citizen_port))

    def start_late_worker(self, name: str) -> tuple[Service, int]:
        """A single-worker `tocsin serve` on a port of its own, without the citizen port (devices stay on the API)."""
        port = free_port()
        return self.add(name, "serve", "--port", str(port)), port

    def prepare(self) -> None:
        self.root.chmod(0o711)  # the postgres OS user reaches its data dir below
        self.postgres.init()
        self.postgres.start()
        self.postgres.create_database()
        self.redis.start()
        self.tocsin("db", "upgrade")

    def stop_all(self) -> None:
        for service in reversed(list(self.services.values())):
            service.stop(timeout=5)
        self.redis.stop()
        if self.postgres.data.exists():
            self.postgres.stop("immediate")
