"""Packaging: the wheel `python -m build` makes, installed into a fresh venv, is a whole Zeef.

The banner's texts once lived only beside the package (consent/i18n), so an installed wheel
served a banner with no words. These tests build the sdist and the wheel from it (as
`python -m build` does by default), install the wheel into a new venv and ask the installed
server, run from a directory outside the repository, for the banner in each language.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
import venv
from pathlib import Path

import httpx

from server.consent import LANGUAGES

from .live import ROOT, _free_port

SOURCES = ROOT / "consent" / "i18n"
PACKAGED = ROOT / "server" / "static" / "i18n"


def test_packaged_texts_are_the_sources() -> None:
    for lang in LANGUAGES:
        source, packaged = SOURCES / f"{lang}.json", PACKAGED / f"{lang}.json"
        assert packaged.read_bytes() == source.read_bytes(), (
            f"{packaged.relative_to(ROOT)} differs from {source.relative_to(ROOT)}: npm run build"
        )


def test_an_installed_wheel_serves_the_banner_in_every_language(tmp_path: Path) -> None:
    # A copy of what the build reads: an in-tree build reuses ./build/lib, where a file left
    # by an earlier build would hide a missing package-data pattern.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    caches = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "server", source / "server", ignore=caches)
    shutil.copytree(ROOT / "dashboard", source / "dashboard", ignore=caches)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("ZEEF_")}
    dist = tmp_path / "dist"
    # No isolation: the setuptools and build of the test extras, so no download.
    build = [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(source)]
    subprocess.run(build, check=True, capture_output=True, env=env, timeout=120)
    [wheel] = dist.glob("zeef-*.whl")

    # System site-packages give the dependencies without a download; the wheel is the only
    # thing installed, and the venv's site-packages come before the system's on the path.
    environment = tmp_path / "venv"
    venv.create(environment, system_site_packages=True, with_pip=True)
    python, zeef = environment / "bin" / "python", environment / "bin" / "zeef"
    install = [str(python), "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)]
    subprocess.run(install, check=True, capture_output=True, env=env, timeout=120)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env["ZEEF_DATABASE"] = str(elsewhere / "zeef.sqlite3")
    where = [str(python), "-c", "import server; print(server.__file__)"]
    found = subprocess.run(where, capture_output=True, text=True, env=env, cwd=elsewhere)
    assert Path(found.stdout.strip()).is_relative_to(environment), found

    # The pages render from the templates, catalogues and styles the wheel carries.
    render = [str(python), "-c", RENDER_LOGIN]
    rendered = subprocess.run(render, capture_output=True, text=True, env=env, cwd=elsewhere)
    assert rendered.returncode == 0, rendered.stderr
    page = json.loads(rendered.stdout)
    assert Path(page["dashboard"]).is_relative_to(environment), page["dashboard"]
    assert '<html lang="nl">' in page["html"] and "Inloggen bij Zeef" in page["html"]
    assert page["css"] == (ROOT / "dashboard" / "static" / "zeef.css").read_text(encoding="utf-8")
    assert f'href="{page["css_url"]}"' in page["html"]
    # The world map's sprite ships as a static file, and the dashboard reads its countries.
    assert page["map_sprite"] and page["map_countries"] >= 170

    subprocess.run([str(zeef), "site", "add", "example.com"], check=True, env=env, cwd=elsewhere)
    port = _free_port("127.0.0.1")
    serve = [str(zeef), "serve", "--host", "127.0.0.1", "--port", str(port)]
    log = elsewhere / "zeef.log"
    with log.open("wb") as output:
        server = subprocess.Popen(serve, env=env, cwd=elsewhere, stdout=output, stderr=output)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", trust_env=False) as http:
            _wait_until_healthy(http, server, log)
            for lang in LANGUAGES:
                params = {"site": "example.com", "lang": lang}
                config = http.get("/consent/config", params=params).json()
                expected = json.loads((SOURCES / f"{lang}.json").read_text(encoding="utf-8"))
                assert config["language"] == lang
                assert config["texts"] == expected, lang
            for asset in ("consent.js", "consent.css", "tracker.js"):
                packaged = (ROOT / "server" / "static" / asset).read_bytes()
                assert http.get(f"/{asset}").content == packaged
    finally:
        server.terminate()
        server.wait(timeout=15)


RENDER_LOGIN = """
import json
from starlette.requests import Request
from server.web import templates
pages = templates.Pages()
scope = {"type": "http", "method": "GET", "path": "/login",
         "headers": [(b"accept-language", b"nl")]}
context = {"error": None, "email": "", "csrf_token": "t", "next": ""}
response = pages.render(Request(scope), "login.html", context)
print(json.dumps({
    "dashboard": str(templates.dashboard_dir()),
    "html": response.body.decode(),
    "css": pages.static.files["zeef.css"].body.decode(),
    "css_url": pages.static.url("zeef.css"),
    "map_countries": len(__import__("server.web.worldmap").web.worldmap.outlines()[1]),
    "map_sprite": "world.svg" in pages.static.files,
}))
"""


def test_every_package_folder_is_in_the_wheel_list() -> None:
    # pyproject.toml lists the packages (dashboard/ is shipped as server/web/dashboard, which
    # setuptools' find cannot map): a new folder must be added there, or the wheel lacks it.
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    folders = set()
    for top, package in ((ROOT / "server", "server"), (ROOT / "dashboard", "server.web.dashboard")):
        for folder in [top, *top.rglob("*")]:
            if folder.is_dir() and folder.name != "__pycache__":
                parts = folder.relative_to(top).parts
                folders.add(".".join((package, *parts)))
    assert folders == listed, f"add to or remove from pyproject.toml: {folders ^ listed}"


def _wait_until_healthy(http: httpx.Client, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while True:
        assert server.poll() is None, log.read_text()
        try:
            if http.get("/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
