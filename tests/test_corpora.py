"""The downloaded corpora fail loudly: offline, the tests that need them fail and say what to do.

They used to skip, so a run without the network passed without the bot sieve's held-out check
or the GeoIP tests, and nothing said so but an "s" in the progress line.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from . import corpora
from .live import ROOT


def offline(cache: Path) -> dict[str, str]:
    """The environment of a machine that reaches no registry, with an empty corpus cache."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "npm_config_"))}
    env.update(
        ZEEF_TEST_CORPORA=str(cache),
        # npm answers from its own cache only, and that is empty.
        npm_config_offline="true",
        npm_config_cache=str(cache.parent / "npm-cache"),
        # pip reads no configuration (which names this machine's indexes) and has no index.
        PIP_CONFIG_FILE=os.devnull,
        PIP_NO_INDEX="1",
    )
    return env


@pytest.fixture
def no_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "corpora"
    for name in list(os.environ):
        if name.startswith(("PIP_", "npm_config_")):
            monkeypatch.delenv(name)
    for name, value in offline(cache).items():
        monkeypatch.setenv(name, value)
    return cache


def test_an_npm_corpus_that_cannot_be_fetched_is_an_error(no_registry: Path) -> None:
    with pytest.raises(corpora.CorpusMissing) as failure:
        corpora.fetch(corpora.USER_AGENTS)
    message = str(failure.value)
    assert "user-agents@2.1.198" in message and "the npm registry" in message
    assert "user-agents-2.1.198.tgz" in message and str(no_registry) in message
    assert "ZEEF_TEST_CORPORA" in message


def test_an_npm_corpus_without_npm_is_an_error(
    no_registry: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "nothing-here"))
    with pytest.raises(corpora.CorpusMissing, match="npm is not installed"):
        corpora.fetch(corpora.CRAWLER_USER_AGENTS)


def test_a_pypi_corpus_that_cannot_be_fetched_is_an_error(no_registry: Path) -> None:
    name, version = corpora.DEVICE_DETECTOR_SDIST
    with pytest.raises(corpora.CorpusMissing) as failure:
        corpora._sdist(name, version, corpora.DEVICE_DETECTOR_SHA256)
    message = str(failure.value)
    assert f"device-detector=={version}" in message and "PyPI" in message
    assert str(no_registry / "sdists") in message


def test_the_tests_that_need_a_corpus_fail_instead_of_skipping(tmp_path: Path) -> None:
    tests = [
        "tests/test_bots.py::test_rates_on_public_corpora",
        "tests/test_bots.py::test_rates_on_a_held_out_corpus",
    ]
    env = offline(tmp_path / "corpora")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider", *tests]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "skipped" not in output, output
    assert "could not fetch crawler-user-agents@1.60.0 from the npm registry" in output, output
    assert "could not fetch the sdist of device-detector==6.5.1 from PyPI" in output, output
