"""Ingest cost in instructions: a quiet companion to bench/ingest.py.

bench/ingest.py measures events/s, which this shared 2-core machine moves by +-20 % from one
round to the next, CPU time per request included. Instruction counts do not move: callgrind
(valgrind) counts the instructions a process executes, whatever else the machine is doing, and
the same server given the same requests counts the same to within a fraction of a percent.
This machine has no hardware counters (`perf stat -e instructions` says "not supported").

For each of bare (bench/bare.py), zeef (one browser User-Agent) and mix (User-Agents from real
traffic by weight plus --bot-share bots, the same draws as bench/ingest.py), it starts a fresh
server under callgrind with instrumentation off and sends --warmup requests, uncounted: imports,
SQLite's page cache and the first sight of each User-Agent (by default the whole mix once).
Then it switches instrumentation on with callgrind_control, sends --requests requests over
--connections keep-alive connections, waits until Zeef has written every accepted event (its
flush is counted), dumps the counts and prints instructions per request and the ratios
bare/zeef and bare/mix: 0.6 means Zeef executes 1/0.6 as many instructions a request as bare.
A fourth run, cold, is warmed on one User-Agent and counts the mix's first pass: every distinct
User-Agent's first parse and bot verdict is in it, the worst case for the verdict's cache.

What it leaves out: the kernel (valgrind counts user space only; both servers make the same
two syscalls a request, so the real ratio is nearer 1 than this one) and memory stalls. It is
a measure of the code's own cost, for A/B comparisons of a change, beside ingest.py's rates.
Zeef's batches are kept near production size (ZEEF_FLUSH_INTERVAL 10 s, so ZEEF_FLUSH_SIZE's
2,000 events trigger each write, as they do at full load), since a batch has a fixed cost.

    python bench/cost.py [--requests 4000] [--warmup 10000] [--connections 64]
                         [--bot-share 0.05] [--only bare,zeef,mix,cold] [--keep DIR]
                         [--hits-per-visit 1]

Needs valgrind (apt-get install valgrind). About a minute per run, two for mix and cold.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import ingest  # noqa: E402  (bench/ is not a package: its directory is on the path only now)

HOST = ingest.HOST
DOMAIN = ingest.DOMAIN
# What event.lua sends: the Zeef tracker's body, one Chrome on Windows for the single-UA run.
BODY = b'{"n":"pageview","u":"https://bench.example/page","d":"bench.example","r":null}'
SINGLE_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
# event.lua's public first octets, so the visitor hashes see as many addresses.
FIRST_OCTETS = (23, 31, 37, 46, 62, 77, 81, 89, 91, 94, 95, 109, 176, 178, 185, 188, 212, 213, 217)
# Under callgrind a server starts 20-50x slower than natively.
READY_TIMEOUT = 240.0
RUNS = ("bare", "zeef", "mix", "cold")
# How long to wait for the last events to be written: ZEEF_FLUSH_INTERVAL (10 s, set in measure)
# plus a flush of 2,000 events under callgrind, with room to spare.
FLUSH_TIMEOUT = 60.0


@dataclass
class Counts:
    """What the load generator saw: 202s without X-Zeef-Drop, 202s with it, anything else."""

    accepted: int = 0
    dropped: int = 0
    other: int = 0

    @property
    def responses(self) -> int:
        return self.accepted + self.dropped + self.other


@dataclass
class Result:
    name: str
    instructions: int
    counts: Counts

    @property
    def per_request(self) -> float:
        return self.instructions / max(self.counts.responses, 1)


def requests(
    agents: list[str], n: int, seed: int, start: int = 0, hits_per_visit: int = 1
) -> list[bytes]:
    """n raw HTTP/1.1 requests shaped like event.lua's, with agents taken in turn from start,
    each address (so each visitor, and visit) sending `hits_per_visit` requests in a row."""
    rng = random.Random(seed)
    out = []
    forwarded = ""
    for i in range(start, start + n):
        if (i - start) % hits_per_visit == 0:
            forwarded = (
                f"{rng.choice(FIRST_OCTETS)}.{rng.randint(0, 255)}."
                f"{rng.randint(0, 255)}.{rng.randint(1, 254)}"
            )
        head = (
            f"POST /api/event HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: text/plain\r\n"
            f"User-Agent: {agents[i % len(agents)]}\r\nX-Forwarded-For: {forwarded}\r\n"
            f"Content-Length: {len(BODY)}\r\n\r\n"
        )
        out.append(head.encode() + BODY)  # UTF-8, as event.lua sends a User-Agent
    return out


async def _drive(port: int, batch: list[bytes], connections: int, counts: Counts) -> None:
    queue = iter(batch)

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            for request in queue:  # one shared iterator: connections take the next in turn
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").lower().split("\r\n")
                status = int(lines[0].split()[1])
                length = 0
                for line in lines:
                    if line.startswith("content-length:"):
                        length = int(line.split(":", 1)[1])
                if length:
                    await reader.readexactly(length)
                if status != 202:
                    counts.other += 1
                elif any(line.startswith("x-zeef-drop:") for line in lines):
                    counts.dropped += 1
                else:
                    counts.accepted += 1
        finally:
            writer.close()
            await writer.wait_closed()

    await asyncio.gather(*(connection() for _ in range(connections)))


def drive(port: int, batch: list[bytes], connections: int) -> Counts:
    counts = Counts()
    asyncio.run(_drive(port, batch, connections, counts))
    return counts


def wait_stored(env: dict[str, str], expected: int) -> None:
    """Wait until Zeef has written `expected` pageviews: its flush belongs in the count."""
    deadline = time.monotonic() + FLUSH_TIMEOUT
    while (stored := ingest.stats(env).get("pageviews", 0)) < expected:
        if time.monotonic() > deadline:
            raise RuntimeError(f"stored {stored} of {expected} accepted after {FLUSH_TIMEOUT} s")
        time.sleep(0.2)


def callgrind(pid: int, *command: str) -> None:
    subprocess.run(["callgrind_control", *command, str(pid)], check=True, capture_output=True)


def dumped_instructions(out_dir: Path, name: str) -> int:
    """The `totals:` of the dumps callgrind wrote for this server (one per callgrind -d)."""
    total = 0
    for dump in out_dir.glob(f"{name}.*"):
        for line in dump.read_text(errors="replace").splitlines():
            if line.startswith("totals:"):
                total += int(line.split()[1])
    return total


@dataclass
class Run:
    """What one server is sent: uncounted, then counted (from `start` in `counted`'s list)."""

    name: str
    warm: list[str]
    counted: list[str]
    requests: int
    start: int = 0


def plan(args: argparse.Namespace, mix: list[str]) -> dict[str, Run]:
    single = [SINGLE_AGENT]
    return {
        "bare": Run("bare", single, single, args.requests),
        "zeef": Run("zeef", single, single, args.requests),
        # Warmed on the mix itself, then counted further on: every User-Agent is a cache hit.
        "mix": Run("mix", mix, mix, args.requests, start=args.warmup),
        # Warmed on one User-Agent (imports, SQLite), then the mix's first pass is counted: the
        # first sight of each of its distinct User-Agents (parse and verdict) is in the figure.
        "cold": Run("cold", single, mix, len(mix)),
    }


def measure(run: Run, args: argparse.Namespace, tmp: Path) -> Result:
    """Start one server under callgrind, warm it, count run.requests requests, stop it."""
    name = run.name
    python = os.path.realpath(sys.executable)  # a pyenv shim would exec past valgrind
    valgrind = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        f"--callgrind-out-file={tmp / name}.%p",
    ]
    port = ingest.free_port()
    env = dict(os.environ)
    if name == "bare":
        cmd = [*valgrind, python, str(BENCH / "bare.py"), "--host", HOST, "--port", str(port)]
    else:
        env = ingest.zeef_env(tmp / name)
        (tmp / name).mkdir()
        # Batches of ZEEF_FLUSH_SIZE (2,000), as at full load natively, not a second's worth
        # of valgrind's slow pace: a batch has a fixed cost, and a small one would overstate it.
        env["ZEEF_FLUSH_INTERVAL"] = "10"
        ingest.zeef_cli(env, "site", "add", DOMAIN)
        cmd = [*valgrind, python, "-m", "server", "serve", "--host", HOST, "--port", str(port)]
    log = tmp / f"{name}.log"
    proc = ingest.start(cmd, env, log)
    try:
        ready = time.monotonic()
        ingest.wait_ready(proc, port, log, None if name == "bare" else "/healthz", READY_TIMEOUT)
        ready = time.monotonic() - ready
        warm = drive(port, requests(run.warm, args.warmup, seed=1), args.connections)
        if name != "bare":
            wait_stored(env, warm.accepted)
        callgrind(proc.pid, "--instr=on")
        started = time.monotonic()
        batch = requests(
            run.counted, run.requests, seed=2, start=run.start, hits_per_visit=args.hits_per_visit
        )
        counts = drive(port, batch, args.connections)
        seconds = time.monotonic() - started
        if name != "bare":
            wait_stored(env, warm.accepted + counts.accepted)
        callgrind(proc.pid, "--dump")
        callgrind(proc.pid, "--instr=off")
    except Exception:
        print(f"{name} log (tail):\n{ingest.log_tail(log)}", file=sys.stderr)
        raise
    finally:
        ingest.stop(proc)
    result = Result(name, dumped_instructions(tmp, name), counts)
    print(
        f"  {name:4}: {result.per_request / 1000:7.1f} k instructions/request "
        f"({counts.accepted} accepted, {counts.dropped} dropped, {counts.other} other; "
        f"start {ready:.0f} s, {counts.responses / seconds:.0f} req/s under callgrind)",
        flush=True,
    )
    if counts.other:
        raise RuntimeError(f"{name}: {counts.other} responses were not 202")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000, help="counted requests per server")
    parser.add_argument(
        "--warmup",
        type=int,
        default=ingest.MIX_DRAWS,
        help="uncounted requests first (default: the whole mix once, so every UA was seen)",
    )
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--bot-share", type=float, default=0.05, help="share of bots in the mix")
    parser.add_argument(
        "--keep", type=Path, help="copy callgrind's dumps here, for callgrind_annotate"
    )
    parser.add_argument("--only", default=",".join(RUNS), help=f"some of {','.join(RUNS)}")
    parser.add_argument(
        "--hits-per-visit",
        type=int,
        default=1,
        help="counted requests an address sends in a row (1: every request opens a visit, the "
        "writer's worst case; real sites see 2-5 hits a visit)",
    )
    args = parser.parse_args()
    only = [name for name in args.only.split(",") if name]
    if not set(only) <= set(RUNS) or not only:
        parser.error(f"--only takes some of {','.join(RUNS)}")
    if args.requests < 1 or args.connections < 1 or args.hits_per_visit < 1:
        parser.error("--requests, --connections and --hits-per-visit must be >= 1")
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        parser.error("valgrind not found (apt-get install valgrind)")

    draws, note = ingest.mix_draws(args.bot_share)
    runs = plan(args, [ua for ua, _ in draws])
    print(
        f"ingest cost: {args.requests} requests per server after {args.warmup} uncounted, "
        f"{args.connections} connections, instructions counted by callgrind (flush included)"
    )
    print(note)
    results: dict[str, Result] = {}
    with tempfile.TemporaryDirectory(prefix="zeef-cost-") as tmp_name:
        for name in only:
            results[name] = measure(runs[name], args, Path(tmp_name))
            if args.keep:
                args.keep.mkdir(parents=True, exist_ok=True)
                for dump in Path(tmp_name).glob(f"{name}.*.*"):
                    shutil.copy(dump, args.keep / dump.name)
    if "bare" in results:
        bare = results["bare"].per_request
        for name in ("zeef", "mix", "cold"):
            if name in results:
                ratio = bare / results[name].per_request
                print(
                    f"  ratio bare/{name} (instructions per request): {ratio:.3f}; "
                    f"Zeef's own work {(results[name].per_request - bare) / 1000:.1f} k "
                    f"instructions a request"
                )
        if "mix" in results and results["mix"].counts.accepted:
            # The mix's bots are answered but not stored: charged to the events that are.
            mix = results["mix"]
            per_event = mix.instructions / mix.counts.accepted
            print(f"  ratio bare/mix (instructions per accepted event): {bare / per_event:.3f}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        sys.exit(2)
