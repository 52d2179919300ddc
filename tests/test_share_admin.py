"""Share links in the admin pages, over HTTP with rows checked: an admin makes, changes, renews
and revokes a link through the forms (each checked by opening its token), bad conditions are
a 400 that stores nothing, viewers and other customers are refused as elsewhere, values are
escaped, and every change lands in the audit log of the site's customer."""

from __future__ import annotations

import html
import re
from contextlib import aclosing
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from server.accounts import audit
from server.sharing import shares
from server.sharing.shares import Failure

from .conftest import Zeef
from .test_admin_http import logged_in
from .test_login import add_user

SITE = "acme.example"
PAGE = f"/sites/{SITE}/shares"
STRONG = "tulips along the long canal"


async def acme(zeef: Zeef, everyone: bool = True) -> None:
    """Acme owns SITE; Ann is its admin, Vic its viewer. Beta owns beta.example; Bea is its
    admin. Op is the operator's superuser. (Without `everyone`, Ann alone: each password
    takes a quarter of a second to hash.)"""
    storage = zeef.app.state.storage
    await add_user(zeef, "ann@acme.example")
    await add_user(zeef, "bea@beta.example", customer="Beta")
    if everyone:
        await add_user(zeef, "vic@acme.example", "viewer")
        await add_user(zeef, "op@zeef.example", "superuser")
    owners = {c["name"]: c["id"] for c in await storage.customers()}
    for domain, owner in ((SITE, "Acme"), ("beta.example", "Beta")):
        site = await storage.add_site(domain, "UTC", 0)
        await storage.set_site_customer(site.id, owners[owner])


def in_days(days: int) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).date().isoformat()


def form(token: str, **fields: Any) -> dict[str, Any]:
    """The make-a-link form as a browser sends it: every section ticked, CSV allowed."""
    sent: dict[str, Any] = {"csrf": token, "label": "", "expires": "", "password": "",
                            "section": list(shares.SECTIONS), "filter": "", "origins": "",
                            "csv": "on"}  # fmt: skip
    sent.update(fields)
    return {key: value for key, value in sent.items() if value is not None}


def share_rows(zeef: Zeef) -> list[dict[str, Any]]:
    return zeef.rows("SELECT * FROM shares ORDER BY id")


def token_of(page: str, share_id: int) -> str:
    """The token in the link a page shows for a share (its copy field's value)."""
    found = re.search(rf'id="share-url(?:-{share_id})?" class="code-input" value="([^"]+)"', page)
    assert found, page
    url = html.unescape(found.group(1))
    assert url.startswith("http://localhost:8000/share/")
    return url.rsplit("/", 1)[1]


async def opened(zeef: Zeef, token: str) -> Failure | None:
    storage, secret = zeef.app.state.storage, zeef.app.state.secret_key
    share, failure, _id = await shares.open_token(storage, secret, token)
    assert (share is None) == (failure is not None)
    return failure


async def test_an_admin_makes_changes_renews_and_revokes_a_link(zeef: Zeef) -> None:
    await acme(zeef)
    ann, token = await logged_in(zeef, "ann@acme.example")
    async with aclosing(ann):
        settings = await ann.get(f"/sites/{SITE}/settings")
        assert f'href="{PAGE}"' in settings.text
        empty = await ann.get(PAGE)
        assert empty.status_code == 200 and "No share links yet" in empty.text

        made = await ann.post(PAGE, data=form(
            token, label="Client report", expires=in_days(10), section=["pages", "overview"],
            filter="visit:country==NL", origins="https://client.example/\n\nhttp://b.example:8080",
            csv=None))  # fmt: skip
        assert made.status_code == 303, made.text
        assert made.headers["location"] == f"{PAGE}?done=share-created"
        [row] = share_rows(zeef)
        assert {k: row[k] for k in ("label", "sections", "filters", "embed_origins", "csv",
                                    "password_hash", "created_by", "revoked_at")} == {
            "label": "Client report", "sections": '["overview", "pages"]',
            "filters": "visit:country==NL",
            "embed_origins": '["https://client.example", "http://b.example:8080"]', "csv": 0,
            "password_hash": None, "created_by": "ann@acme.example", "revoked_at": None,
        }  # fmt: skip
        # The end of the chosen day, UTC.
        last = datetime.fromisoformat(in_days(10)).replace(tzinfo=UTC) + timedelta(days=1)
        assert row["expires_at"] == int(last.timestamp())

        listing = await ann.get(made.headers["location"])
        assert "The share link was made" in listing.text
        first = token_of(listing.text, row["id"])
        assert await opened(zeef, first) is None
        for shown in ("Client report", "visit:country==NL", "https://client.example",
                      "http://b.example:8080", in_days(10), "Overview, Pages",
                      "<dt>CSV downloads</dt>\n      <dd>No</dd>"):  # fmt: skip
            assert shown in listing.text, shown

        page = await ann.get(f"{PAGE}/{row['id']}")
        assert page.status_code == 200 and token_of(page.text, row["id"]) == first
        assert f'value="{in_days(10)}"' in page.text and 'id="password-keep"' in page.text

        # Unchanged, the day stays as it was; a password replaces the embedding.
        changed = await ann.post(f"{PAGE}/{row['id']}", data=form(
            token, label="Client report (Q3)", expires=in_days(10), password_action="set",
            password=STRONG, section=["pages", "overview", "sources"],
            filter="visit:country==NL", origins=""))  # fmt: skip
        assert changed.headers["location"] == f"{PAGE}/{row['id']}?done=share-saved"
        [after] = share_rows(zeef)
        assert after["password_hash"].startswith("$argon2id$") and STRONG not in str(after)
        assert after["embed_origins"] == "[]" and after["csv"] == 1
        assert after["expires_at"] == row["expires_at"] and after["nonce"] == row["nonce"]
        assert after["sections"] == '["overview", "pages", "sources"]'
        saved = await ann.get(changed.headers["location"])
        assert "conditions were saved" in saved.text and 'id="password-remove"' in saved.text

        removed = await ann.post(f"{PAGE}/{row['id']}", data=form(
            token, label="Client report (Q3)", expires="", password_action="remove",
            section=["pages", "overview", "sources"], filter="visit:country==NL"))  # fmt: skip
        assert removed.status_code == 303
        assert share_rows(zeef)[0]["password_hash"] is None
        assert share_rows(zeef)[0]["expires_at"] is None

        rotated = await ann.post(f"{PAGE}/{row['id']}/rotate", data={"csrf": token})
        assert rotated.headers["location"] == f"{PAGE}/{row['id']}?done=share-rotated"
        second = token_of((await ann.get(rotated.headers["location"])).text, row["id"])
        assert second != first
        assert await opened(zeef, first) is Failure.TAMPERED
        assert await opened(zeef, second) is None

        unconfirmed = await ann.post(f"{PAGE}/{row['id']}/revoke", data={"csrf": token})
        assert unconfirmed.status_code == 400 and "Tick the box" in unconfirmed.text
        assert share_rows(zeef)[0]["revoked_at"] is None
        revoked = await ann.post(f"{PAGE}/{row['id']}/revoke",
                                 data={"csrf": token, "confirm": "on"})  # fmt: skip
        assert revoked.headers["location"] == f"{PAGE}?done=share-revoked"
        assert await opened(zeef, second) is Failure.REVOKED
        gone = await ann.get(revoked.headers["location"])
        assert "Revoked" in gone.text and second not in gone.text
        dead = await ann.get(f"{PAGE}/{row['id']}")
        assert dead.status_code == 200 and 'name="label"' not in dead.text
        before = share_rows(zeef)
        for path in ("", "/rotate", "/revoke"):
            again = await ann.post(f"{PAGE}/{row['id']}{path}",
                                   data=form(token, label="again", confirm="on"))  # fmt: skip
            assert again.status_code == 409, path
        assert share_rows(zeef) == before

    entries = zeef.rows("SELECT actor, action, object, customer_id, address FROM audit_log "
                        "WHERE action LIKE 'share.%' ORDER BY id")  # fmt: skip
    [acme_id] = [c["id"] for c in zeef.rows("SELECT id FROM customers WHERE name = 'Acme'")]
    assert [(e["actor"], e["action"], e["customer_id"]) for e in entries] == [
        ("ann@acme.example", action, acme_id)
        for action in ("share.create", "share.change", "share.change", "share.change",
                       "share.revoke")
    ]  # fmt: skip
    assert entries[1]["object"].endswith("embed_origins, label, password, sections")
    assert entries[3]["object"].endswith(": rotate")
    assert all(e["address"] == "81.2.0.0" for e in entries)  # truncated, as every address


BAD = {
    "past day": ({"expires": "2020-01-31"}, "Choose a day that is not over yet"),
    "not a day": ({"expires": "soon"}, "Choose a day that is not over yet"),
    "no section": ({"section": []}, "Tick at least one section."),
    "unknown section": ({"section": ["secrets"]}, "Tick at least one section."),
    "bad filter": ({"filter": "visit:planet==Mars"}, "This filter cannot be used"),
    "goal filter": ({"filter": "event:goal==Signup"}, "cannot be locked to a goal"),
    "origin with a path": ({"origins": "https://ok.example\nhttps://client.example/page"},
                           "Line 2: write an origin"),
    "wildcard origin": ({"origins": "https://*.client.example"}, "Line 1: write an origin"),
    "password and embedding": ({"password": STRONG, "origins": "https://client.example"},
                               "A link with a password cannot be embedded"),
    "weak password": ({"password": "password123"}, "at least 15 characters"),
    "long label": ({"label": "x" * 201}, "Keep the label under 200 characters."),
}  # fmt: skip


@pytest.mark.parametrize("fields,message", list(BAD.values()), ids=list(BAD))
async def test_bad_conditions_are_a_400_with_the_form_and_nothing_stored(
    zeef: Zeef, fields: dict[str, Any], message: str
) -> None:
    await acme(zeef, everyone=False)
    ann, token = await logged_in(zeef, "ann@acme.example")
    async with aclosing(ann):
        sent = form(token, **{"label": "Kept <as typed>", **fields})
        refused = await ann.post(PAGE, data=sent)
        assert refused.status_code == 400
        assert message in html.unescape(refused.text), refused.text
        assert "The link was not made" in refused.text and 'class="field-error"' in refused.text
        assert share_rows(zeef) == []
        # The form comes back as typed, but never the password.
        if "label" not in fields:
            assert 'value="Kept &lt;as typed&gt;"' in refused.text
        assert STRONG not in refused.text and "password123" not in refused.text

        made = await ann.post(PAGE, data=form(token, label="fine"))
        [row] = share_rows(zeef)
        changed = await ann.post(f"{PAGE}/{row['id']}", data=form(token, **fields))
        assert changed.status_code == 400 and message in html.unescape(changed.text)
        assert "Nothing was saved" in changed.text
        assert share_rows(zeef) == [row], made
    assert [r["action"] for r in zeef.rows("SELECT action FROM audit_log")].count(
        "share.change") == 0  # fmt: skip


async def test_viewers_are_refused_and_other_customers_links_do_not_exist(zeef: Zeef) -> None:
    await acme(zeef)
    storage = zeef.app.state.storage
    beta = await shares.create(storage, audit.CLI, "beta.example", label="Beta's")
    ours = await shares.create(storage, audit.CLI, SITE, label="Acme's")
    vic, token = await logged_in(zeef, "vic@acme.example")
    async with aclosing(vic):
        for path in (PAGE, f"{PAGE}/{ours.id}"):
            assert (await vic.get(path)).status_code == 403
        for path in (PAGE, f"{PAGE}/{ours.id}", f"{PAGE}/{ours.id}/rotate",
                     f"{PAGE}/{ours.id}/revoke"):  # fmt: skip
            refused = await vic.post(path, data=form(token, confirm="on"))
            assert refused.status_code == 403, path
    ann, token = await logged_in(zeef, "ann@acme.example")
    async with aclosing(ann):
        missing = await ann.get("/sites/nowhere.example/shares")
        assert missing.status_code == 404
        for path in ("/sites/beta.example/shares", f"/sites/beta.example/shares/{beta.id}"):
            other = await ann.get(path)
            assert (other.status_code, other.content) == (404, missing.content), path
        # Beta's link under Acme's site is no more there than a link that never was.
        never = await ann.get(f"{PAGE}/99999")
        crossed = await ann.get(f"{PAGE}/{beta.id}")
        assert (crossed.status_code, crossed.content) == (404, never.content)
        for path in (f"/sites/beta.example/shares/{beta.id}/revoke", f"{PAGE}/{beta.id}/revoke",
                     f"{PAGE}/{beta.id}/rotate", "/sites/beta.example/shares"):  # fmt: skip
            assert (await ann.post(path, data=form(token, confirm="on"))).status_code == 404
        listing = await ann.get(PAGE)
        assert "Acme&#39;s" in listing.text and "Beta&#39;s" not in listing.text
    assert [r["revoked_at"] for r in share_rows(zeef)] == [None, None]
    assert len(share_rows(zeef)) == 2

    op, token = await logged_in(zeef, "op@zeef.example")
    async with aclosing(op):
        assert (await op.get("/sites/beta.example/shares")).status_code == 200
        made = await op.post("/sites/beta.example/shares", data=form(token, label="by op"))
        assert made.status_code == 303
        revoked = await op.post(f"/sites/beta.example/shares/{beta.id}/revoke",
                                data={"csrf": token, "confirm": "on"})  # fmt: skip
        assert revoked.status_code == 303
    assert [r["created_by"] for r in share_rows(zeef)] == ["cli", "cli", "op@zeef.example"]


HOSTILE = '<script>alert(1)</script>"'


async def test_every_value_is_escaped(zeef: Zeef) -> None:
    await acme(zeef)
    ann, token = await logged_in(zeef, "ann@acme.example")
    async with aclosing(ann):
        made = await ann.post(PAGE, data=form(
            token, label=HOSTILE, filter='event:page==/"><script>x</script>'))  # fmt: skip
        assert made.status_code == 303
        [row] = share_rows(zeef)
        for path in (PAGE, f"{PAGE}/{row['id']}"):
            page = await ann.get(path)
            assert "<script>" not in page.text, path
            assert "&lt;script&gt;alert(1)&lt;/script&gt;&#34;" in page.text, path
        bad = await ann.post(PAGE, data=form(token, label=HOSTILE, filter=HOSTILE))
        assert bad.status_code == 400 and "<script>" not in bad.text


async def test_share_rows_are_in_their_customers_audit_log(zeef: Zeef) -> None:
    await acme(zeef)
    storage = zeef.app.state.storage
    ann, token = await logged_in(zeef, "ann@acme.example")
    async with aclosing(ann):
        await ann.post(PAGE, data=form(token, label="for the board"))
        [row] = share_rows(zeef)
        await ann.post(f"{PAGE}/{row['id']}/rotate", data={"csrf": token})
        # What the share pages (server/web/share.py) write on each view.
        await shares.accessed(storage, row["id"], SITE, "ok", "81.2.69.0")
        await shares.accessed(storage, row["id"], SITE, "wrong password", "81.2.69.0")
        own = (await ann.get("/audit-log")).text
        for action in ("share.create", "share.change", "share.access.ok",
                       "share.access.wrong password"):  # fmt: skip
            assert action in own, action
        assert f"share {row['id']} of {SITE}" in own
    bea, _token = await logged_in(zeef, "bea@beta.example")
    async with aclosing(bea):
        theirs = (await bea.get("/audit-log")).text
        assert "share." not in theirs and SITE not in theirs
    op, _token = await logged_in(zeef, "op@zeef.example")
    async with aclosing(op):
        everything = (await op.get("/audit-log")).text
        assert re.search(r"share\.access\.ok</td>\s*<td>share \d+</td>\s*<td>Acme</td>",
                         everything), everything  # fmt: skip


async def test_an_expired_link_is_marked_and_can_be_given_a_new_last_day(zeef: Zeef) -> None:
    await acme(zeef, everyone=False)
    storage = zeef.app.state.storage
    ended = int((datetime.now(UTC) - timedelta(days=3)).timestamp())
    share = await shares.create(storage, audit.CLI, SITE, label="March", expires_at=ended)
    ann, token = await logged_in(zeef, "ann@acme.example")
    async with aclosing(ann):
        assert "Expired" in (await ann.get(PAGE)).text
        page = await ann.get(f"{PAGE}/{share.id}")
        day = datetime.fromtimestamp(ended, UTC).date().isoformat()
        # No min under it, or the browser would not send the form as it stands.
        assert f'name="expires" value="{day}" aria-describedby' in page.text
        relabelled = await ann.post(f"{PAGE}/{share.id}", data=form(token, label="April",
                                                                   expires=day))  # fmt: skip
        assert relabelled.status_code == 303
        assert share_rows(zeef)[0]["expires_at"] == ended  # unchanged, not the day's end
        token_now = token_of((await ann.get(f"{PAGE}/{share.id}")).text, share.id)
        assert await opened(zeef, token_now) is Failure.EXPIRED
        extended = await ann.post(f"{PAGE}/{share.id}", data=form(token, label="April",
                                                                 expires=in_days(30)))  # fmt: skip
        assert extended.status_code == 303
        assert await opened(zeef, token_now) is None
