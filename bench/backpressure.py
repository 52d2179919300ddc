"""Back-pressure under a write-locked database: memory stays bounded, and comes back down.

Starts `python -m server serve` (one worker, a fresh SQLite file), warms it up with wrk
(bench/event.lua) for a few seconds, then holds the database's write lock from another
sqlite3 connection for --lock seconds while wrk sends events as fast as it can, and goes on
sending for --after seconds once the lock is gone. It prints:

- the server's resident memory before, its peak while locked, and after the backlog is written,
  for each of --cycles lock-and-release cycles (CPython keeps most of the memory it freed for
  its next use rather than giving it back, so the second cycle shows it is reused, not grown);
- the answers: 202 (accepted), 503 (overloaded: the buffer is at its bound) and any other;
- stored events against accepted ones, and the `overloaded` drops `zeef drops` counts.

Before the bound (issue 14, fault 5), 30 s locked at ~9.5k req/s took the buffer from 72 to
347 MiB and nothing answered 503. Pass --max-events/--max-bytes to try other bounds (a huge
one shows the old growth).

    python bench/backpressure.py [--lock 30] [--after 5] [--connections 64]
                                 [--max-events N] [--max-bytes N]

Needs wrk (apt-get install wrk). Run on demand; it is not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import ingest  # bench/ is on the path when this file is run as a script

HOST = ingest.HOST
DOMAIN = ingest.DOMAIN
WARMUP_SECONDS = 3
SAMPLE_SECONDS = 0.1


def rss_mib(root: int) -> float:
    """Largest current resident set (VmRSS) in the process tree, in MiB."""
    sizes = []
    for pid in ingest.process_tree(root):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    sizes.append(int(line.split()[1]) / 1024)
        except OSError:
            continue
    return max(sizes, default=0.0)


class Sampler(threading.Thread):
    """Samples the server's RSS every SAMPLE_SECONDS; keeps the peak of each named phase."""

    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.phase = "before"
        self.peaks: dict[str, float] = {}
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(SAMPLE_SECONDS):
            value = rss_mib(self.root)
            self.peaks[self.phase] = max(self.peaks.get(self.phase, 0.0), value)


class WriteLock(threading.Thread):
    """Another connection holding the write lock (BEGIN IMMEDIATE) for `seconds`."""

    def __init__(self, database: Path, seconds: float) -> None:
        super().__init__(daemon=True)
        self.database = database
        self.seconds = seconds
        self.taken = threading.Event()
        self.released = threading.Event()

    def run(self) -> None:
        conn = sqlite3.connect(self.database, isolation_level=None, timeout=30)
        conn.execute("BEGIN IMMEDIATE")
        self.taken.set()
        time.sleep(self.seconds)
        conn.execute("ROLLBACK")
        conn.close()
        self.released.set()


def count_overloaded(env: dict[str, str]) -> int:
    drops = json.loads(ingest.zeef_cli(env, "drops", DOMAIN, "--period", "all", "--json"))
    return int(drops["drops"]["overloaded"])


def wait_stored(env: dict[str, str], expected: int, timeout: float = 120.0) -> int:
    """Poll until `expected` pageviews are stored (or `timeout`); the number stored."""
    deadline = time.monotonic() + timeout
    stored = 0
    while time.monotonic() < deadline:
        stored = int(ingest.stats(env).get("pageviews", 0))
        if stored >= expected:
            break
        time.sleep(0.5)
    return stored


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lock", type=int, default=30, help="seconds the write lock is held")
    parser.add_argument("--after", type=int, default=5, help="seconds of load after the lock")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--cycles", type=int, default=2, help="lock and release this many times (memory reuse)"
    )
    parser.add_argument("--max-events", type=int, help="ZEEF_BUFFER_MAX_EVENTS")
    parser.add_argument("--max-bytes", type=int, help="ZEEF_BUFFER_MAX_BYTES")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        parser.error("wrk not found (apt-get install wrk)")
    # plan_pinning and run_wrk read these from bench/ingest.py's arguments.
    wrk_args = argparse.Namespace(threads=1, connections=args.connections, duration=args.lock)
    pinning = ingest.plan_pinning(1)

    with tempfile.TemporaryDirectory(prefix="zeef-backpressure-") as tmp_name:
        tmp = Path(tmp_name)
        env = ingest.zeef_env(tmp)
        if args.max_events:
            env["ZEEF_BUFFER_MAX_EVENTS"] = str(args.max_events)
        if args.max_bytes:
            env["ZEEF_BUFFER_MAX_BYTES"] = str(args.max_bytes)
        ingest.zeef_cli(env, "site", "add", DOMAIN)
        server = ingest.launch_zeef(pinning, tmp, env)
        cycles: list[Cycle] = []
        try:
            ingest.wait_ready(server.proc, server.port, server.log, "/healthz")
            warm = ingest.run_wrk(server.port, wrk_args, pinning, duration=WARMUP_SECONDS)
            accepted = warm.num("accepted")
            wait_stored(env, accepted)
            time.sleep(1)
            for _ in range(args.cycles):
                cycle = run_cycle(args, wrk_args, pinning, server.port, server.proc.pid, env)
                accepted += cycle.answers.num("accepted")
                started = time.monotonic()
                cycle.stored = wait_stored(env, accepted)
                cycle.drained_in = time.monotonic() - started
                time.sleep(2)  # the flush task's next rounds, then a quiet moment
                cycle.after = rss_mib(server.proc.pid)
                cycles.append(cycle)
            overloaded = count_overloaded(env)
        except Exception:
            print(f"server log (tail):\n{ingest.log_tail(server.log)}", file=sys.stderr)
            raise
        finally:
            clean = ingest.stop(server.proc)
        errors = ingest.log_errors(server.log)

    seconds = args.lock + args.after
    bounds = f"max_events={args.max_events or 'default'} max_bytes={args.max_bytes or 'default'}"
    print(
        f"back-pressure bench: {args.cycles} cycle(s) of the write lock held {args.lock} s "
        f"under {seconds} s of load ({bounds})"
    )
    print(f"pinning: {pinning.note}")
    refused = 0
    for number, cycle in enumerate(cycles, 1):
        c = cycle.answers.counts
        refused += cycle.answers.num("non_2xx")
        print(
            f"  cycle {number}: {cycle.answers.num('responses')} answers "
            f"({cycle.answers.requests_per_second:.0f} req/s): 202 {c['accepted']}, non-2xx "
            f"{c['non_2xx']} (first: {c['non_2xx_sample']}), dropped {c['dropped']}"
        )
        print(
            f"    RSS: before {cycle.before:.0f} MiB, peak while locked {cycle.peak_locked:.0f} "
            f"MiB, peak after release {cycle.peak_released:.0f} MiB, once the backlog was "
            f"written {cycle.after:.0f} MiB (written {cycle.drained_in:.1f} s after the load)"
        )
    stored = cycles[-1].stored
    print(f"  stored {stored} of {accepted} accepted (warm-up included)")
    print(f"  overloaded drops counted: {overloaded}, 503 answers: {refused}")
    problems = []
    if stored != accepted:
        problems.append(f"stored {stored} != accepted {accepted}")
    for cycle in cycles:
        sample = cycle.answers.counts["non_2xx_sample"]
        if cycle.answers.num("non_2xx") and not sample.startswith("503"):
            problems.append(f"non-2xx other than 503: {sample}")
    if overloaded != refused:
        problems.append(f"overloaded drops {overloaded} != non-2xx answers {refused}")
    if not clean:
        problems.append("server did not stop within 10 s of SIGTERM")
    for line in errors:
        print(f"  server log: {line}")
    for problem in problems:
        print(f"FAIL: {problem}")
    return 1 if problems else 0


@dataclass
class Cycle:
    answers: ingest.WrkResult
    before: float
    peak_locked: float
    peak_released: float
    stored: int = 0
    drained_in: float = 0.0
    after: float = 0.0


def run_cycle(
    args: argparse.Namespace,
    wrk_args: argparse.Namespace,
    pinning: ingest.Pinning,
    port: int,
    pid: int,
    env: dict[str, str],
) -> Cycle:
    """Lock the database for args.lock seconds under load; the answers and RSS peaks."""
    sampler = Sampler(pid)
    sampler.start()
    time.sleep(0.5)
    lock = WriteLock(Path(env["ZEEF_DATABASE"]), args.lock)
    lock.start()
    lock.taken.wait()
    sampler.phase = "locked"
    # wrk runs in the foreground: switch the phase when the lock goes, from a thread.
    threading.Thread(target=_after_release, args=(lock, sampler), daemon=True).start()
    answers = ingest.run_wrk(port, wrk_args, pinning, duration=args.lock + args.after)
    lock.join()
    sampler.stopping.set()
    sampler.join()
    peaks = sampler.peaks
    return Cycle(
        answers, peaks.get("before", 0.0), peaks.get("locked", 0.0), peaks.get("released", 0.0)
    )


def _after_release(lock: WriteLock, sampler: Sampler) -> None:
    lock.released.wait()
    sampler.phase = "released"


if __name__ == "__main__":
    sys.exit(main())
