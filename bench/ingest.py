"""Ingest benchmark: Zeef's POST /api/event against a bare Starlette app.

Starts bench/bare.py and `python -m server serve` (on a fresh SQLite database) side
by side, both pinned to the same server CPU, then runs --rounds rounds; each round
makes three wrk runs (bench/event.lua), rotating which goes first:

- bare: the floor, a Starlette app that only answers;
- zeef: Zeef with one browser User-Agent (every parse a cache hit);
- mix: Zeef with User-Agents drawn from real traffic by weight (the npm user-agents
  sample) plus a share of bots (the npm crawler-user-agents instances, --bot-share),
  written to a Lua table at start (tests/corpora.py fetches both, pinned).

First an uncounted warm-up run per server (--warmup seconds): it pays for imports, SQLite's
page cache and the mix's first sight of each User-Agent, which otherwise land on round 1.

It prints each round's events/s (accepted: 202 without X-Zeef-Drop) and the ratios
to bare, and the server CPU per request (flush included) as a second measure of cost,
then the medians (target: zeef/bare >= 0.6), and finally checks that every
event wrk saw accepted (rounds and warm-up) was stored; the mix's bots are dropped with
X-Zeef-Drop: bot, so they are not in that count. Exits 1 when the counts differ or any
response was non-2xx; a low ratio is only reported, as the machine is noisy.

    python bench/ingest.py [--rounds 5] [--duration 5] [--warmup 2] [--connections 64]
                           [--threads 1] [--bot-share 0.05]
                           [--seed DATABASE] [--rollup-interval SECONDS]

With --seed, Zeef starts from a copy of that database (one `bench/reports.py --keep` built:
its site is renamed out of the way) and, with a short --rollup-interval, sums it over and
over while requests come in: what the rollup builder, which runs inside the server process,
costs the collector. Compare its ratios with a run without.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests import corpora  # noqa: E402  (the repository root is on the path only now)

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
# The mix: this many draws, shuffled; wrk goes through them in order and starts over.
MIX_DRAWS = 10_000
RUNS = ("bare", "zeef", "mix")


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
    # CPU the server used for this run, its flush included: a second measure of cost that a
    # slower or faster spell of this shared machine moves less than events/s.
    cpu_seconds: float = 0.0

    @property
    def cpu_us_per_request(self) -> float:
        return self.cpu_seconds / max(self.num("responses"), 1) * 1e6

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


def wait_ready(
    proc: subprocess.Popen[bytes],
    port: int,
    log: Path,
    path: str | None,
    timeout: float = READY_TIMEOUT,
) -> None:
    """Wait until the port accepts connections (and `path` answers 200, if given)."""
    deadline = time.monotonic() + timeout
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
    raise RuntimeError(f"server not ready after {timeout:.0f} s")


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


def cpu_seconds(root: int) -> float:
    """User + system CPU time used so far by the process tree (all threads), in seconds."""
    ticks = 0
    for pid in process_tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def mix_draws(bot_share: float) -> tuple[list[tuple[str, bool]], str]:
    """MIX_DRAWS (User-Agent, is_bot) pairs: real browsers by weight, plus bots, shuffled.

    Returns them and a line describing them. The seed is fixed, so every run, every round and
    bench/cost.py send the same sequence.
    """
    rng = random.Random(9)
    sample = corpora.real_world_sample()
    crawlers = corpora.crawler_instances()
    n_bots = round(MIX_DRAWS * bot_share)
    browsers = rng.choices([ua for ua, _ in sample], [w for _, w in sample], k=MIX_DRAWS - n_bots)
    draws = [(ua, False) for ua in browsers] + [
        (ua, True) for ua in rng.choices(crawlers, k=n_bots)
    ]
    rng.shuffle(draws)
    distinct = len({ua for ua, _ in draws})
    note = (
        f"mix: {MIX_DRAWS} draws, {distinct} distinct User-Agents; {MIX_DRAWS - n_bots} from "
        f"user-agents {corpora.USER_AGENTS.version} by weight, {n_bots} ({bot_share:.0%}) from "
        f"crawler-user-agents {corpora.CRAWLER_USER_AGENTS.version}"
    )
    return draws, note


def write_mix(directory: Path, bot_share: float) -> tuple[Path, str]:
    """A Lua file of mix_draws' User-Agents for event.lua; its path and a line describing it."""
    draws, note = mix_draws(bot_share)
    lines = ["-- Generated by bench/ingest.py: {ua, is_bot} pairs.", "return {"]
    lines += [f"  {{{lua_string(ua)}, {'true' if bot else 'false'}}}," for ua, bot in draws]
    lines.append("}")
    path = directory / "agents.lua"
    path.write_text("\n".join(lines) + "\n")
    return path, note


def lua_string(text: str) -> str:
    """A double-quoted Lua string literal: printable ASCII as is, every other byte as \\ddd."""
    out = []
    for byte in text.encode():
        char = chr(byte)
        if char in '"\\' or not 32 <= byte < 127:
            out.append(f"\\{byte:03d}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def run_wrk(
    port: int,
    args: argparse.Namespace,
    pinning: Pinning,
    agents: Path | None = None,
    duration: int | None = None,
) -> WrkResult:
    """Drive POST /api/event for `duration` (default args.duration) seconds (+ drain).

    With `agents` (a file from write_mix), event.lua sends those User-Agents; without, one.
    """
    duration = duration or args.duration
    cmd = [
        *pinning.wrk,
        "wrk",
        "--threads",
        str(args.threads),
        "--connections",
        str(args.connections),
        "--duration",
        f"{duration + DRAIN_SECONDS}s",
        "--timeout",
        WRK_TIMEOUT,
        "--script",
        str(LUA_SCRIPT),
        f"http://{HOST}:{port}/api/event",
        "--",
        str(duration),  # event.lua's send window
        *([str(agents)] if agents else []),
    ]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=duration + DRAIN_SECONDS + 60
    )
    output = proc.stdout + proc.stderr
    for line in proc.stdout.splitlines():
        if line.startswith("ZEEF_BENCH "):
            counts = dict(field.split("=", 1) for field in line.split()[1:])
            return WrkResult(counts, float(duration), output)
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


def wait_for_flush(env: dict[str, str], expected: int | None = None) -> dict[str, int]:
    """Poll stats until pageviews stops growing (or FLUSH_MAX_SECONDS pass).

    With `expected`, also return as soon as pageviews reaches it: between rounds
    we only need Zeef's flush to be over, not the full stability wait.
    """
    start = changed = time.monotonic()
    current = stats(env)
    while time.monotonic() - start < FLUSH_MAX_SECONDS:
        if expected is not None and current.get("pageviews", 0) >= expected:
            break
        time.sleep(0.5)
        latest = stats(env)
        if latest.get("pageviews") != current.get("pageviews"):
            changed = time.monotonic()
        current = latest
        if time.monotonic() - changed >= FLUSH_STABLE_SECONDS:
            break
    return current


def describe(name: str, result: WrkResult) -> str:
    c = result.counts
    return (
        f"  {name:5}: {result.accepted_per_second:6.0f} events/s, "
        f"{result.requests_per_second:6.0f} req/s  "
        f"(accepted {c['accepted']}, dropped {c['dropped']}, other 2xx {c['other_2xx']}, "
        f"non-2xx {c['non_2xx']}; p50 {latency_ms(result, 'p50_us'):.1f} ms, "
        f"p99 {latency_ms(result, 'p99_us'):.1f} ms)"
    )


def latency_ms(result: WrkResult, key: str) -> float:
    return result.num(key) / 1000  # event.lua reports microseconds


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
    if name.startswith("zeef") and result.num("dropped"):
        warns.append(
            f"{name}: {c['dropped']} browser requests dropped as bots "
            f"(X-Zeef-Drop: {c['drop_reason']})"
        )
    if name.startswith("mix"):
        # Of the bots sent, all but the crawler list's two in-app browsers are dropped (99.9 %);
        # a browser dropped shows up as more drops than bots.
        sent, dropped = result.num("sent_bots"), result.num("dropped")
        if dropped > sent or dropped < 0.98 * sent:
            warns.append(f"{name}: {dropped} dropped for {sent} bots sent")
        if dropped and c["drop_reason"] != "bot":
            warns.append(f"{name}: dropped with X-Zeef-Drop: {c['drop_reason']}, not bot")
    return fails, warns


@dataclass
class Server:
    """A server we started and keep up for all rounds."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path


@dataclass
class Round:
    """One round: the same wrk load against each server, in `order`."""

    number: int
    order: tuple[str, ...]
    results: dict[str, WrkResult]

    def ratio(self, name: str = "zeef") -> float:
        # Accepted per second on both sides: for bare that is every response, and a
        # request Zeef drops or answers otherwise is not ingest work done.
        bare, zeef = self.results["bare"], self.results[name]
        return zeef.accepted_per_second / bare.accepted_per_second if bare.num("accepted") else 0.0

    def request_ratio(self, name: str = "mix") -> float:
        """Requests answered per second over bare's: the mix's dropped bots counted as work."""
        bare = self.results["bare"].requests_per_second
        return self.results[name].requests_per_second / bare if bare else 0.0

    def cpu_ratio(self, name: str = "zeef") -> float:
        """bare's CPU per request over Zeef's: 0.6 means Zeef spends 1/0.6 as much."""
        zeef = self.results[name].cpu_us_per_request
        return self.results["bare"].cpu_us_per_request / zeef if zeef else 0.0


def server_warnings(name: str, clean_exit: bool, log: Path) -> list[str]:
    warnings = [f"{name}: server log: {line}" for line in log_errors(log)]
    if not clean_exit:
        # Zeef flushes its buffer on shutdown; a SIGKILL loses whatever it still held.
        warnings.append(f"{name}: server did not exit within 10 s of SIGTERM (killed)")
    return warnings


def seed(source: Path, target: Path) -> None:
    """Copy a database (through SQLite's backup, WAL included) and move its bench site aside,
    so the counts this bench reads are of its own requests."""
    import sqlite3

    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
        with dst:
            dst.execute("UPDATE sites SET domain = 'seed.example' WHERE domain = ?", (DOMAIN,))
    finally:
        src.close()
        dst.close()


def zeef_env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["ZEEF_DATABASE"] = str(tmp / "zeef.sqlite3")
    # wrk connects from 127.0.0.1; trusting it makes Zeef take event.lua's
    # X-Forwarded-For as the client address, so visitors differ.
    env["ZEEF_TRUSTED_PROXIES"] = HOST
    return env


def launch_bare(pinning: Pinning, tmp: Path) -> Server:
    port, log = free_port(), tmp / "bare.log"
    cmd = [*pinning.server, sys.executable, str(BENCH / "bare.py"), "--host", HOST]
    return Server("bare", start([*cmd, "--port", str(port)], dict(os.environ), log), port, log)


def launch_zeef(pinning: Pinning, tmp: Path, env: dict[str, str]) -> Server:
    port, log = free_port(), tmp / "zeef.log"
    cmd = [*pinning.server, sys.executable, "-m", "server", "serve", "--host", HOST]
    proc = start([*cmd, "--port", str(port), "--workers", "1"], env, log)
    return Server("zeef", proc, port, log)


def run_rounds(
    args: argparse.Namespace,
    pinning: Pinning,
    servers: dict[str, Server],
    env: dict[str, str],
    agents: Path,
) -> tuple[list[Round], int]:
    """Make the three runs args.rounds times, rotating which one goes first.

    Returns the rounds and the events Zeef accepted in the warm-up.

    Rotating cancels out drift within a round (the machine getting busier or
    quieter, Zeef's database growing) instead of always charging it to one side.
    """
    rounds: list[Round] = []
    zeef_accepted = 0
    if args.warmup:
        # Not counted: the first requests after start pay for imports, SQLite's page cache and,
        # in the mix, the first sight of each User-Agent. Their events are stored all the same.
        warm = []
        for name in RUNS:
            server = servers["bare" if name == "bare" else "zeef"]
            mix = agents if name == "mix" else None
            result = run_wrk(server.port, args, pinning, mix, duration=args.warmup)
            if name != "bare":
                zeef_accepted += result.num("accepted")
                wait_for_flush(env, expected=zeef_accepted)
            warm.append(f"{name} {result.accepted_per_second:.0f}")
        print(f"warm-up ({args.warmup} s each, not counted): {', '.join(warm)} events/s")
    warm_accepted = zeef_accepted
    for number in range(1, args.rounds + 1):
        shift = (number - 1) % len(RUNS)
        order = RUNS[shift:] + RUNS[:shift]
        results: dict[str, WrkResult] = {}
        for name in order:
            server = servers["bare" if name == "bare" else "zeef"]
            cpu_before = cpu_seconds(server.proc.pid)
            results[name] = run_wrk(server.port, args, pinning, agents if name == "mix" else None)
            if name != "bare":
                zeef_accepted += results[name].num("accepted")
                # Zeef writes what it buffered up to a second later, on the same CPU
                # as bare: let that flush finish so it is not charged to bare's run.
                wait_for_flush(env, expected=zeef_accepted)
            results[name].cpu_seconds = cpu_seconds(server.proc.pid) - cpu_before
        current = Round(number, order, results)
        rounds.append(current)
        if args.verbose:
            for name in order:
                print(results[name].output)
        bare, zeef, mix = results["bare"], results["zeef"], results["mix"]
        print(
            f"round {number} ({'-'.join(order)}): bare {bare.accepted_per_second:6.0f}, "
            f"zeef {zeef.accepted_per_second:6.0f} (ratio {current.ratio():.2f}), "
            f"mix {mix.accepted_per_second:6.0f} events/s (ratio {current.ratio('mix'):.2f}; "
            f"{mix.requests_per_second:.0f} req/s with {mix.num('dropped')} bots dropped)  "
            f"(p50/p99 ms: bare {latency_ms(bare, 'p50_us'):.1f}/"
            f"{latency_ms(bare, 'p99_us'):.1f}, zeef {latency_ms(zeef, 'p50_us'):.1f}/"
            f"{latency_ms(zeef, 'p99_us'):.1f}, mix {latency_ms(mix, 'p50_us'):.1f}/"
            f"{latency_ms(mix, 'p99_us'):.1f}); CPU us/request: bare "
            f"{bare.cpu_us_per_request:.0f}, zeef {zeef.cpu_us_per_request:.0f}, mix "
            f"{mix.cpu_us_per_request:.0f} (ratios {current.cpu_ratio():.2f}, "
            f"{current.cpu_ratio('mix'):.2f})",
            flush=True,
        )
        if args.verbose:
            for name in RUNS:
                print(describe(name, results[name]), flush=True)
    return rounds, warm_accepted


def summarize(name: str, results: list[WrkResult], rss: float | None) -> str:
    # Medians, like the ratio: one round hit by a noisy neighbour should not move them.
    rss_text = f"{rss:.1f} MiB" if rss is not None else "n/a"
    rates = [r.accepted_per_second for r in results]
    p50 = statistics.median(latency_ms(r, "p50_us") for r in results)
    p99 = statistics.median(latency_ms(r, "p99_us") for r in results)
    return (
        f"{name:5}: median {statistics.median(rates):6.0f} events/s "
        f"(min {min(rates):.0f}, max {max(rates):.0f}); median p50 {p50:.1f} ms, "
        f"p99 {p99:.1f} ms; peak RSS {rss_text}"
    )


def exit_on_sigterm(signum: int, frame: object) -> None:
    """Turn SIGTERM into SystemExit so the finally blocks stop the servers and wrk."""
    raise SystemExit(128 + signum)


def main() -> int:
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="bare+zeef rounds")
    parser.add_argument("--duration", type=int, default=5, help="send window per run, seconds")
    parser.add_argument(
        "--warmup", type=int, default=2, help="uncounted run per server first, seconds (0: none)"
    )
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--verbose", action="store_true", help="print wrk's own output")
    parser.add_argument(
        "--bot-share", type=float, default=0.05, help="share of bots in the mix (0 to 1)"
    )
    parser.add_argument("--seed", type=Path, help="start from a copy of this database")
    parser.add_argument(
        "--rollup-interval", type=int, help="ZEEF_ROLLUP_INTERVAL for the server (300)"
    )
    args = parser.parse_args()
    if args.rounds < 1 or args.duration < 1:
        parser.error("--rounds and --duration must be >= 1")
    if not 0 <= args.bot_share <= 1:
        parser.error("--bot-share must be between 0 and 1")
    if args.connections < args.threads:
        parser.error("--connections must be >= --threads (wrk gives each thread a share)")
    if shutil.which("wrk") is None:
        parser.error("wrk not found (apt-get install wrk)")
    if args.seed is not None and not args.seed.is_file():
        parser.error(f"--seed: no database at {args.seed}")

    pinning = plan_pinning(args.threads)
    print(
        f"ingest bench: {args.rounds} rounds, {args.duration} s send window "
        f"(+{DRAIN_SECONDS} s drain) per server, {args.connections} connections, "
        f"{args.threads} wrk thread(s)"
    )
    print(f"pinning: {pinning.note}")
    print("events/s = accepted requests (202, not dropped) per second of send window")

    with tempfile.TemporaryDirectory(prefix="zeef-bench-") as tmp_name:
        tmp = Path(tmp_name)
        env = zeef_env(tmp)
        if args.seed is not None:
            seed(args.seed, Path(env["ZEEF_DATABASE"]))
            print(f"seeded from {args.seed}; rollups every {args.rollup_interval} s")
        if args.rollup_interval is not None:
            env["ZEEF_ROLLUP_INTERVAL"] = str(args.rollup_interval)
        zeef_cli(env, "site", "add", DOMAIN)
        try:
            agents, mix_note = write_mix(tmp, args.bot_share)
        except corpora.CorpusUnavailable as exc:
            raise RuntimeError(f"{exc} (the mix's User-Agents come from npm)") from exc
        print(mix_note)
        servers: dict[str, Server] = {}
        clean: dict[str, bool] = {}
        try:
            # Both stay up for all rounds: an idle server costs next to nothing, and
            # starting each once keeps startup out of every round.
            servers["bare"] = launch_bare(pinning, tmp)
            servers["zeef"] = launch_zeef(pinning, tmp, env)
            # bare has no /healthz: a TCP accept will do.
            wait_ready(servers["bare"].proc, servers["bare"].port, servers["bare"].log, None)
            wait_ready(servers["zeef"].proc, servers["zeef"].port, servers["zeef"].log, "/healthz")
            rounds, warm_accepted = run_rounds(args, pinning, servers, env, agents)
            stored = wait_for_flush(env)  # Zeef must stay up: it does the flushing
            rss = {name: peak_rss_mib(server.proc.pid) for name, server in servers.items()}
        except Exception:
            for server in servers.values():
                print(f"{server.name} log (tail):\n{log_tail(server.log)}", file=sys.stderr)
            raise
        finally:
            for name, server in servers.items():
                clean[name] = stop(server.proc)
        warnings = [
            warning
            for name, server in servers.items()
            for warning in server_warnings(name, clean[name], server.log)
        ]

    ratios = [r.ratio() for r in rounds]
    mix_ratios = [r.ratio("mix") for r in rounds]
    median_ratio = statistics.median(ratios)
    print(f"summary over {len(rounds)} rounds:")
    for name in RUNS:
        print(
            "  "
            + summarize(
                name, [r.results[name] for r in rounds], rss["zeef" if name == "mix" else name]
            )
        )
    verdict = "meets target" if median_ratio >= TARGET_RATIO else "BELOW target"
    print(
        f"  ratio zeef/bare: median {median_ratio:.2f} (min {min(ratios):.2f}, "
        f"max {max(ratios):.2f}; target {TARGET_RATIO:.2f}, {verdict})"
    )
    print(
        f"  ratio mix/bare:  median {statistics.median(mix_ratios):.2f} (min "
        f"{min(mix_ratios):.2f}, max {max(mix_ratios):.2f}; events only: the mix's bots are "
        f"answered but not counted)"
    )
    answered = [r.request_ratio("mix") for r in rounds]
    print(
        f"  ratio mix/bare, requests answered: median {statistics.median(answered):.2f} (min "
        f"{min(answered):.2f}, max {max(answered):.2f}; the bots' answers counted as work)"
    )
    for name in ("zeef", "mix"):
        cpu = [r.cpu_ratio(name) for r in rounds]
        print(
            f"  CPU per request, bare/{name}: median {statistics.median(cpu):.2f} (min "
            f"{min(cpu):.2f}, max {max(cpu):.2f}; flush included, bots included for the mix)"
        )

    accepted = warm_accepted + sum(
        r.results[name].num("accepted") for r in rounds for name in ("zeef", "mix")
    )
    pageviews = stored.get("pageviews", -1)
    print(
        f"stored: pageviews={pageviews} accepted={accepted} (all rounds and the warm-up) "
        f"visitors={stored.get('visitors')} visits={stored.get('visits')} "
        f"events={stored.get('events')}"
    )
    problems: list[str] = []
    for r in rounds:
        for name in RUNS:
            fails, warns = check_wrk(f"{name} round {r.number}", r.results[name], args.connections)
            problems += fails
            warnings += warns
    if accepted == 0:
        problems.append("zeef: no event accepted")
    if pageviews != accepted:
        problems.append(f"zeef: stored pageviews {pageviews} != accepted {accepted}")
    for warning in warnings:
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
