"""LiveServer: the real `python -m server serve` in a subprocess on a free loopback port.

For end-to-end tests (HTTP, and later Playwright) that need the real uvicorn, real workers and
a real SQLite file. Not a test module: `from .live import LiveServer`.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import httpx

ROOT = Path(__file__).resolve().parents[1]

# uvicorn prints these once per worker process (and once for a single-process server).
STARTED = re.compile(r"Started server process \[(\d+)\]")
STARTUP_COMPLETE = "Application startup complete."
SHUTDOWN_COMPLETE = "Application shutdown complete."


class LiveServerError(RuntimeError):
    """The server did not start, did not stop cleanly, or a CLI command failed."""


class LiveServer:
    """Start, use and stop one Zeef server with its own database under `directory`.

        with LiveServer(tmp_path, env={"ZEEF_FLUSH_INTERVAL": "0.2"}, sites=["example.com"]) as s:
            with s.client() as http:
                http.post("/api/event", ...)
        s.check_clean_exit()             # stopped by SIGTERM, so the buffer was flushed
        s.stats("example.com")           # the CLI, with the same environment

    ZEEF_* variables of the calling environment are not passed on, and the server runs in
    `directory`, so neither a developer's shell nor a stray zeef.toml changes a test.
    """

    def __init__(
        self,
        directory: Path,
        *,
        env: Mapping[str, str] | None = None,
        workers: int = 1,
        host: str = "127.0.0.1",
        sites: Iterable[str] = (),
        startup_timeout: float = 20.0,
        name: str = "zeef",
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.workers = workers
        self.host = host
        self.sites = tuple(sites)
        self.startup_timeout = startup_timeout
        self.log_path = self.directory / f"{name}.log"
        self.env = _child_env(self.directory / f"{name}.sqlite3", env or {})
        self.database = Path(self.env["ZEEF_DATABASE"])
        self.port: int | None = None
        self.returncode: int | None = None
        self.killed = False
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._log_offset = 0  # where the current run's output starts in the log file
        self._sites_added = False

    # -- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> LiveServer:
        """Register `sites`, start the server and wait until every worker has started."""
        if self._process is not None:
            raise LiveServerError("already started")
        if not self._sites_added:
            for domain in self.sites:
                self.cli("site", "add", domain)
            self._sites_added = True
        # Another process may take the free port between our probe and uvicorn's bind.
        for attempt in range(3):
            self.port = _free_port(self.host)
            self._spawn()
            try:
                self._wait_until_ready()
            except LiveServerError:
                in_use = "address already in use" in self.run_log().lower()
                self.stop()
                if in_use and attempt < 2:
                    continue
                raise
            except BaseException:
                self.stop()
                raise
            return self
        raise AssertionError("unreachable")

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, so each worker runs its shutdown (and flushes); SIGKILL after `timeout`."""
        process = self._process
        if process is not None:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout)
                except subprocess.TimeoutExpired:
                    # The server runs in its own session: this reaches its workers too.
                    self.killed = True
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
            self.returncode = process.returncode
            self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.returncode

    def check_clean_exit(self) -> None:
        """Raise unless the server stopped on SIGTERM with every worker's shutdown complete."""
        if self._process is not None:
            raise LiveServerError("still running; call stop() first")
        # A single uvicorn process re-raises SIGTERM after its shutdown; a supervisor exits 0.
        clean_codes = (0, -signal.SIGTERM)
        shutdowns = self.run_log().count(SHUTDOWN_COMPLETE)
        if self.killed or self.returncode not in clean_codes or shutdowns != self.workers:
            raise LiveServerError(
                f"unclean exit: returncode {self.returncode}, killed {self.killed}, "
                f"{shutdowns} of {self.workers} shutdowns complete\n{self.log_tail()}"
            )

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    # -- using it -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self.port is None:
            raise LiveServerError("not started")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def client(
        self,
        *,
        local_address: str | None = None,
        keepalive: bool = True,
        **kwargs: Any,
    ) -> httpx.Client:
        """An httpx client for this server, never through a proxy from the environment.

        `local_address` binds the client's end of the socket (any 127.x.y.z on Linux), so the
        server sees that peer; `keepalive=False` opens a new connection for every request.
        """
        limits = httpx.Limits(max_keepalive_connections=None if keepalive else 0)
        transport = httpx.HTTPTransport(local_address=local_address, limits=limits)
        kwargs.setdefault("timeout", 10.0)
        return httpx.Client(base_url=self.url, transport=transport, trust_env=False, **kwargs)

    def cli(self, *args: str, check: bool = True, timeout: float = 60.0) -> str:
        """Run `python -m server ARGS` with the server's environment; its stdout."""
        result = subprocess.run(
            [sys.executable, "-m", "server", *args],
            env=self.env,
            cwd=self.directory,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise LiveServerError(
                f"zeef {' '.join(args)} exited {result.returncode}\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}"
            )
        return result.stdout

    def stats(self, domain: str, period: str = "all") -> dict[str, Any]:
        figures: dict[str, Any] = json.loads(
            self.cli("stats", domain, "--period", period, "--json")
        )
        return figures

    def database_files(self) -> list[Path]:
        """The database and whatever SQLite keeps beside it (-wal, -shm, -journal)."""
        return sorted(p for p in self.directory.glob(self.database.name + "*") if p.is_file())

    # -- its output -----------------------------------------------------------------------

    def log_bytes(self) -> bytes:
        """Everything the server printed, stdout and stderr interleaved, over all its runs."""
        try:
            return self.log_path.read_bytes()
        except FileNotFoundError:
            return b""

    def log_text(self) -> str:
        return self.log_bytes().decode("utf-8", errors="replace")

    def run_log(self) -> str:
        """What the current (or last) run printed: the log since the latest start."""
        return self.log_bytes()[self._log_offset :].decode("utf-8", errors="replace")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.run_log().splitlines()[-lines:])

    def worker_pids(self) -> list[int]:
        """PIDs of this run's request-serving processes (the workers, not the supervisor)."""
        return [int(pid) for pid in STARTED.findall(self.run_log())]

    def wait_for_log(self, text: str, count: int = 1, timeout: float = 10.0) -> None:
        """Wait until `text` has appeared `count` times in this run's log."""
        deadline = time.monotonic() + timeout
        while self.run_log().count(text) < count:
            if time.monotonic() > deadline:
                raise LiveServerError(f"{text!r} not seen {count} times\n{self.log_tail()}")
            time.sleep(0.05)

    # -- internals ------------------------------------------------------------------------

    def _spawn(self) -> None:
        self._log = self.log_path.open("ab")
        self._log_offset = self._log.tell()
        self.returncode = None
        self.killed = False
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "server",
                "serve",
                "--host",
                self.host,
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
            ],
            env=self.env,
            cwd=self.directory,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            # Its own process group, so a hung server can be killed with all its workers.
            start_new_session=True,
        )

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        with httpx.Client(base_url=self.url, trust_env=False, timeout=1.0) as http:
            while True:
                if not self.running:
                    raise LiveServerError(f"server exited during startup\n{self.log_tail()}")
                try:
                    if http.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise LiveServerError(f"/healthz not 200 in time\n{self.log_tail()}")
                time.sleep(0.05)
        # /healthz answers as soon as one worker is up; wait for the others too.
        self.wait_for_log(
            STARTUP_COMPLETE, self.workers, timeout=max(0.0, deadline - time.monotonic()) + 1
        )


def _child_env(database: Path, extra: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZEEF_")}
    env["ZEEF_DATABASE"] = str(database)
    env.update(extra)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port
