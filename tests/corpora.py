"""Public test data, pinned by version and hash, cached on disk, never vendored.

- User-Agent corpora from the npm registry: `npm pack` fetches each tarball once into the cache
  directory (ZEEF_TEST_CORPORA, default ~/.cache/zeef-test-corpora), its sha512 is checked
  against the registry's integrity value recorded here, and the JSON inside is read with
  tarfile.
- MaxMind's GeoIP test databases (Apache-2.0/MIT): the team's copy in ../shared/data/geoip when
  it is beside the repository, else the ones inside the maxminddb sdist from PyPI.

A corpus that cannot be fetched raises CorpusMissing, naming it and where to put it: the tests
that need it fail, never skip.
- Matomo's device-detector test fixtures, inside the sdist of its Python port on PyPI
  (sha256-pinned), for a held-out check of the bot sieve.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Tarball:
    name: str
    version: str
    integrity: str  # `npm view NAME@VERSION dist.integrity`
    members: tuple[str, ...]  # the data file's possible paths, plain or gzipped

    @property
    def filename(self) -> str:
        return f"{self.name}-{self.version}.tgz"


# Bot strings: each entry has a `pattern` and the `instances` it was written from (2,118).
CRAWLER_USER_AGENTS = Tarball(
    "crawler-user-agents",
    "1.60.0",
    "sha512-p8hKVsnZl3msolBhGW8s86V0tmmcuBSwhTXkzkegGQzTt0A/ysKDHKzek9fichfqL5qBEgDrR9CuGBU0Y7bDrg==",
    ("package/crawler-user-agents.json",),
)
# Real browsers: 10,000 entries with `userAgent` and `weight` (share of real traffic).
USER_AGENTS = Tarball(
    "user-agents",
    "2.1.198",
    "sha512-cpFqEfpW1DW7MZYfJaknK5mNJZBgUwfroY0y1jSVy8Y93T4pmP0wp5HhXTOqZUbUbFppp0fwCyfttG9rsl3vqw==",
    ("package/dist/user-agents.json", "package/dist/user-agents.json.gz"),
)


class CorpusMissing(RuntimeError):
    """A corpus could not be fetched. The tests that need it fail: skipping them offline hid
    for a whole session that the bot sieve's and GeoIP's checks had not run."""


def cache_dir() -> Path:
    default = Path.home() / ".cache" / "zeef-test-corpora"
    return Path(os.environ.get("ZEEF_TEST_CORPORA", default))


def _missing(what: str, source: str, why: str, provide: str) -> CorpusMissing:
    return CorpusMissing(
        f"could not fetch {what} from {source}: {why}\n"
        f"The tests need it. Let them reach {source} once, or {provide}; the cache directory "
        f"is {cache_dir()} (set ZEEF_TEST_CORPORA to use another)."
    )


def _run(command: list[str], timeout: float) -> str | None:
    """None when the command succeeded, else why it did not (its first lines of output)."""
    try:
        subprocess.run(command, check=True, capture_output=True, timeout=timeout)
    except subprocess.CalledProcessError as exc:
        output = (exc.stderr or exc.stdout or b"").decode(errors="replace").strip()
        return f"exit {exc.returncode}: " + " / ".join(output.splitlines()[:3])
    except subprocess.TimeoutExpired:
        return f"no answer in {timeout:.0f} s"
    return None


def fetch(tarball: Tarball) -> Path:
    """The verified tarball in the cache directory, packed from the registry if not there yet."""
    directory = cache_dir()
    path = directory / tarball.filename
    if not path.exists():
        spec = f"{tarball.name}@{tarball.version}"
        provide = f"put {tarball.filename} (`npm pack {spec}`) in the cache directory"
        npm = shutil.which("npm")
        if npm is None:
            raise _missing(spec, "the npm registry", "npm is not installed", provide)
        directory.mkdir(parents=True, exist_ok=True)
        command = [npm, "pack", spec, "--pack-destination", str(directory), "--loglevel=error"]
        failed = _run(command, timeout=300)
        if failed:
            raise _missing(spec, "the npm registry", failed, provide)
    digest = base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()
    if f"sha512-{digest}" != tarball.integrity:
        path.unlink()
        raise RuntimeError(f"{tarball.filename}: sha512 differs from the pinned integrity")
    return path


def _read_json(tarball: Tarball) -> Any:
    with tarfile.open(fetch(tarball), "r:gz") as archive:
        names = set(archive.getnames())
        member = next((m for m in tarball.members if m in names), None)
        if member is None:
            raise RuntimeError(f"{tarball.filename} has none of {tarball.members}")
        handle = archive.extractfile(member)
        assert handle is not None
        data = handle.read()
    if member.endswith(".gz"):
        data = gzip.decompress(data)
    return json.loads(data)


@cache
def crawler_instances() -> tuple[str, ...]:
    """Every bot string of the crawler-user-agents list, in list order (duplicates kept)."""
    entries = _read_json(CRAWLER_USER_AGENTS)
    return tuple(ua for entry in entries for ua in entry.get("instances", []))


@cache
def real_world_sample() -> tuple[tuple[str, float], ...]:
    """(userAgent, weight) of the user-agents package's real-traffic sample."""
    return tuple((entry["userAgent"], float(entry["weight"])) for entry in _read_json(USER_AGENTS))


SHARED_GEOIP = Path(__file__).resolve().parents[2] / "shared" / "data" / "geoip"
# The maxminddb sdist carries MaxMind's test databases under tests/data/test-data/.
MAXMINDDB_SDIST = ("maxminddb", "3.2.0")
MAXMINDDB_SHA256 = "d28e0073fd1dd637c8b95947bc864b5625eca9f8f2db1538145e33b2a1cd4b92"


def _sdist(name: str, version: str, sha256: str, elsewhere: str = "") -> Path:
    """The verified sdist of a PyPI package in the cache directory, downloaded if not there."""
    downloads = cache_dir() / "sdists"
    sdist = downloads / f"{name.replace('-', '_')}-{version}.tar.gz"
    if not sdist.exists():
        downloads.mkdir(parents=True, exist_ok=True)
        # pip prepares the sdist's metadata, which can take ~35 s once; the result is cached.
        command = [sys.executable, "-m", "pip", "download", f"{name}=={version}", "--no-deps"]
        command += ["--no-binary", name, "--dest", str(downloads), "--quiet"]
        failed = _run(command, timeout=600)
        if failed:
            spec = f"the sdist of {name}=={version}"
            how = f"`pip download {name}=={version} --no-binary {name}`"
            provide = f"put {sdist.name} ({how}) in {downloads}{elsewhere}"
            raise _missing(spec, "PyPI", failed, provide)
    if hashlib.sha256(sdist.read_bytes()).hexdigest() != sha256:
        sdist.unlink()
        raise RuntimeError(f"{sdist.name}: sha256 differs from the pinned one")
    return sdist


@cache
def geoip_test_data() -> Path:
    """A directory holding GeoIP2-City-Test.mmdb and the other MaxMind test databases."""
    if (SHARED_GEOIP / "GeoIP2-City-Test.mmdb").exists():
        return SHARED_GEOIP
    name, version = MAXMINDDB_SDIST
    directory = cache_dir() / f"{name}-{version}-test-data"
    if (directory / "GeoIP2-City-Test.mmdb").exists():
        return directory
    elsewhere = f", or MaxMind's GeoIP2-City-Test.mmdb and its siblings in {SHARED_GEOIP}"
    sdist = _sdist(name, version, MAXMINDDB_SHA256, elsewhere)
    prefix = f"{name}-{version}/tests/data/test-data/"
    partial = directory.with_name(directory.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    with tarfile.open(sdist, "r:gz") as archive:
        for member in archive.getmembers():
            if member.isfile() and member.name.startswith(prefix) and member.name.endswith(".mmdb"):
                handle = archive.extractfile(member)
                assert handle is not None
                (partial / Path(member.name).name).write_bytes(handle.read())
    partial.replace(directory)
    return directory


# A held-out check of the sieve: Matomo's device-detector test fixtures (LGPL-3.0), as shipped
# in the sdist of its Python port. Nothing in bots.py comes from them: 1,348 bot strings and
# 34,505 strings that Matomo's own parser calls browsers, desktop to feature phone.
DEVICE_DETECTOR_SDIST = ("device-detector", "6.5.1")
DEVICE_DETECTOR_SHA256 = "610ed34b173b96ee91aa38165084695bbf76f6a5bd76bbb4fd777f7af1ff4170"


@cache
def device_detector_fixtures() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(bot User-Agents, browser User-Agents) of Matomo's device-detector fixtures.

    Reading the 17 MB of YAML takes ~12 s, so the two lists are cached as JSON after the first
    time (keyed by the sdist's hash).
    """
    name, version = DEVICE_DETECTOR_SDIST
    cached = cache_dir() / f"{name}-{version}-{DEVICE_DETECTOR_SHA256[:12]}-fixtures.json"
    if cached.exists():
        bots, browsers = json.loads(cached.read_text())
        return tuple(bots), tuple(browsers)
    import yaml  # only this reader needs it

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    sdist = _sdist(name, version, DEVICE_DETECTOR_SHA256)
    prefix = f"{name.replace('-', '_')}-{version}/device_detector/tests/fixtures/upstream/"
    bots: list[str] = []
    browsers: list[str] = []
    with tarfile.open(sdist, "r:gz") as archive:
        for member in sorted(archive.getmembers(), key=lambda m: m.name):
            if not (member.isfile() and member.name.startswith(prefix)):
                continue
            if not member.name.endswith(".yml"):
                continue
            handle = archive.extractfile(member)
            assert handle is not None
            entries = yaml.load(handle.read(), Loader=loader) or []
            if member.name.endswith("/bots.yml"):
                bots += [str(entry["user_agent"]) for entry in entries]
                continue
            for entry in entries:
                if (entry.get("client") or {}).get("type") == "browser":
                    browsers.append(str(entry["user_agent"]))
    if not bots or not browsers:
        raise RuntimeError(f"{sdist.name}: no fixtures under {prefix}")
    # Written aside and renamed, as the GeoIP data is: an interrupted run leaves no half file.
    partial = cached.with_name(cached.name + ".partial")
    partial.write_text(json.dumps([bots, browsers]))
    partial.replace(cached)
    return tuple(bots), tuple(browsers)
