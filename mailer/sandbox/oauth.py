"""A small OAuth2 authorization server on 127.0.0.1, for the sandbox and the test suite.

Stdlib only (``http.server``), honest to the RFCs it serves, so that mailer's real client code
and a real Dovecot talk to it over HTTP:

- ``POST /device``: device authorization (RFC 8628); ``GET``/``POST /activate``: the page where a
  browser enters the user code and signs in;
- ``GET``/``POST /authorize``: authorization code with PKCE (RFC 7636, S256 only), the
  browser signs in and is redirected to the client's loopback ``redirect_uri``;
- ``POST /token``: the device-code, authorization-code and refresh-token grants (RFC 6749);
- ``POST /introspect`` (RFC 7662), read by Dovecot's ``oauth2`` passdb and the sandbox SMTP
  server; ``POST /revoke`` (RFC 7009).

Users sign in with the sandbox's mail passwords (``users`` is a callable, so mailboxes added
later sign in too). Tokens are random and kept in memory; ``access_lifetime`` (seconds) can be
changed while running. Nothing here is for production use: there is no TLS and no rate limit.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HOST = "127.0.0.1"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@dataclass
class _Grant:
    """One sign-in: a user's consent to a client for some scopes. Refresh tokens point here."""

    user: str
    client_id: str
    scope: str
    revoked: bool = False


@dataclass
class _Access:
    grant: _Grant
    expires: float


@dataclass
class _Pending:
    """A device code waiting for the user, or an authorization code waiting for the client."""

    client_id: str
    scope: str
    expires: float
    user: str = ""  # set once the user approved
    denied: bool = False
    redirect_uri: str = ""
    challenge: str = ""
    last_poll: float = 0.0


@dataclass
class OAuthServer:
    """The server's state and its HTTP listener. ``start()`` runs it in a daemon thread."""

    users: Callable[[], dict[str, str]]
    clients: dict[str, str | None] = field(default_factory=lambda: {"mailer-test": None})
    access_lifetime: float = 3600.0
    device_interval: float = 0.2  # seconds between polls the client is asked to keep
    clock: Callable[[], float] = time.time
    # Every grant_type asked at /token, in order: tests count refreshes with it.
    token_requests: list[str] = field(default_factory=list)
    _access: dict[str, _Access] = field(default_factory=dict)
    _refresh: dict[str, _Grant] = field(default_factory=dict)
    _device: dict[str, _Pending] = field(default_factory=dict)  # device_code -> pending
    _user_codes: dict[str, str] = field(default_factory=dict)  # user_code -> device_code
    _codes: dict[str, _Pending] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _httpd: ThreadingHTTPServer | None = None

    # --- lifecycle -------------------------------------------------------------------------

    def start(self, port: int = 0) -> str:
        """Listen on 127.0.0.1 (a free port by default); returns the base URL."""
        server = self

        class Handler(_Handler):
            oauth = server

        self._httpd = ThreadingHTTPServer((HOST, port), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self.url

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    @property
    def url(self) -> str:
        assert self._httpd is not None
        return f"http://{HOST}:{self._httpd.server_address[1]}"

    # --- what a test (or an administrator) does besides HTTP ---------------------------------

    def revoke_user(self, user: str) -> int:
        """Withdraw every grant of ``user`` (consent revoked); returns how many."""
        with self._lock:
            grants = {id(g): g for g in self._refresh.values() if g.user == user.lower()}
            for g in grants.values():
                g.revoked = True
            return len(grants)

    def issue(self, user: str, scope: str, client_id: str = "mailer-test") -> dict[str, Any]:
        """Tokens for ``user`` without a browser: for tests that are not about sign-in."""
        with self._lock:
            return self._tokens(_Grant(user.lower(), client_id, scope))

    # --- protocol ------------------------------------------------------------------------------

    def _tokens(self, grant: _Grant, refresh: str | None = None) -> dict[str, Any]:
        access = secrets.token_urlsafe(32)
        self._access[access] = _Access(grant, self.clock() + self.access_lifetime)
        if refresh is None:
            refresh = secrets.token_urlsafe(32)
            self._refresh[refresh] = grant
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": int(self.access_lifetime),
            "refresh_token": refresh,
            "scope": grant.scope,
        }

    def introspect(self, token: str) -> dict[str, Any]:
        with self._lock:
            a = self._access.get(token)
            if a is None or a.grant.revoked or a.expires <= self.clock():
                return {"active": False}
            return {
                "active": True,
                "username": a.grant.user,
                "scope": a.grant.scope,
                "client_id": a.grant.client_id,
                "token_type": "Bearer",
                "exp": int(a.expires),
            }

    def revoke(self, token: str) -> None:
        with self._lock:
            grant = self._refresh.get(token)
            if grant is not None:
                grant.revoked = True
            access = self._access.pop(token, None)
            if access is not None and grant is None:
                pass  # RFC 7009: revoking an access token need not touch its grant

    def _client_ok(self, form: dict[str, str]) -> bool:
        cid = form.get("client_id", "")
        if cid not in self.clients:
            return False
        secret = self.clients[cid]
        return secret is None or secrets.compare_digest(form.get("client_secret", ""), secret)

    def device_authorization(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if not self._client_ok(form):
            return 401, {"error": "invalid_client"}
        device_code = secrets.token_urlsafe(24)
        user_code = "".join(secrets.choice("BCDFGHJKLMNPQRSTVWXZ") for _ in range(8))
        with self._lock:
            self._device[device_code] = _Pending(
                form["client_id"], form.get("scope", ""), self.clock() + 600
            )
            self._user_codes[user_code] = device_code
        return 200, {
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": f"{self.url}/activate",
            "verification_uri_complete": f"{self.url}/activate?user_code={user_code}",
            "expires_in": 600,
            "interval": self.device_interval,
        }

    def approve_device(self, user_code: str, user: str, password: str, allow: bool) -> str:
        """What the activation page does with a signed-in browser's answer; returns the page."""
        if not self._password_ok(user, password):
            return "wrong user name or password"
        with self._lock:
            device_code = self._user_codes.pop(user_code.strip().upper(), "")
            pending = self._device.get(device_code)
            if pending is None or pending.expires <= self.clock():
                return "unknown or expired code"
            pending.user, pending.denied = user.lower(), not allow
        return "approved; you can close this window" if allow else "denied"

    def _password_ok(self, user: str, password: str) -> bool:
        known = {u.lower(): p for u, p in self.users().items()}
        expected = known.get(user.lower())
        return expected is not None and secrets.compare_digest(expected.encode(), password.encode())

    def authorize(self, q: dict[str, str], user: str, password: str) -> tuple[int, str]:
        """A signed-in consent: (302, where to) or (400, why)."""
        redirect = q.get("redirect_uri", "")
        parsed = urllib.parse.urlsplit(redirect)
        if parsed.scheme != "http" or parsed.hostname not in ("127.0.0.1", "localhost", "::1"):
            return 400, "redirect_uri must be a loopback http URL (RFC 8252)"
        if q.get("client_id") not in self.clients:
            return 400, "unknown client_id"
        if q.get("response_type") != "code":
            return 400, "response_type must be code"
        if q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            return 400, "PKCE with S256 is required"
        if not self._password_ok(user, password):
            return 400, "wrong user name or password"
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = _Pending(
                q["client_id"],
                q.get("scope", ""),
                self.clock() + 120,
                user=user.lower(),
                redirect_uri=redirect,
                challenge=q["code_challenge"],
            )
        sep = "&" if parsed.query else "?"
        params = {"code": code, **({"state": q["state"]} if "state" in q else {})}
        return 302, redirect + sep + urllib.parse.urlencode(params)

    def token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        grant_type = form.get("grant_type", "")
        self.token_requests.append(grant_type)
        if not self._client_ok(form):
            return 401, {"error": "invalid_client"}
        with self._lock:
            if grant_type == DEVICE_GRANT:
                return self._device_token(form)
            if grant_type == "authorization_code":
                return self._code_token(form)
            if grant_type == "refresh_token":
                return self._refresh_token(form)
        return 400, {"error": "unsupported_grant_type"}

    def _device_token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        code = form.get("device_code", "")
        p = self._device.get(code)
        now = self.clock()
        if p is None or p.client_id != form["client_id"]:
            return 400, {"error": "invalid_grant"}
        if p.expires <= now:
            return 400, {"error": "expired_token"}
        if p.denied:
            del self._device[code]
            return 400, {"error": "access_denied"}
        if not p.user:
            # RFC 8628 3.5: polling faster than the interval is answered with slow_down.
            too_fast = now - p.last_poll < self.device_interval * 0.5
            p.last_poll = now
            return 400, {"error": "slow_down" if too_fast else "authorization_pending"}
        del self._device[code]
        return 200, self._tokens(_Grant(p.user, p.client_id, p.scope))

    def _code_token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        p = self._codes.pop(form.get("code", ""), None)  # one use only
        if p is None or p.expires <= self.clock() or p.client_id != form["client_id"]:
            return 400, {"error": "invalid_grant"}
        if form.get("redirect_uri") != p.redirect_uri:
            return 400, {"error": "invalid_grant", "error_description": "redirect_uri differs"}
        verifier = form.get("code_verifier", "")
        digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        if not verifier or digest.rstrip(b"=").decode() != p.challenge:
            return 400, {"error": "invalid_grant", "error_description": "PKCE check failed"}
        return 200, self._tokens(_Grant(p.user, p.client_id, p.scope))

    def _refresh_token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        refresh = form.get("refresh_token", "")
        grant = self._refresh.get(refresh)
        if grant is None or grant.revoked or grant.client_id != form["client_id"]:
            return 400, {"error": "invalid_grant", "error_description": "refresh token revoked"}
        return 200, self._tokens(grant, refresh)


class _Handler(BaseHTTPRequestHandler):
    oauth: OAuthServer
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # request lines carry codes and tokens: keep them out of any output

    def _form(self) -> dict[str, str]:
        length = min(int(self.headers.get("Content-Length") or 0), 64 * 1024)
        body = self.rfile.read(length).decode("utf-8", "replace")
        return dict(urllib.parse.parse_qsl(body))

    def _query(self) -> dict[str, str]:
        return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))

    def _json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _page(self, status: int, text: str) -> None:
        data = f"<!doctype html><title>sandbox sign-in</title>{text}".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        q = self._query()
        if path == "/activate":
            code = html.escape(q.get("user_code", ""))
            self._page(200, _form_html("/activate", {"user_code": code}))
        elif path == "/authorize":
            self._page(200, _form_html("/authorize?" + urllib.parse.urlencode(q), {}))
        else:
            self._json(404, {"error": "not_found"})

    def do_POST(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        form = self._form()
        o = self.oauth
        if path == "/device":
            self._json(*o.device_authorization(form))
        elif path == "/token":
            self._json(*o.token(form))
        elif path == "/introspect":
            # RFC 7662: inactive tokens are a 200 with active=false (Dovecot reads only that).
            self._json(200, o.introspect(form.get("token", "")))
        elif path == "/revoke":
            o.revoke(form.get("token", ""))
            self._json(200, {})
        elif path == "/activate":
            allow = form.get("action", "allow") == "allow"
            text = o.approve_device(
                form.get("user_code", ""), form.get("username", ""), form.get("password", ""), allow
            )
            self._page(200 if text.startswith(("approved", "denied")) else 400, html.escape(text))
        elif path == "/authorize":
            status, where = o.authorize(
                self._query(), form.get("username", ""), form.get("password", "")
            )
            if status == 302:
                self.send_response(302)
                self.send_header("Location", where)
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self._page(status, html.escape(where))
        else:
            self._json(404, {"error": "not_found"})


def _form_html(action: str, hidden: dict[str, str]) -> str:
    fields = "".join(
        f'<input type="hidden" name="{k}" value="{html.escape(v)}">' for k, v in hidden.items()
    )
    return (
        f'<form method="post" action="{html.escape(action)}">{fields}'
        '<input name="username"><input name="password" type="password">'
        '<button name="action" value="allow">Allow</button>'
        '<button name="action" value="deny">Deny</button></form>'
    )


def browser_sign_in(url: str, user: str, password: str, allow: bool = True) -> str:
    """Do what a person does in a browser at ``url`` (the activation page, or the consent page
    of an authorization request): sign in and allow. Returns where the browser was sent next
    (the redirect URI with the code), or the page's text. Follows no redirect itself."""
    import urllib.error
    import urllib.request

    parts = urllib.parse.urlsplit(url)
    if parts.hostname != HOST:
        raise ValueError("the sandbox browser only visits the sandbox server")
    with urllib.request.urlopen(url, timeout=10) as page:  # what the browser shows first
        page.read()
    q = dict(urllib.parse.parse_qsl(parts.query))
    form = {"username": user, "password": password, "action": "allow" if allow else "deny"}
    if parts.path == "/activate":
        form["user_code"] = q.get("user_code", "")
    target = urllib.parse.urlunsplit(parts) if parts.path == "/authorize" else url.split("?")[0]
    request = urllib.request.Request(target, data=urllib.parse.urlencode(form).encode())

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=10) as answer:
            return answer.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        if exc.code == 302:
            return exc.headers.get("Location", "")
        return exc.read().decode("utf-8", "replace")
