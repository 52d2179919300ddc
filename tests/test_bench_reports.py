"""bench/reports.py still runs end to end and its --json line has every report with numbers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
UNFILTERED = {
    "aggregate", "timeseries:day", "breakdown:event:page", "breakdown:visit:entry_page",
    "breakdown:visit:exit_page", "breakdown:visit:source", "breakdown:visit:channel",
    "breakdown:visit:referrer", "breakdown:visit:utm_source", "breakdown:visit:country",
    "breakdown:visit:region", "breakdown:visit:city", "breakdown:visit:browser",
    "breakdown:visit:os", "breakdown:visit:device", "breakdown:event:name",
    "breakdown:event:props:plan", "breakdown:event:goal",
}  # fmt: skip
FILTERED = {
    "aggregate:country==NL", "breakdown:event:page:country==NL", "aggregate:page==/pricing"
}  # fmt: skip


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "bench" / "reports.py"), *args],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )  # fmt: skip


def _timed(row: object) -> bool:
    if not isinstance(row, dict) or set(row) != {"p50_ms", "p95_ms"}:
        return False
    p50, p95 = row["p50_ms"], row["p95_ms"]
    return all(isinstance(v, int | float) and v >= 0 for v in (p50, p95)) and p50 <= p95


def test_json_line_names_every_report(tmp_path: Path) -> None:
    kept = tmp_path / "bench.sqlite3"
    run = _run("--events", "3000", "--days", "3", "--repeat", "2", "--keep", str(kept), "--json")
    assert run.returncode == 0, run.stderr
    figures = json.loads(run.stdout.strip().splitlines()[-1])
    assert figures["events"] >= 2000
    assert isinstance(figures["baseline_ms"], float) and figures["baseline_ms"] > 0
    assert set(figures["unfiltered"]) == UNFILTERED
    assert set(figures["filtered"]) == FILTERED
    assert all(
        _timed(row) for row in [*figures["unfiltered"].values(), *figures["filtered"].values()]
    )
    assert _timed(figures["dashboard"])

    assert "rollups: 3 days (re)built" in run.stdout

    # --reuse times the kept database again without building: same events, no "built" line;
    # --raw without rollups.
    again = _run("--reuse", str(kept), "--days", "3", "--repeat", "1", "--raw", "--json")
    assert again.returncode == 0, again.stderr
    assert not again.stdout.startswith("built") and "rollups:" not in again.stdout
    assert json.loads(again.stdout.strip().splitlines()[-1])["events"] == figures["events"]
