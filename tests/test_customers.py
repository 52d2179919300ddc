"""Customers and the sites they own, through `zeef` as operators run it (the accounts issue's
CLI contracts: customer add/list, site add --customer, site set --customer)."""

from __future__ import annotations

import json
from pathlib import Path

from .test_cli import zeef


def test_customers_own_sites(tmp_path: Path) -> None:
    # Before any customer exists, a site needs none (installs from before customers).
    assert zeef(tmp_path, "site", "add", "old.example").returncode == 0
    added = zeef(tmp_path, "customer", "add", "  Acme Telecom ")
    assert (added.returncode, added.stdout) == (0, "added customer Acme Telecom\n")
    taken = zeef(tmp_path, "customer", "add", "ACME telecom")
    assert taken.returncode == 1 and "exists already" in taken.stderr
    assert zeef(tmp_path, "customer", "add", "Beta SaaS").returncode == 0
    assert zeef(tmp_path, "customer", "add", "  ").returncode == 2

    # Once there are customers, a new site must say whose it is.
    orphan = zeef(tmp_path, "site", "add", "new.example")
    assert orphan.returncode == 2 and "--customer NAME" in orphan.stderr
    unknown = zeef(tmp_path, "site", "add", "new.example", "--customer", "Gamma")
    assert unknown.returncode == 1 and "no customer 'Gamma'" in unknown.stderr
    owned = zeef(tmp_path, "site", "add", "new.example", "--customer", "acme telecom")
    assert owned.returncode == 0, owned.stderr
    assert "customer Acme Telecom" in owned.stdout

    # A site from before customers is moved to one; --dnt still works alone.
    moved = zeef(tmp_path, "site", "set", "old.example", "--customer", "Beta SaaS")
    assert moved.returncode == 0 and "now belongs to customer Beta SaaS" in moved.stdout
    assert zeef(tmp_path, "site", "set", "old.example", "--dnt", "ignore").returncode == 0
    assert zeef(tmp_path, "site", "set", "old.example").returncode == 2

    listing = json.loads(zeef(tmp_path, "site", "list", "--json").stdout)
    assert [(s["domain"], s["customer"], s["honour_dnt"]) for s in listing] == [
        ("new.example", "Acme Telecom", True),
        ("old.example", "Beta SaaS", False),
    ]
    customers = json.loads(zeef(tmp_path, "customer", "list", "--json").stdout)
    assert [(c["name"], c["sites"]) for c in customers] == [("Acme Telecom", 1), ("Beta SaaS", 1)]
    assert all(c["created_at"].endswith("+00:00") for c in customers)
    plain = zeef(tmp_path, "customer", "list").stdout
    assert plain == "Acme Telecom\t1 site\nBeta SaaS\t1 site\n"
