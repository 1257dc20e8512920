"""Who may do what: the login, the API token, and cross-site protection of every form.

Without ``web.auth`` (allowed on a loopback address only) every page and the API are open, as
before. With it:

- ``/healthz`` and ``/webhooks/shopify`` stay open (webhooks carry their own HMAC);
- ``/api/*`` and ``/export.csv`` want ``Authorization: Bearer <api_token>`` or a signed-in
  session; ``/metrics`` wants the token;
- every other page wants a signed-in session, and sends a browser to ``/login`` first.

Either way a request that changes state (any method but GET, HEAD, OPTIONS) made without the
token must come from this site (``Origin``, else ``Referer``, equal to this server or
``web.public_url``; ``Sec-Fetch-Site`` not cross-site) and, except the login itself, carry the
session's CSRF token in its ``csrf_token`` form field. Without ``web.auth`` browsers get an
anonymous session just for that token.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler
from yarl import URL

from tracker.config import Config
from tracker.config_web import WebAuthConfig, is_loopback
from tracker.shopify.subscriptions import WEBHOOK_PATH
from tracker.web.auth import Session, SessionSigner, hash_password, same_text, verify_password

if TYPE_CHECKING:
    from tracker.web.app import Pages

log = logging.getLogger(__name__)

SESSION_COOKIE = "tracker_session"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
OPEN_PATHS = frozenset({"/healthz", "/login"})
UNGUARDED_PATHS = frozenset({WEBHOOK_PATH})  # signed by Shopify (HMAC), posted by its servers
TOKEN_PATHS = frozenset({"/export.csv", "/metrics"})
TOKEN_ONLY_PATHS = frozenset({"/metrics"})
ANONYMOUS_LIFETIME = timedelta(days=30)
MAX_FIELD_LENGTH = 1000
_SAFE_NEXT = re.compile(r"/(?![/\\])[\x21-\x7e]{0,2000}")
# The session of the request being handled (each request runs in its own task and context).
_SESSION: ContextVar[Session | None] = ContextVar("tracker_web_session", default=None)


def current_session() -> Session | None:
    """The session the access middleware found (or made) for the request being handled."""
    return _SESSION.get()


@dataclass
class Access:
    """The access rules of one app: the configured login, or none."""

    signer: SessionSigner
    auth: WebAuthConfig | None
    password_hash: str | None
    trusted_origins: frozenset[str]
    pages: Pages

    @classmethod
    def from_config(cls, config: Config, pages: Pages) -> Access:
        auth = config.web.auth
        if auth is None:
            if not is_loopback(config.web.host):
                raise ValueError(f"web.host {config.web.host!r} needs web.auth")
            # Open on loopback: sessions exist only for CSRF tokens; they end with the process.
            signer = SessionSigner(secrets.token_bytes(32), ANONYMOUS_LIFETIME)
            return cls(signer, None, None, _origins(config), pages)
        secret = auth.session_secret.get_secret_value().encode()
        if auth.password_hash is not None:
            stored = auth.password_hash.get_secret_value()
        else:
            assert auth.password is not None  # the configuration checks one of them is set
            stored = hash_password(auth.password.get_secret_value())
        return cls(
            SessionSigner(secret, auth.session_lifetime), auth, stored, _origins(config), pages
        )

    def csrf_token(self, request: web.Request) -> str:
        """The token a form on this request's page must send back ('' without a session)."""
        session = current_session()
        return self.signer.csrf_token(session) if session is not None else ""

    def bearer_ok(self, request: web.Request) -> bool:
        if self.auth is None:
            return False
        scheme, _, token = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False
        return same_text(token.strip(), self.auth.api_token.get_secret_value())

    def signed_in(self, session: Session | None) -> bool:
        if self.auth is None:
            return True
        return session is not None and session.user is not None  # user checked in session_of

    def session_of(self, request: web.Request) -> Session | None:
        """The valid session in the request's cookie, if any."""
        session = self.signer.load(request.cookies.get(SESSION_COOKIE))
        if session is None or self.auth is None:
            return session
        if session.user is None or not same_text(session.user, self.auth.username):
            return None
        return session

    def same_origin(self, request: web.Request) -> bool:
        """Whether the browser says this request comes from a page of this site."""
        if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
            return False
        claimed = request.headers.get(hdrs.ORIGIN) or request.headers.get(hdrs.REFERER)
        if not claimed or claimed == "null":
            return False
        try:
            origin = _origin(URL(claimed))
            own = _origin(request.url)
        except ValueError:
            return False
        return origin == own or origin in self.trusted_origins

    async def check_password(self, username: str, password: str) -> bool:
        """Constant-time check of a login (the hash runs off the event loop)."""
        if self.auth is None or self.password_hash is None:
            return False
        name_ok = same_text(username, self.auth.username)
        password_ok = await asyncio.to_thread(verify_password, password, self.password_hash)
        return name_ok and password_ok

    def set_cookie(
        self, request: web.Request, response: web.StreamResponse, session: Session
    ) -> None:
        response.set_cookie(
            SESSION_COOKIE,
            self.signer.dump(session),
            max_age=int(self.signer.lifetime.total_seconds()),
            path="/",
            httponly=True,
            samesite="Strict",
            secure=_is_https(request),
        )

    def error(self, request: web.Request, status: int, message: str) -> web.Response:
        """A refusal as JSON for the API, plain text for tools, a page for people."""
        if request.path.startswith("/api/"):
            response: web.Response = web.json_response({"error": message}, status=status)
        elif request.path in TOKEN_PATHS:
            response = web.Response(text=message + "\n", status=status)
        else:
            response = self.pages.render("error.html", status=status, code=status, message=message)
        if status == 401:
            response.headers[hdrs.WWW_AUTHENTICATE] = 'Bearer realm="tracker"'
        return response


ACCESS = web.AppKey("access", Access)


def _allowed(access: Access, request: web.Request, session: Session | None, token: bool) -> bool:
    path = request.path
    if access.auth is None or path in OPEN_PATHS:
        return True
    if path in TOKEN_ONLY_PATHS:
        return token
    if path.startswith("/api/") or path in TOKEN_PATHS:
        return token or access.signed_in(session)
    return access.signed_in(session)


async def _cross_site_problem(
    access: Access, request: web.Request, session: Session | None
) -> str | None:
    """Why a state-changing browser request is refused; None when it may go on."""
    if not access.same_origin(request):
        return "refused: this request did not come from a page of this site"
    if request.path == "/login":
        return None  # no session yet; same origin and SameSite=Strict are the defence
    form = await request.post()
    token = form.get(CSRF_FIELD)
    if not isinstance(token, str) or not access.signer.csrf_ok(session, token):
        return "this form has expired or did not come from this site: reload the page and try again"
    return None


@web.middleware
async def access_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in UNGUARDED_PATHS:
        return await handler(request)
    access = request.app[ACCESS]
    session = access.session_of(request)
    token = access.bearer_ok(request)
    if not _allowed(access, request, session, token):
        if request.method in ("GET", "HEAD") and not (
            request.path.startswith("/api/") or request.path in TOKEN_PATHS
        ):
            return see_other(str(URL("/login").with_query(next=request.path_qs)))
        return access.error(request, 401, "sign in, or send Authorization: Bearer <api_token>")
    if request.method not in SAFE_METHODS and not token:
        problem = await _cross_site_problem(access, request, session)
        if problem is not None:
            log.warning("%s %s refused: %s", request.method, request.path, problem)
            return access.error(request, 403, problem)
    fresh = None
    if session is None and access.auth is None:
        fresh = session = access.signer.new(None)
    token_of_context = _SESSION.set(session)
    try:
        response = await handler(request)
    finally:
        _SESSION.reset(token_of_context)
    if fresh is not None and not response.prepared and response.content_type == "text/html":
        access.set_cookie(request, response, fresh)
    return response


# --- /login and /logout ---------------------------------------------------------------------


def see_other(location: str) -> web.Response:
    """303 See Other: where a browser goes next, with GET."""
    return web.Response(status=303, headers={hdrs.LOCATION: location})


def safe_next(value: str | None) -> str:
    """A local path to go to after signing in; ``/`` for anything else."""
    if value and _SAFE_NEXT.fullmatch(value) and not value.startswith(("/login", "/logout")):
        return value
    return "/"


async def login_form(request: web.Request) -> web.StreamResponse:
    access = request.app[ACCESS]
    target = safe_next(request.query.get("next"))
    if access.auth is None or access.signed_in(access.session_of(request)):
        return see_other(target)
    return access.pages.render("login.html", next=target, username="", error=None)


async def login(request: web.Request) -> web.StreamResponse:
    access = request.app[ACCESS]
    form = await request.post()
    target = safe_next(_field(form.get("next")))
    if access.auth is None:
        return see_other(target)
    username, password = _field(form.get("username")), _field(form.get("password"))
    if username and password and await access.check_password(username, password):
        response = see_other(target)
        access.set_cookie(request, response, access.signer.new(access.auth.username))
        log.info("signed in from %s", request.remote)
        return response
    log.warning("failed sign-in from %s", request.remote)
    return access.pages.render(
        "login.html",
        status=401,
        next=target,
        username=username,
        error="Wrong username or password.",
    )


async def logout_form(request: web.Request) -> web.StreamResponse:
    access = request.app[ACCESS]
    if access.auth is None:
        return see_other("/")
    return access.pages.render("logout.html", csrf_token=access.csrf_token(request))


async def logout(request: web.Request) -> web.StreamResponse:
    response = see_other("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


def install_access(app: web.Application, config: Config, pages: Pages) -> Access:
    """Put the access rules in front of ``app``'s handlers and serve ``/login``, ``/logout``."""
    access = Access.from_config(config, pages)
    app[ACCESS] = access
    app.middlewares.append(access_middleware)
    pages.env.globals["auth_enabled"] = access.auth is not None
    app.router.add_get("/login", login_form, name="login_form")
    app.router.add_post("/login", login, name="login")
    app.router.add_get("/logout", logout_form, name="logout_form")
    app.router.add_post("/logout", logout, name="logout")
    return access


def _field(value: object) -> str:
    return value[:MAX_FIELD_LENGTH] if isinstance(value, str) else ""


def _origin(url: URL) -> str:
    if not url.scheme or not url.host:
        raise ValueError("no origin")
    return str(url.origin())


def _origins(config: Config) -> frozenset[str]:
    if not config.web.public_url:
        return frozenset()
    try:
        return frozenset({_origin(URL(config.web.public_url))})
    except ValueError:
        return frozenset()


def _is_https(request: web.Request) -> bool:
    return request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"
