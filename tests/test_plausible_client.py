"""A client library written for Plausible's Stats API (npm `plausible`, pinned in
package.json) reads Zeef unchanged but for its base URL and key."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import CHROME
from .live import LiveServer

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = """
const Plausible = require("plausible").default;
const [url, key] = process.argv.slice(1);
const client = new Plausible(key, "example.com", url);
(async () => {
  const out = {
    realtime: await client.getRealtime(),
    aggregate: await client.getAggregate("day", "visitors,pageviews", true),
    timeseries: await client.getTimeseries("7d", "visitors"),
    pages: await client.getBreakdown("day", "visitors,pageviews", "event:page"),
  };
  try { await client.getBreakdown("day", "visitors", "visit:planet"); }
  catch (e) { out.error = e.message; }
  console.log(JSON.stringify(out));
})();
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    env = {"ZEEF_FLUSH_INTERVAL": "0.1", "ZEEF_TRUSTED_PROXIES": "127.0.0.1"}
    with LiveServer(tmp_path_factory.mktemp("client"), env=env, sites=["example.com"]) as server:
        yield server


def test_plausibles_npm_client_reads_zeef(live: LiveServer) -> None:
    with live.client() as http:
        for path, ip in [("/", "81.2.69.142"), ("/pricing", "81.2.69.142"), ("/", "203.0.113.7")]:
            body = {"n": "pageview", "u": f"https://example.com{path}", "d": "example.com"}
            headers = {"user-agent": CHROME, "x-forwarded-for": ip}
            assert http.post("/api/event", json=body, headers=headers).status_code == 202
    key = live.cli("apikey", "create", "ops@example.com").strip().splitlines()[-1]
    time.sleep(0.5)  # written within the flush interval, 0.1 s
    run = subprocess.run(["node", "-e", SCRIPT, live.url, key], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout)
    assert got["realtime"] == 2
    assert got["aggregate"] == {"value": 2, "comparison_value": 0, "change": 100}
    assert len(got["timeseries"]) == 7 and got["timeseries"][-1]["visitors"] == 2
    assert got["pages"] == [{"page": "/", "visitors": 2, "pageviews": 2},
                            {"page": "/pricing", "visitors": 1, "pageviews": 1}]  # fmt: skip
    assert "unknown dimension" in got["error"]
