"""What SIGKILL costs: accepted events lost when `zeef serve` is killed under load.

SIGTERM loses nothing (tests/test_shutdown.py): each worker finishes its requests and flushes.
SIGKILL gives it no chance, so what the buffers held is gone: at most about one flush
interval's worth of events (ZEEF_FLUSH_INTERVAL, or ZEEF_FLUSH_SIZE events a worker if that
comes first), plus a batch being written if its transaction had not committed.

Each run starts `python -m server serve --workers N` on a fresh SQLite file, drives it with
wrk (bench/event.lua) and SIGKILLs the whole process group --kill-after seconds in, while
wrk goes on sending. It then counts the rows stored against the 202s wrk received and prints
the loss in events and in seconds of traffic.

    python bench/kill.py [--runs 3] [--workers 2] [--kill-after 5] [--flush-interval 1.0]
                         [--connections 64]

Needs wrk (apt-get install wrk). Run on demand; it is not part of the test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import sqlite3
import sys
import tempfile
import threading
import time
from contextlib import closing
from pathlib import Path

import ingest  # bench/ is on the path when this file is run as a script

HOST = ingest.HOST
DOMAIN = ingest.DOMAIN


def stored_events(database: Path) -> int:
    # Opening the file after a kill replays its WAL: what was committed is there.
    with closing(sqlite3.connect(database)) as db:
        count: int = db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    return count


def wait_workers(log: Path, workers: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while log.read_text(errors="replace").count("Application startup complete.") < workers:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{workers} workers not started:\n{ingest.log_tail(log)}")
        time.sleep(0.1)


def one_run(
    args: argparse.Namespace, pinning: ingest.Pinning, directory: Path
) -> tuple[int, int, float]:
    """Accepted (as wrk saw them), stored, and the accepted rate before the kill."""
    directory.mkdir()
    env = ingest.zeef_env(directory)
    env["ZEEF_FLUSH_INTERVAL"] = str(args.flush_interval)
    ingest.zeef_cli(env, "site", "add", DOMAIN)
    port, log = ingest.free_port(), directory / "zeef.log"
    command = [*pinning.server, sys.executable, "-m", "server", "serve", "--host", HOST]
    proc = ingest.start([*command, "--port", str(port), "--workers", str(args.workers)], env, log)
    try:
        ingest.wait_ready(proc, port, log, "/healthz")
        wait_workers(log, args.workers)
        kill = threading.Timer(args.kill_after, _kill, (proc.pid,))
        kill.start()
        wrk_args = argparse.Namespace(threads=1, connections=args.connections)
        # The send window outlasts the kill: the server dies with requests in flight.
        result = ingest.run_wrk(port, wrk_args, pinning, duration=args.kill_after + 1)
        kill.join()
    finally:
        _kill(proc.pid)
        proc.wait()
    if proc.returncode != -signal.SIGKILL:
        raise RuntimeError(f"server exited with {proc.returncode}, not by SIGKILL")
    accepted = result.num("accepted")
    return accepted, stored_events(Path(env["ZEEF_DATABASE"])), accepted / args.kill_after


def _kill(group: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kill-after", type=int, default=5, help="seconds")
    parser.add_argument("--flush-interval", type=float, default=1.0)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        parser.error("wrk not found (apt-get install wrk)")
    pinning = ingest.plan_pinning(1)
    print(
        f"kill bench: {args.runs} runs, SIGKILL to `zeef serve --workers {args.workers}` "
        f"{args.kill_after:g} s into wrk's load, ZEEF_FLUSH_INTERVAL {args.flush_interval:g} s"
    )
    print(f"pinning: {pinning.note}")
    losses = []
    with tempfile.TemporaryDirectory(prefix="zeef-kill-") as tmp_name:
        for number in range(1, args.runs + 1):
            accepted, stored, rate = one_run(args, pinning, Path(tmp_name) / f"run{number}")
            lost = accepted - stored
            seconds = lost / rate if rate else 0.0
            losses.append(seconds)
            print(
                f"  run {number}: accepted {accepted} ({rate:.0f}/s), stored {stored}, lost "
                f"{lost} = {seconds:.2f} s of traffic"
            )
    worst = max(losses)
    verdict = "within" if worst <= args.flush_interval else "MORE than"
    print(f"  worst loss {worst:.2f} s of traffic: {verdict} one flush interval")
    return 0 if worst <= args.flush_interval else 1


if __name__ == "__main__":
    sys.exit(main())
