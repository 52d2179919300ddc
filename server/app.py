"""create_app(settings): routes, middleware and lifespan. Boring on purpose."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from . import assets, openapi
from .accounts.apikeys import Keys, RateLimiter
from .accounts.sessions import Sessions
from .accounts.throttle import LoginThrottle
from .buffer import EventBuffer
from .collector import Clock, Collector
from .config import Settings, load_settings
from .consent import ConsentEndpoints
from .headers import SecurityHeaders
from .keys import load_keys
from .logs import AccessLogMiddleware, client_gone
from .mail.outbox import Outbox
from .mail.scheduler import MailScheduler
from .mail.smtp import Mailer, sender
from .privacy import Addresses, Salts
from .purge import PurgeJob
from .reports.rollups import RollupBuilder
from .sites import SiteRegistry
from .stats_api import StatsAPI, utc_now
from .stats_api_v2 import StatsAPIv2
from .storage import open_storage
from .web.admin import Admin
from .web.auth import Auth
from .web.consent_settings import ConsentSettings
from .web.dashboard import Dashboard
from .web.export import Export
from .web.login import Login
from .web.my_data import MyData
from .web.privacy_page import PrivacyPage
from .web.share import SharePages
from .web.share_admin import ShareAdmin
from .web.subject_admin import SubjectAdmin
from .web.templates import Pages
from .web.unsubscribe import Unsubscribe

# A write job running this long is waiting on a lock past busy_timeout (10 s) or on a disk
# that does not answer: say so, so a load balancer stops sending events here.
WRITER_STUCK = 15.0


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> Front:
    settings = settings or load_settings()
    storage = open_storage(settings.database)
    buffer = EventBuffer(
        storage,
        settings.flush_interval,
        settings.flush_size,
        settings.buffer_max_events,
        settings.buffer_max_bytes,
    )
    sites = SiteRegistry(storage)
    collector = Collector(
        settings,
        sites,
        Salts(storage.load_salts),
        buffer,
        Addresses(settings),
        clock=clock,
    )

    consent = ConsentEndpoints(storage, sites, clock)
    pages = Pages()
    sessions = Sessions(storage, settings.session_idle)
    throttle = LoginThrottle(storage)
    auth = Auth(sessions, pages, settings)
    login = Login(storage, sessions, throttle, auth, pages, settings)
    admin = Admin(storage, auth, pages, settings, clock or utc_now)
    dashboard, export = Dashboard(admin), Export(admin)
    share_pages = SharePages(storage, pages, dashboard, export, throttle, settings,
                             lambda: (clock or utc_now)().timestamp())  # fmt: skip
    keys = Keys(storage, RateLimiter(settings.api_rate_limit), auth.principal, share_pages.bearer)
    rollups = RollupBuilder(storage, settings.rollup_interval, clock or utc_now)
    purges = PurgeJob(storage, settings, lambda: (clock or utc_now)().timestamp())
    stats_api = StatsAPI(storage, keys.authorise, clock or utc_now)
    unsubscribe = Unsubscribe(storage, pages, settings)
    my_data = MyData(storage, pages, settings, consent, buffer)
    subject_admin = SubjectAdmin(storage, auth, pages, settings, clock or utc_now)
    subject_admin.buffer = buffer
    # Reports and alerts by e-mail: only with a mail server to send them through.
    mail: MailScheduler | None = None
    if settings.smtp_url:
        mailer = Mailer(settings.smtp_url, sender(settings.public_url, settings.mail_from))
        outbox = Outbox(storage, mailer, settings.public_url, clock or utc_now)
        mail = MailScheduler(storage, outbox, clock or utc_now)

    async def healthz(request: Request) -> JSONResponse:
        # Read from memory, never through the database: a check that takes the write lock
        # waits behind a slow flush (20 s seen) and rolled back writes already acknowledged.
        writer = storage.health()
        if not writer.alive:
            status = "writer stopped"
        elif writer.busy_for > WRITER_STUCK:
            status = f"writer stuck for {writer.busy_for:.0f} s"
        else:
            return JSONResponse({"status": "ok"})
        body = {"status": status, "writer_queue": writer.queued, "pending_events": buffer.pending}
        return JSONResponse(body, status_code=503)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            await storage.migrate()
        except BaseException:
            # The writer's connection is open by now: close it, or its thread outlives the
            # failed start (a database from a newer Zeef, a full disk, a locked file).
            await storage.close()
            raise
        # Read once: a key rotated with `zeef key rotate` takes effect at the next start.
        keys = await load_keys(storage, settings)
        app.state.secret_key = keys.secret
        sessions.secret = keys.secret
        share_pages.secret = keys.secret
        throttle.key = keys.secret.encode()
        unsubscribe.secret = keys.secret
        if mail is not None:
            mail.outbox.secret = keys.secret
        collector.addresses.visitor_key = keys.visitor
        my_data.visitor_key = keys.visitor
        subject_admin.visitor_key = keys.visitor
        await sites.load()
        sites.start()
        buffer.start()
        rollups.start()
        purges.start()
        if mail is not None:
            mail.start()
        # Everything loaded so far lives as long as the process: move it out of the collector's
        # sight, so the full collections that a busy ingest path triggers stay short.
        gc.freeze()
        # A young generation of 10,000 objects instead of 700: each collection walks what is
        # alive at that moment (64 requests in flight, the buffer's events), and doing that a
        # fourteenth as often saves 1.6 % of the instructions a request (bench/cost.py: 289.2k
        # -> 284.6k; 50,000 gained nothing more). Cycles still get collected, a little later.
        gc.set_threshold(10_000, 10, 10)
        try:
            yield
        finally:
            await sites.stop()
            await rollups.stop()
            await purges.stop()
            if mail is not None:
                await mail.stop()
            await buffer.stop()
            collector.addresses.close()
            await storage.close()

    app = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/tracker.js", assets.serve(assets.load("tracker.js"))),
            Route("/tracker-auto.js", assets.serve(assets.load("tracker-auto.js"))),
            *consent_routes(consent),
            *stats_api.routes(),
            *StatsAPIv2(storage, keys.authorise, clock or utc_now).routes(),
            Route("/api/openapi.json", openapi.serve),
            *login.routes(),
            *admin.routes(),
            *dashboard.routes(),
            *export.routes(),
            *share_pages.routes(),
            *ConsentSettings(storage, auth, pages, settings).routes(),
            *ShareAdmin(storage, auth, pages, settings).routes(),
            *subject_admin.routes(),
            *PrivacyPage(storage, pages, settings).routes(),
            *unsubscribe.routes(),
            *my_data.routes(),
            pages.static_route(),
        ],
        middleware=[Middleware(AccessLogMiddleware, settings=settings)],
        exception_handlers={ClientDisconnect: client_gone},
        lifespan=lifespan,
    )
    # Starlette answers `/healthz/` with a 307 to `/healthz` on whatever host the Host header
    # names: an open redirect. Zeef's paths are few and exact, so a stray slash is a 404.
    app.router.redirect_slashes = False
    app.state.settings = settings
    app.state.storage = storage
    app.state.buffer = buffer
    app.state.collector = collector
    # The mail scheduler (None without ZEEF_SMTP_URL): tests call its tick() with their clock.
    app.state.mail = mail
    # The retention job: tests call its run_once() rather than wait for the hour.
    app.state.purges = purges
    app.state.rollups = rollups
    return Front(app, collector)


def consent_routes(consent: ConsentEndpoints) -> list[Route]:
    routes = [
        Route("/consent/config", consent.config),
        Route("/api/consent", consent.record, methods=["POST", "OPTIONS"]),
    ]
    css = assets.load("consent.css", "text/css; charset=utf-8")
    routes.append(Route("/consent.js", assets.serve(assets.load("consent.js"))))
    routes.append(Route("/consent.css", assets.serve(css)))
    return routes


class Front:
    """The outermost ASGI app: events go straight to the collector, the rest to Starlette.

    The ingest path skips Starlette's middleware and router: 15 us of a ~60 us request.
    Everything else (lifespan included) goes through the Starlette app as usual, wrapped in
    the security headers outside Starlette's own error middleware, so its 500s get them too.
    """

    def __init__(self, app: Starlette, collector: Collector) -> None:
        self.app = app
        self.rest = SecurityHeaders(app, collector.settings.trusted_proxies)
        self.collector = collector
        self.state = app.state
        self.router = app.router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/api/event":
            await self.collector(scope, receive, send)
        else:
            await self.rest(scope, receive, send)
