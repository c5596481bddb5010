"""OAuth2 sign-in: the device grant (RFC 8628), the authorization code with PKCE (RFC 7636)
and a loopback redirect (RFC 8252), refresh, and the SASL strings XOAUTH2 and OAUTHBEARER.

HTTP goes through urllib with verified TLS; plain http only to a loopback host (the config
checks this too). The pure helpers (URLs, PKCE, parsing answers) do no I/O.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from mailer.adapters.config import OAuth2Settings, ServerSettings
from mailer.adapters.tokens import TokenSet, TokenStore
from mailer.errors import SignInError

log = logging.getLogger(__name__)
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
# Refresh this long before the access token ends (or at a quarter of its life, if shorter),
# so a connection made just before the end never carries a token that dies in the login.
REFRESH_MARGIN = 60.0
MAX_ANSWER = 64 * 1024  # bytes read of any endpoint's answer


def who(account: str) -> str:
    return f"account {account}" if account else "the main account"


def login_command(account: str) -> str:
    return "mailer auth login" + (f" --account {account}" if account else "")


def expired(account: str) -> SignInError:
    """The one line a refresh that fails gives (revoked consent, an expired refresh token)."""
    return SignInError(f"{who(account)}: sign-in expired; run `{login_command(account)}`")


# --- pure helpers ----------------------------------------------------------------------------


def pkce_pair() -> tuple[str, str]:
    """(verifier, S256 challenge)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def authorize_url(cfg: OAuth2Settings, redirect_uri: str, state: str, challenge: str) -> str:
    params = {
        "response_type": "code",
        "client_id": cfg.client_id,
        "redirect_uri": redirect_uri,
        "scope": " ".join(cfg.scopes),
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **dict(cfg.auth_params),
    }
    sep = "&" if "?" in cfg.authorization_url else "?"
    return cfg.authorization_url + sep + urllib.parse.urlencode(params)


def code_from_redirect(url: str, state: str) -> str:
    """The authorization code in the redirect the browser was sent to (or the user pasted)."""
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url.strip()).query))
    if "error" in query:
        raise SignInError(f"the sign-in was refused: {_safe(query['error'])}")
    if query.get("state") != state:
        raise SignInError("the redirect does not belong to this sign-in (its state differs)")
    if not query.get("code"):
        raise SignInError("the redirect carries no authorization code")
    return query["code"]


def tokens_from(
    answer: dict[str, Any], cfg: OAuth2Settings, user: str, now: float, old_refresh: str = ""
) -> TokenSet:
    """A token endpoint's answer as a :class:`TokenSet`. A refresh answer may omit the refresh
    token (the old one stays good) and the scope (unchanged, RFC 6749 5.1)."""
    access = answer.get("access_token")
    if not isinstance(access, str) or not access:
        raise SignInError(f"{cfg.token_url}: the answer has no access token")
    refresh = answer.get("refresh_token") or old_refresh
    if not isinstance(refresh, str) or not refresh:
        raise SignInError(
            f"{cfg.token_url}: no refresh token came back, so the sign-in would last only an hour",
            hint="ask for offline access (offline_access scope, or access_type=offline)",
        )
    try:
        lifetime = float(answer.get("expires_in", 3600))
    except (TypeError, ValueError):
        lifetime = 3600.0
    scope = answer.get("scope")
    scopes = tuple(scope.split()) if isinstance(scope, str) and scope else cfg.scopes
    return TokenSet(
        user=user,
        client_id=cfg.client_id,
        token_url=cfg.token_url,
        scopes=scopes,
        expires_at=now + max(lifetime, 0.0),
        lifetime=max(lifetime, 0.0),
        access_token=access,
        refresh_token=refresh,
    )


def needs_refresh(tokens: TokenSet, now: float) -> bool:
    margin = min(REFRESH_MARGIN, tokens.lifetime / 4)
    return tokens.expires_at - margin <= now


def xoauth2(user: str, token: str) -> str:
    return f"user={user}\x01auth=Bearer {token}\x01\x01"


def oauthbearer(user: str, token: str) -> str:
    # Dovecot refuses a gs2 header without the authzid ("n,,").
    return f"n,a={user.replace('=', '=3D').replace(',', '=2C')},\x01auth=Bearer {token}\x01\x01"


def _safe(text: str) -> str:
    """A provider's error code or description, cut to one short printable line."""
    return " ".join("".join(c for c in str(text) if c.isprintable()).split())[:200]


# --- HTTP ----------------------------------------------------------------------------------


def post_form(url: str, form: dict[str, str], timeout: float = 30.0) -> tuple[int, dict[str, Any]]:
    """POST ``form`` and read a JSON answer, whatever the status. TLS is verified."""
    import ssl
    import urllib.error
    import urllib.request

    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "https" and not (
        parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")
    ):
        raise SignInError(f"{url}: refusing to send credentials over plain http to another host")
    request = urllib.request.Request(
        url,
        data=urllib.parse.urlencode(form).encode(),
        headers={"Accept": "application/json"},
    )
    ctx = ssl.create_default_context() if parts.scheme == "https" else None
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=ctx) as answer:
            status, body = answer.status, answer.read(MAX_ANSWER)
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read(MAX_ANSWER)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SignInError(
            f"{parts.scheme}://{parts.netloc}: cannot reach the sign-in server ({_safe(str(reason))})"
        ) from None
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        data = {}
    return status, data if isinstance(data, dict) else {}


def _client(cfg: OAuth2Settings) -> dict[str, str]:
    form = {"client_id": cfg.client_id}
    if cfg.client_secret:
        form["client_secret"] = cfg.client_secret
    return form


def _refused(
    cfg: OAuth2Settings,
    step: str,
    answer: dict[str, Any],
    *secrets_sent: str,
    url: str = "",
) -> SignInError:
    """The provider's refusal in one line, cleaned of what we sent it: a server may echo the
    refresh token, the device code or the client secret in its description. ``url``: where
    the refused request went (the token endpoint unless said)."""
    from mailer.adapters.config import account_client_secret
    from mailer.model.redact import redactor

    text = f"{_safe(answer.get('error', 'unknown error'))}"
    detail = _safe(answer.get("error_description", ""))
    if detail:
        text += f" ({detail})"
    for secret in (*secrets_sent, cfg.client_secret):
        if secret:
            text = redactor("", secret)(text)
    hint = None
    if answer.get("error") == "invalid_client":
        secret_var = account_client_secret(cfg.account)
        hint = f"check [oauth2] client_id in the config, and {secret_var} if it needs one"
    return SignInError(f"{url or cfg.token_url}: {step} refused: {text}", hint=hint)


# --- flows -----------------------------------------------------------------------------------


def device_login(
    cfg: OAuth2Settings,
    user: str,
    say: Callable[[str], None],
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
) -> TokenSet:
    """RFC 8628: print where to go and the code, then poll until the user approves."""
    status, dev = post_form(
        cfg.device_authorization_url, {**_client(cfg), "scope": " ".join(cfg.scopes)}
    )
    if status != 200 or "device_code" not in dev:
        raise _refused(cfg, "device authorization", dev, url=cfg.device_authorization_url)
    uri = _safe(dev.get("verification_uri") or dev.get("verification_url", ""))
    say(f"To sign in {user}, open {uri} and enter the code {_safe(dev.get('user_code', ''))}")
    interval = float(dev.get("interval", 5) or 5)
    deadline = clock() + float(dev.get("expires_in", 900) or 900)
    form = {**_client(cfg), "grant_type": DEVICE_GRANT, "device_code": str(dev["device_code"])}
    while clock() < deadline:
        sleep(interval)
        status, answer = post_form(cfg.token_url, form)
        if status == 200:
            return tokens_from(answer, cfg, user, clock())
        error = answer.get("error")
        if error == "authorization_pending":
            continue
        if error == "slow_down":  # RFC 8628 3.5: add 5 seconds to the interval
            interval += 5
            continue
        raise _refused(cfg, "sign-in", answer, form["device_code"])
    raise SignInError(f"{cfg.token_url}: the code expired before the sign-in was approved")


def pkce_login(
    cfg: OAuth2Settings,
    user: str,
    say: Callable[[str], None],
    *,
    open_browser: Callable[[str], bool],
    read_line: Callable[[], str],
    clock: Callable[[], float] = time.time,
    wait: float = 300.0,
) -> TokenSet:
    """Authorization code + PKCE with a loopback redirect: the listener is up before the
    browser opens. With no browser, the user opens the URL elsewhere and pastes the address
    the browser ended on."""
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(16)
    listener = _Loopback()
    try:
        redirect = listener.uri
        url = authorize_url(cfg, redirect, state, challenge)
        if open_browser(url):
            say(f"Signing in {user} in your browser; waiting for it to finish ...")
            landed = listener.wait(wait)
            if not landed:
                raise SignInError(f"no answer from the browser within {wait:g} s; try again")
        else:
            say(f"Open this address in a browser to sign in {user}:\n{url}")
            say("Then paste here the address the browser ends on (it may show an error page):")
            landed = listener.result or read_line()
    finally:
        listener.close()
    code = code_from_redirect(landed, state)
    form = {
        **_client(cfg),
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect,
        "code_verifier": verifier,
    }
    status, answer = post_form(cfg.token_url, form)
    if status != 200:
        raise _refused(cfg, "sign-in", answer, code, verifier)
    return tokens_from(answer, cfg, user, clock())


class _Loopback:
    """An HTTP listener on 127.0.0.1 (a free port) that takes one redirect."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, HTTPServer

        self.result = ""
        self._done = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if "code=" in self.path or "error=" in self.path:
                    outer.result = f"http://127.0.0.1:{outer.port}{self.path}"
                    outer._done.set()
                body = b"Signed in: you can close this window and go back to mailer."
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the request line carries the code

        self._server = HTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def wait(self, timeout: float) -> str:
        self._done.wait(timeout)
        return self.result

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def refresh(cfg: OAuth2Settings, tokens: TokenSet, clock: Callable[[], float]) -> TokenSet:
    form = {**_client(cfg), "grant_type": "refresh_token", "refresh_token": tokens.refresh_token}
    status, answer = post_form(cfg.token_url, form)
    if status == 200:
        return tokens_from(answer, cfg, tokens.user, clock(), tokens.refresh_token)
    if answer.get("error") in ("invalid_grant", "unauthorized_client"):
        raise expired(cfg.account)
    # (invalid_client is the client's id or secret, not the sign-in: logging in again would
    # fail the same way)
    raise _refused(cfg, "token refresh", answer, tokens.refresh_token)


def access_token(
    server: ServerSettings,
    *,
    store: TokenStore | None = None,
    clock: Callable[[], float] = time.time,
    force_refresh: bool = False,
) -> str:
    """A valid access token for ``server``'s account, refreshed first when near its end."""
    cfg = server.oauth2
    assert cfg is not None, "access_token() is for servers with auth = oauth2"
    store = store or TokenStore(cfg.store_dir)
    with store.locked(cfg.account):
        tokens = store.load(cfg.account)
        if tokens is None or not matches(tokens, cfg, server.username):
            raise SignInError(
                f"{who(cfg.account)}: not signed in with OAuth2; run `{login_command(cfg.account)}`"
            )
        if force_refresh or needs_refresh(tokens, clock()):
            tokens = refresh(cfg, tokens, clock)
            store.save(cfg.account, tokens)
            log.info("%s: access token refreshed", who(cfg.account))
        return tokens.access_token


def matches(tokens: TokenSet, cfg: OAuth2Settings, user: str) -> bool:
    """Tokens from another client, server or user (the config changed) are not used."""
    return (
        tokens.client_id == cfg.client_id
        and tokens.token_url == cfg.token_url
        and tokens.user.lower() == user.lower()
    )
