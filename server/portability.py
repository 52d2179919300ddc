"""The site export format (docs/export-format.md): a site's rows as JSON Lines in a ZIP with a
manifest of row counts and SHA-256 checksums; reading one back into a staging file, checked
line by line, for storage to copy in as a new site in one transaction."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import operator
import os
import sqlite3
import sys
import time
import zipfile
import zlib
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .storage.sqlite_portability import COLUMNS, create_stage, stage_insert

if TYPE_CHECKING:
    from .events import Site
    from .storage import Storage
    from .storage.sqlite_portability import SiteSnapshot

FORMAT = "zeef-site-export"
# Raised when a member or a column is added, removed or changes meaning; an importer refuses
# a version above its own.
SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
MEMBERS = {table: f"{table}.jsonl" for table in COLUMNS}
# Members whose `value` column may hold a BLOB (rollups store a missing value as b"").
BLOB_VALUES = {"rollups", "rollup_returns"}
# Lines written to the ZIP, and rows inserted into the staging file, at a time.
CHUNK = 2_000
# Deflate level: 1 compressed 57 MB of lines (110,000 rows) in 0.2 s, the default 6 in 0.5 s,
# for a file 44% larger (3.4 MB, not 2.4): an export is made once and moved, not kept.
COMPRESSLEVEL = 1


class ExportRefused(ValueError):
    """A file that will not be imported, and why: not a ZIP, truncated, tampered with, of
    another format or of a newer schema."""


class Progress:
    """A progress bar on a stream (stderr), redrawn at most ten times a second; silent when
    not enabled (the CLI enables it on a terminal, or with --progress)."""

    def __init__(self, label: str, stream: IO[str] | None = None, enabled: bool = True) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.total = 0
        self.done = 0
        self._began = time.monotonic()
        self._drawn = 0.0
        self._width = 0

    def start(self, total: int) -> None:
        self.total, self.done, self._began = total, 0, time.monotonic()
        self._draw(force=True)

    def advance(self, rows: int) -> None:
        self.done += rows
        self._draw()

    def finish(self) -> None:
        self._draw(force=True)
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self._drawn < 0.1):
            return
        self._drawn = now
        share = self.done / self.total if self.total else 1.0
        filled = int(share * 30)
        rate = self.done / max(now - self._began, 1e-6)
        line = (
            f"{self.label} [{'#' * filled}{'.' * (30 - filled)}] {share:4.0%} "
            f"{self.done:,}/{self.total:,} rows, {rate:,.0f} rows/s"
        )
        # Padded to the longest line drawn: a shorter one (a slower rate) leaves no tail.
        self._width = max(self._width, len(line))
        self.stream.write(f"\r{line.ljust(self._width)}")
        self.stream.flush()


def _blob(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"$b64": base64.b64encode(value).decode("ascii")}
    raise TypeError(f"cannot write {type(value).__name__}")


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_blob)
_DECODER = json.JSONDecoder()


def zeef_version() -> str:
    try:
        return metadata.version("zeef")
    except metadata.PackageNotFoundError:
        return "unknown"


async def export_site(
    storage: Storage, site: Site, out: Path, progress: Progress | None = None
) -> dict[str, Any]:
    """Write every row of `site` to `out` (written beside it as OUT.partial, renamed when
    whole: a failed export leaves no file); the manifest written."""
    progress = progress or Progress("export", enabled=False)
    partial = out.with_name(out.name + ".partial")
    files: dict[str, dict[str, Any]] = {}
    try:
        with zipfile.ZipFile(
            partial, "w", zipfile.ZIP_DEFLATED, compresslevel=COMPRESSLEVEL
        ) as archive:
            async with storage.site_snapshot(site.id) as snapshot:
                progress.start(sum([await snapshot.count(table) for table in COLUMNS]))
                for table, columns in COLUMNS.items():
                    digest, rows, lines = hashlib.sha256(), 0, []
                    with archive.open(MEMBERS[table], "w", force_zip64=True) as member:
                        async for line in _lines(snapshot, table, columns):
                            lines.append(line)
                            if len(lines) >= CHUNK:
                                rows += _write(member, digest, lines)
                                progress.advance(len(lines))
                                lines = []
                        rows += _write(member, digest, lines)
                        progress.advance(len(lines))
                    files[MEMBERS[table]] = {"rows": rows, "sha256": digest.hexdigest()}
            manifest = {
                "format": FORMAT,
                "schema_version": SCHEMA_VERSION,
                "zeef_version": zeef_version(),
                "site": site.domain,
                "created_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
                "files": files,
            }
            # Last, as it holds the checksums; the importer reads it first.
            archive.writestr(MANIFEST, json.dumps(manifest, indent=2) + "\n")
        os.replace(partial, out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        progress.finish()
    return manifest


async def _lines(snapshot: SiteSnapshot, table: str, columns: Sequence[str]) -> AsyncIterator[str]:
    if table not in BLOB_VALUES:
        async for line in snapshot.lines(table):
            yield line
        return
    async for row in snapshot.rows(table):
        yield _ENCODER.encode(dict(zip(columns, row, strict=True)))


def _write(member: IO[bytes], digest: Any, lines: list[str]) -> int:
    if lines:
        chunk = ("\n".join(lines) + "\n").encode()
        digest.update(chunk)
        member.write(chunk)
    return len(lines)


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest of an export, checked: format, schema version, every member present."""
    try:
        with zipfile.ZipFile(path) as archive:
            return _manifest(archive)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise ExportRefused(f"{path}: not a whole ZIP file ({exc})") from None


def _manifest(archive: zipfile.ZipFile) -> dict[str, Any]:
    try:
        manifest = json.loads(archive.read(MANIFEST))
    except KeyError:
        raise ExportRefused(f"no {MANIFEST} in it: not a Zeef site export") from None
    except (ValueError, UnicodeDecodeError):
        raise ExportRefused(f"{MANIFEST} is not JSON") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ExportRefused(f"not a Zeef site export (format is not {FORMAT!r})")
    version = manifest.get("schema_version")
    if not isinstance(version, int) or version < 1:
        raise ExportRefused(f"schema_version {version!r} is not a version")
    if version > SCHEMA_VERSION:
        raise ExportRefused(
            f"schema version {version} is newer than this Zeef reads ({SCHEMA_VERSION}): "
            "upgrade Zeef here first"
        )
    files = manifest.get("files")
    if not isinstance(files, dict) or set(files) != set(MEMBERS.values()):
        raise ExportRefused(f"the manifest lists other members than {sorted(MEMBERS.values())}")
    for name, entry in files.items():
        if not (isinstance(entry, dict) and isinstance(entry.get("rows"), int)
                and isinstance(entry.get("sha256"), str)):  # fmt: skip
            raise ExportRefused(f"the manifest's entry for {name} has no rows and sha256")
    if files[MEMBERS["site"]]["rows"] != 1:
        raise ExportRefused("site.jsonl must hold exactly one row, the site's")
    if not isinstance(manifest.get("site"), str):
        raise ExportRefused("the manifest names no site")
    names = set(archive.namelist())
    missing = sorted(set(MEMBERS.values()) - names)
    if missing:
        raise ExportRefused(f"members missing: {', '.join(missing)}")
    return manifest


def stage(path: Path, staging: Path, progress: Progress | None = None) -> dict[str, Any]:
    """Read an export into a fresh SQLite file `staging`, a line at a time, checking each
    member's row count and SHA-256 against the manifest; the manifest. ExportRefused on any
    fault: the target database has not been touched yet."""
    progress = progress or Progress("import", enabled=False)
    try:
        with zipfile.ZipFile(path) as archive:
            manifest = _manifest(archive)
            progress.start(sum(entry["rows"] for entry in manifest["files"].values()))
            conn = sqlite3.connect(staging, isolation_level=None)
            try:
                # Scratch data, deleted after the import: no journal, no fsync.
                conn.execute("PRAGMA journal_mode = OFF")
                conn.execute("PRAGMA synchronous = OFF")
                conn.execute("BEGIN")
                create_stage(conn)
                for table in COLUMNS:
                    _stage_member(conn, archive, table, manifest["files"][MEMBERS[table]],
                                  progress)  # fmt: skip
                conn.execute("COMMIT")
            finally:
                conn.close()
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise ExportRefused(f"{path}: not a whole ZIP file ({exc})") from None
    finally:
        progress.finish()
    return manifest


def _stage_member(
    conn: sqlite3.Connection,
    archive: zipfile.ZipFile,
    table: str,
    expected: dict[str, Any],
    progress: Progress,
) -> None:
    name, columns = MEMBERS[table], COLUMNS[table]
    insert, blobs = stage_insert(table), table in BLOB_VALUES
    pick = operator.itemgetter(*columns)
    digest, rows, batch = hashlib.sha256(), 0, []
    # A C reader's readline over the member: ZipExtFile's own is Python, a call a line.
    with archive.open(name) as member, io.BufferedReader(member, 1 << 16) as lines:  # type: ignore[type-var]
        for line in lines:
            digest.update(line)
            rows += 1
            batch.append(_values(name, rows, line, columns, pick, blobs))
            if len(batch) >= CHUNK:
                _insert(conn, insert, batch, name)
                progress.advance(len(batch))
                batch = []
        _insert(conn, insert, batch, name)
        progress.advance(len(batch))
    if rows != expected["rows"]:
        raise ExportRefused(f"{name} has {rows} rows, the manifest says {expected['rows']}")
    if digest.hexdigest() != expected["sha256"]:
        raise ExportRefused(f"{name} does not match its SHA-256 in the manifest: altered")


def _values(
    name: str,
    number: int,
    line: bytes,
    columns: Sequence[str],
    pick: Callable[[dict[str, Any]], Any],
    blobs: bool,
) -> tuple[Any, ...]:
    try:
        row = _DECODER.decode(line.decode())
        if type(row) is not dict or len(row) != len(columns):
            raise KeyError
        values = pick(row)
        if len(columns) == 1:
            values = (values,)
        if blobs:
            values = tuple([_unblob(value) for value in values])
    except (ValueError, KeyError, TypeError):
        raise ExportRefused(
            f"{name} line {number}: not a JSON object with the columns {', '.join(columns)}"
        ) from None
    return values  # type: ignore[no-any-return]


def _unblob(value: Any) -> Any:
    if isinstance(value, dict) and list(value) == ["$b64"]:
        return base64.b64decode(value["$b64"], validate=True)
    return value


def _insert(conn: sqlite3.Connection, insert: str, batch: list[tuple[Any, ...]], name: str) -> None:
    try:
        conn.executemany(insert, batch)
    except (sqlite3.ProgrammingError, sqlite3.InterfaceError, OverflowError) as exc:
        # A list or object where a column holds a number or a text.
        raise ExportRefused(f"{name}: a value of a type no column holds ({exc})") from None
