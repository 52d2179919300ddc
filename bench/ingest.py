"""Ingest benchmark: Zeef's POST /api/event against a bare Starlette app.

Runs the same wrk load (bench/event.lua) first against bench/bare.py, then against
`python -m server serve` on a fresh SQLite database, prints events/s for both and
their ratio (target: Zeef >= 0.6 x bare), then checks that every event wrk saw
accepted (202 without X-Zeef-Drop) was stored. Exits 1 when the counts differ or
any response was non-2xx; a low ratio is only reported, as the machine is noisy.

    python bench/ingest.py [--duration 10] [--connections 64] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
LUA_SCRIPT = BENCH / "event.lua"
HOST = "127.0.0.1"  # loopback only: this never drives anything off the machine
DOMAIN = "bench.example"
TARGET_RATIO = 0.6
# wrk keeps running this long after the send window closes, so every request in
# flight gets its answer before wrk stops (event.lua parks idle connections).
# Must stay under uvicorn's 5 s keep-alive, or parked connections get closed.
DRAIN_SECONDS = 3
# wrk's default 2 s timeout closes a connection whose answer is late; the
# server may still store that event, which would show up as a false count
# mismatch. Latency is reported separately (p50/p99).
WRK_TIMEOUT = "10s"
# The server flushes its queue about every second; "stopped growing" means
# unchanged for 3 flush periods, and we give up after 15 s in all.
FLUSH_STABLE_SECONDS = 3.0
FLUSH_MAX_SECONDS = 15.0
READY_TIMEOUT = 30.0


@dataclass
class Pinning:
    """taskset prefixes for the server and for wrk, and a line saying which."""

    server: list[str]
    wrk: list[str]
    note: str


@dataclass
class WrkResult:
    """What event.lua's done() printed, plus the send window it ran for."""

    counts: dict[str, str]
    seconds: float
    output: str

    def num(self, key: str) -> int:
        return int(self.counts.get(key, "0"))

    @property
    def accepted_per_second(self) -> float:
        return self.num("accepted") / self.seconds

    @property
    def requests_per_second(self) -> float:
        return self.num("responses") / self.seconds


def plan_pinning(threads: int) -> Pinning:
    """Server on the first allowed CPU, wrk on the others (2 cores here: 0 and 1).

    Unpinned, wrk and the server fight for the same core half the time and the
    numbers swing by 20-30 % between runs.
    """
    cpus = sorted(os.sched_getaffinity(0))
    taskset = shutil.which("taskset")
    if taskset is None:
        return Pinning([], [], "none (taskset not found)")
    if len(cpus) < 2:
        return Pinning([], [], f"none (only CPU {cpus[0]} available)")
    server_cpu, wrk_cpus = cpus[0], cpus[1 : 1 + threads]
    wrk_list = ",".join(str(c) for c in wrk_cpus)
    note = f"server on CPU {server_cpu}, wrk on CPU {wrk_list} (taskset)"
    if threads > len(wrk_cpus):
        note += f"; {threads} wrk threads share {len(wrk_cpus)} CPU(s)"
    return Pinning([taskset, "-c", str(server_cpu)], [taskset, "-c", wrk_list], note)


def free_port() -> int:
    """A loopback port nobody listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start cmd in its own process group (so stop() reaches its children too)."""
    with log.open("wb") as out:
        return subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop(proc: subprocess.Popen[bytes]) -> bool:
    """SIGTERM the process group we started, SIGKILL it after 10 s; False if it took SIGKILL."""
    if proc.poll() is not None:
        return True
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return False
    return True


def log_tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def log_errors(log: Path, limit: int = 3) -> list[str]:
    """The first few error lines of a server log (a flush failure shows up only there)."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return []
    marks = (" ERROR ", " CRITICAL ", "Traceback")
    return [line.strip() for line in lines if any(m in line for m in marks)][:limit]


def wait_ready(proc: subprocess.Popen[bytes], port: int, log: Path, path: str | None) -> None:
    """Wait until the port accepts connections (and `path` answers 200, if given)."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before it was ready")
        try:
            if path is None:
                socket.create_connection((HOST, port), timeout=1).close()
                return
            if httpx.get(f"http://{HOST}:{port}{path}", timeout=1).status_code == 200:
                return
        except (OSError, httpx.HTTPError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server not ready after {READY_TIMEOUT:.0f} s")


def process_tree(root: int) -> list[int]:
    """root and all its descendants, from /proc/*/stat parent ids."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may contain spaces and parentheses: fields start after the last ')'.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def peak_rss_mib(root: int) -> float | None:
    """Largest VmHWM (peak resident set) in the process tree, in MiB."""
    peaks = []
    for pid in process_tree(root):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]) / 1024)  # the kernel reports kB
        except OSError:
            continue
    return max(peaks, default=None)


def run_wrk(port: int, args: argparse.Namespace, pinning: Pinning) -> WrkResult:
    """Drive POST /api/event for args.duration seconds (+ drain) with event.lua."""
    cmd = [
        *pinning.wrk,
        "wrk",
        "--threads",
        str(args.threads),
        "--connections",
        str(args.connections),
        "--duration",
        f"{args.duration + DRAIN_SECONDS}s",
        "--timeout",
        WRK_TIMEOUT,
        "--script",
        str(LUA_SCRIPT),
        f"http://{HOST}:{port}/api/event",
        "--",
        str(args.duration),  # event.lua's send window
    ]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=args.duration + DRAIN_SECONDS + 60
    )
    output = proc.stdout + proc.stderr
    for line in proc.stdout.splitlines():
        if line.startswith("ZEEF_BENCH "):
            counts = dict(field.split("=", 1) for field in line.split()[1:])
            return WrkResult(counts, float(args.duration), output)
    raise RuntimeError(f"wrk exited with {proc.returncode} and no ZEEF_BENCH line:\n{output}")


def zeef_cli(env: dict[str, str], *cli_args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "server", *cli_args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"server {' '.join(cli_args)} failed ({proc.returncode}):\n{proc.stderr}"
        )
    return proc.stdout


def stats(env: dict[str, str]) -> dict[str, int]:
    return json.loads(zeef_cli(env, "stats", DOMAIN, "--period", "all", "--json"))


def wait_for_flush(env: dict[str, str]) -> dict[str, int]:
    """Poll stats until pageviews stops growing (or FLUSH_MAX_SECONDS pass)."""
    start = changed = time.monotonic()
    current = stats(env)
    while time.monotonic() - start < FLUSH_MAX_SECONDS:
        time.sleep(0.5)
        latest = stats(env)
        if latest.get("pageviews") != current.get("pageviews"):
            changed = time.monotonic()
        current = latest
        if time.monotonic() - changed >= FLUSH_STABLE_SECONDS:
            break
    return current


def describe(name: str, result: WrkResult, rss: float | None) -> str:
    rss_text = f"{rss:.1f} MiB" if rss is not None else "n/a"
    c = result.counts
    return (
        f"{name:5}: {result.accepted_per_second:6.0f} events/s, "
        f"{result.requests_per_second:6.0f} req/s  "
        f"(accepted {c['accepted']}, dropped {c['dropped']}, other 2xx {c['other_2xx']}, "
        f"non-2xx {c['non_2xx']}; p50 {result.num('p50_us') / 1000:.1f} ms, "
        f"p99 {result.num('p99_us') / 1000:.1f} ms; peak RSS {rss_text})"
    )


def check_wrk(name: str, result: WrkResult, connections: int) -> tuple[list[str], list[str]]:
    """Failures (non-2xx) and warnings (things that can explain a count mismatch) of a run."""
    fails, warns = [], []
    c = result.counts
    if result.num("non_2xx"):
        fails.append(f"{name}: {c['non_2xx']} non-2xx responses (first: {c['non_2xx_sample']})")
    errors = {k: c[k] for k in ("err_connect", "err_read", "err_write", "err_timeout")}
    if any(int(v) for v in errors.values()):
        warns.append(f"{name}: wrk socket errors {errors}")
    if result.num("parked") < connections:
        # A connection that never parked still had a request in flight when wrk stopped.
        warns.append(
            f"{name}: only {c['parked']}/{connections} connections drained within "
            f"{DRAIN_SECONDS} s; unanswered requests may be stored but not counted"
        )
    if name == "zeef" and result.num("dropped"):
        warns.append(
            f"{name}: {c['dropped']} browser requests dropped as bots "
            f"(X-Zeef-Drop: {c['drop_reason']})"
        )
    return fails, warns


@dataclass
class Run:
    """One server's figures: wrk's counts, its peak RSS, its stats and anything odd."""

    result: WrkResult
    rss: float | None
    stored: dict[str, int]
    warnings: list[str]


def server_warnings(name: str, clean_exit: bool, log: Path) -> list[str]:
    warnings = [f"{name}: server log: {line}" for line in log_errors(log)]
    if not clean_exit:
        # Zeef flushes its buffer on shutdown; a SIGKILL loses whatever it still held.
        warnings.append(f"{name}: server did not exit within 10 s of SIGTERM (killed)")
    return warnings


def bench_bare(args: argparse.Namespace, pinning: Pinning, tmp: Path) -> Run:
    port, log = free_port(), tmp / "bare.log"
    cmd = [*pinning.server, sys.executable, str(BENCH / "bare.py"), "--host", HOST]
    proc = start([*cmd, "--port", str(port)], dict(os.environ), log)
    try:
        wait_ready(proc, port, log, path=None)  # bare has no /healthz: a TCP accept will do
        result = run_wrk(port, args, pinning)
        rss = peak_rss_mib(proc.pid)
    except Exception:
        print(f"bare log (tail):\n{log_tail(log)}", file=sys.stderr)
        raise
    finally:
        clean = stop(proc)
    return Run(result, rss, {}, server_warnings("bare", clean, log))


def bench_zeef(args: argparse.Namespace, pinning: Pinning, tmp: Path) -> Run:
    port, log = free_port(), tmp / "zeef.log"
    env = dict(os.environ)
    env["ZEEF_DATABASE"] = str(tmp / "zeef.sqlite3")
    # wrk connects from 127.0.0.1; trusting it makes Zeef take event.lua's
    # X-Forwarded-For as the client address, so visitors differ.
    env["ZEEF_TRUSTED_PROXIES"] = HOST
    zeef_cli(env, "site", "add", DOMAIN)
    cmd = [*pinning.server, sys.executable, "-m", "server", "serve", "--host", HOST]
    proc = start([*cmd, "--port", str(port), "--workers", "1"], env, log)
    try:
        wait_ready(proc, port, log, path="/healthz")
        result = run_wrk(port, args, pinning)
        stored = wait_for_flush(env)  # the server must stay up: it does the flushing
        rss = peak_rss_mib(proc.pid)
    except Exception:
        print(f"zeef log (tail):\n{log_tail(log)}", file=sys.stderr)
        raise
    finally:
        clean = stop(proc)
    return Run(result, rss, stored, server_warnings("zeef", clean, log))


def exit_on_sigterm(signum: int, frame: object) -> None:
    """Turn SIGTERM into SystemExit so the finally blocks stop the servers and wrk."""
    raise SystemExit(128 + signum)


def main() -> int:
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="send window per run, seconds")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--verbose", action="store_true", help="print wrk's own output")
    args = parser.parse_args()
    if args.connections < args.threads:
        parser.error("--connections must be >= --threads (wrk gives each thread a share)")
    if shutil.which("wrk") is None:
        parser.error("wrk not found (apt-get install wrk)")

    pinning = plan_pinning(args.threads)
    print(
        f"ingest bench: {args.duration} s send window (+{DRAIN_SECONDS} s drain), "
        f"{args.connections} connections, {args.threads} wrk thread(s)"
    )
    print(f"pinning: {pinning.note}")

    with tempfile.TemporaryDirectory(prefix="zeef-bench-") as tmp_name:
        tmp = Path(tmp_name)
        bare_run = bench_bare(args, pinning, tmp)
        if args.verbose:
            print(bare_run.result.output)
        print(describe("bare", bare_run.result, bare_run.rss), flush=True)
        zeef_run = bench_zeef(args, pinning, tmp)
        if args.verbose:
            print(zeef_run.result.output)
        print(describe("zeef", zeef_run.result, zeef_run.rss))

    bare, zeef, stored = bare_run.result, zeef_run.result, zeef_run.stored

    ratio = zeef.accepted_per_second / bare.accepted_per_second if bare.num("accepted") else 0.0
    verdict = "meets target" if ratio >= TARGET_RATIO else "BELOW target"
    print(f"ratio zeef/bare: {ratio:.2f} (target {TARGET_RATIO:.2f}, {verdict})")
    accepted, pageviews = zeef.num("accepted"), stored.get("pageviews", -1)
    print(
        f"stored: pageviews={pageviews} accepted={accepted} visitors={stored.get('visitors')} "
        f"visits={stored.get('visits')} events={stored.get('events')}"
    )
    bare_fails, bare_warns = check_wrk("bare", bare, args.connections)
    zeef_fails, zeef_warns = check_wrk("zeef", zeef, args.connections)
    problems = bare_fails + zeef_fails
    if accepted == 0:
        problems.append("zeef: no event accepted")
    if pageviews != accepted:
        problems.append(f"zeef: stored pageviews {pageviews} != accepted {accepted}")
    for warning in bare_warns + zeef_warns + bare_run.warnings + zeef_run.warnings:
        print(f"WARN: {warning}")
    for problem in problems:
        print(f"FAIL: {problem}")
    if not problems:
        print("OK: stored pageviews == accepted, no non-2xx")
    return 1 if problems else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        sys.exit(2)
