"""A real OpenID Connect provider on loopback (oidc-provider-mock, a Flask app that signs real ID
tokens) and the app served with login against it, for tests/test_login.py.

The provider's login form lists the users given to it as buttons; one click sends the browser back
to the app with a code, which Streamlit (Authlib) exchanges for an ID token carrying the user's claims.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import oidc_provider_mock
import werkzeug.serving
from playwright.sync_api import Page
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from dashboard.servers.throwaway import free_port
from tests.support.browser import observatory_serve, settle

CLIENT_SECRET = "client-secret-Zq8vX2mT7pLw"  # long and odd enough not to occur by chance
COOKIE_SECRET = "cookie-secret-Hk4rN9sB1yQe5uJd-7Wc2Fx"  # 32+ characters, as serve requires
SECRET_ENV = {"OBS_TEST_CLIENT_SECRET": CLIENT_SECRET, "OBS_TEST_COOKIE_SECRET": COOKIE_SECRET}


@contextmanager
def provider(users: Mapping[str, Mapping[str, object]]) -> Iterator[str]:
    """The provider on 127.0.0.1 in a thread, knowing `users` ({sub: claims}); yields its issuer URL."""
    app = oidc_provider_mock.app(
        user_claims=[oidc_provider_mock.User(sub=sub, claims=dict(claims)) for sub, claims in users.items()]
    )
    server = werkzeug.serving.make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def access_yaml(issuer: str, sql_users: Sequence[str] = (), sql_groups: Sequence[str] = ()) -> str:
    """The config's access section for this provider (the secrets named by variable)."""
    return (
        "access:\n  oidc:\n"
        f"    server_metadata_url: {issuer}/.well-known/openid-configuration\n"
        "    client_id: observatory\n"
        "    client_secret_env: OBS_TEST_CLIENT_SECRET\n"
        "    cookie_secret_env: OBS_TEST_COOKIE_SECRET\n"
        f"  sql_users: {list(sql_users)}\n  sql_groups: {list(sql_groups)}\n"
    )


@dataclass
class Served:
    url: str
    log: Path  # everything `observatory serve` and the app wrote (stdout and stderr)


@contextmanager
def serve(config_file: Path, folder: Path, host: str = "127.0.0.1") -> Iterator[Served]:
    """`observatory serve` with the secrets in its environment; yields its URL and its log."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = folder / "serve.log"
    env = {**os.environ, **SECRET_ENV, "OBSERVATORY_CONFIG": str(config_file)}
    with observatory_serve(["--host", host, "--port", str(port)], env, log_path, url):
        yield Served(url, log_path)


def log_in(page: Page, app_url: str, sub: str) -> None:
    """Through the app's login button and the provider's form, as `sub`; back on the app, settled."""
    page.goto(app_url)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/oauth2/authorize**", timeout=30_000)
    page.locator(f"button[name='sub'][value='{sub}']").click()
    page.wait_for_url(f"{app_url}/**", timeout=30_000)
    page.get_by_role("button", name="Log out").wait_for(timeout=30_000)
    settle(page)


def log_out(page: Page, app_url: str) -> None:
    """The sidebar's logout: Streamlit's /auth/logout drops its cookie and sends the browser to the
    provider's end-session form, which sends it back; then the app's front page. The old page
    redraws with "Log in" before the browser has left it, so what is waited for is the cookie."""
    page.get_by_role("button", name="Log out").click()
    deadline = time.monotonic() + 30
    while any(c["name"].startswith("_streamlit_user") for c in page.context.cookies()):
        assert time.monotonic() < deadline, "the login cookie outlived the logout"
        page.wait_for_timeout(100)
    end = page.get_by_role("button", name="End session")
    try:  # the provider's form, where Streamlit found it
        end.wait_for(timeout=5_000)
    except PlaywrightTimeout:
        pass
    else:
        end.click()
        page.wait_for_url(f"{app_url}/**", timeout=30_000)
    page.goto(app_url)
    settle(page)
