"""Login (Streamlit's OIDC, against a real provider on loopback) and who may run SQL from the app.

In Chromium, one `observatory serve` for the module: a visitor sees the login button alone; a user
in an allowed group gets the paste box and Investigate's Explain (which reaches the server); a user
off the list reads the pages, sees the reason in place of the SQL-running parts, and a crafted
`?sql=...&analyze=1` link runs nothing (pg_stat_statements says so); logout. Then the decision table
(dashboard.core.access), the exposure warning, and the secrets: the file `serve` writes is 0600, and
neither secret shows in the app's pages, its log or an error. Last, one test per finding of the
hostile review (busy port, a named provider without secrets, short cookie secrets, email_verified,
subjects vs emails, look-alike letters, old logins, secrets files left behind, a squatted folder,
plain-http login beyond loopback, an inherited OBSERVATORY_EXPOSED=0, cross-target links).
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from playwright.sync_api import Browser, Page

from dashboard.cli import serve as serve_cmd
from dashboard.core import access, config
from dashboard.core.access import Viewer
from dashboard.core.redaction import known_secrets
from dashboard.servers.throwaway import ThrowawayPostgres, free_port
from dashboard.store import Store
from dashboard.store.reads import statement_ids_by_text
from tests.support.apptest import empty_store_config, no_exception, open_page, texts
from tests.support.browser import ROOT, observatory_serve, settle, shoot
from tests.support.cycles import T0, cycle, key
from tests.support.oidc import (
    CLIENT_SECRET,
    COOKIE_SECRET,
    SECRET_ENV,
    access_yaml,
    log_in,
    log_out,
    provider,
    serve,
)
from tests.support.postgres import advisor_dsn, new_database

PROBE = "SELECT count(*) FROM login_probe WHERE v = 'x'"
USERS = {
    "bob": {"email": "bob@example.com", "groups": ["dba", "dev"]},  # allowed by his group
    "carol": {"email": "carol@example.com", "groups": ["dev"]},  # on no list
}
SEEN_HTML: list[str] = []  # every page's HTML the browser tests saw, for the leak check at the end


# -- the world: a provider, a server to explain on, the app with login ------------------------------
@pytest.fixture(scope="module")
def probe(pg: ThrowawayPostgres) -> str:
    """A database with the probe's table; the advisor role's DSN."""
    name = new_database(pg, "login")
    with psycopg.connect(pg.dsn(dbname=name), autocommit=True) as conn:
        conn.execute("CREATE TABLE login_probe (id int PRIMARY KEY, v text)")
        conn.execute("INSERT INTO login_probe SELECT i, 'v' || i FROM generate_series(1, 100) i")
    return name


def probe_calls(pg: ThrowawayPostgres) -> int:
    """Calls of any statement touching login_probe, EXPLAIN included (pg_stat_statements tracks
    utility statements), as the server counts them. The marker is a parameter: this query's own
    text does not hold it."""
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE query LIKE %s",
            ("%login" + "_probe%",),
        ).fetchone()
    return int(row[0])


@pytest.fixture(scope="module")
def world(pg: ThrowawayPostgres, probe: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    folder = tmp_path_factory.mktemp("login")
    with provider(USERS) as issuer:
        targets = (
            "targets:\n  postgres:\n    - name: shop\n"
            f"      dsn: {json.dumps(advisor_dsn(pg, probe))}\n      explain_analyze: true\n"
        )
        config_file = empty_store_config(folder, targets + access_yaml(issuer, ["dana@example.com"], ["dba"]))
        with serve(config_file, folder) as served:
            yield {"url": served.url, "log": served.log, "issuer": issuer, "config": config_file}


def investigate_link(url: str, analyze: bool) -> str:
    query = {"sql": PROBE, "target": "shop", **({"analyze": "1"} if analyze else {})}
    return f"{url}/investigate?{urllib.parse.urlencode(query)}"


def shown(page: Page) -> str:
    """The app's visible text, without the word joiners md_escape puts in emails (no autolink)."""
    return page.locator("[data-testid='stApp']").inner_text().replace("\u2060", "")


def html_of(page: Page) -> str:
    SEEN_HTML.append(page.content())
    return SEEN_HTML[-1]


# -- in Chromium ----------------------------------------------------------------------------------
def test_a_visitor_sees_the_login_button_alone(page: Page, world: dict, pg: ThrowawayPostgres) -> None:
    before = probe_calls(pg)
    for url in (world["url"], investigate_link(world["url"], analyze=True), f"{world['url']}/indexes"):
        page.goto(url)
        settle(page)
        page.get_by_role("button", name="Log in").wait_for()
        assert page.locator("[data-testid='stSidebarNav']").count() == 0
        assert page.get_by_role("heading", name=re.compile("Overview|Investigate|Indexes")).count() == 0
        assert page.get_by_role("button", name="Explain").count() == 0
        assert "shop" not in shown(page)  # not even the target's name
        html_of(page)
    shoot(page, "login-visitor")
    assert probe_calls(pg) == before


def test_an_allowed_user_runs_sql_then_logs_out(browser: Browser, world: dict, pg: ThrowawayPostgres) -> None:
    context = browser.new_context(viewport={"width": 1440, "height": 2000})
    page = context.new_page()
    try:
        log_in(page, world["url"], "bob")
        assert "Logged in as bob@example.com" in shown(page)
        page.goto(f"{world['url']}/indexes")
        page.get_by_role("heading", name="Indexes").wait_for()
        settle(page)
        assert page.get_by_text("Advise on a statement you paste").count() == 1
        html_of(page)
        shoot(page, "login-allowed-indexes")
        # ?sql= with analyze=1 fills the form but runs nothing; the click does (an estimated plan).
        before = probe_calls(pg)
        page.goto(investigate_link(world["url"], analyze=True))
        page.get_by_role("heading", name="Investigate").wait_for()
        settle(page)
        assert probe_calls(pg) == before
        page.get_by_role("button", name="Explain").click()
        page.get_by_text("Where the cost goes").wait_for(timeout=30_000)
        settle(page)
        assert probe_calls(pg) > before  # the probe sees a real EXPLAIN: its silence below means something
        html_of(page)
        shoot(page, "login-allowed-investigate")
        log_out(page, world["url"])
        page.get_by_role("button", name="Log in").wait_for()
        assert page.locator("[data-testid='stSidebarNav']").count() == 0
        page.goto(f"{world['url']}/indexes")
        settle(page)
        assert page.get_by_text("Advise on a statement you paste").count() == 0
        page.get_by_role("button", name="Log in").wait_for()
    finally:
        context.close()


def test_a_user_off_the_list_reads_and_runs_nothing(
    browser: Browser, world: dict, pg: ThrowawayPostgres
) -> None:
    context = browser.new_context(viewport={"width": 1440, "height": 2000})
    page = context.new_page()
    reason = "Read-only for carol@example.com"
    try:
        log_in(page, world["url"], "carol")
        page.get_by_role("heading", name="Overview").wait_for()  # the pages are hers to read
        assert page.locator("[data-testid='stSidebarNav']").count() == 1
        page.goto(f"{world['url']}/indexes")
        page.get_by_role("heading", name="Indexes").wait_for()
        settle(page)
        assert page.get_by_text("Advise on a statement you paste").count() == 0
        assert shown(page).count(reason) == 1
        before = probe_calls(pg)
        page.goto(investigate_link(world["url"], analyze=True))
        page.get_by_role("heading", name="Investigate").wait_for()
        settle(page)
        assert shown(page).count(reason) == 1
        assert page.get_by_role("button", name="Explain").count() == 0
        assert page.get_by_role("button", name="Fill with sample values").count() == 0
        assert page.locator("[data-testid='stException']").count() == 0
        html_of(page)
        shoot(page, "login-read-only-investigate")
        page.reload()  # a second run of the same link
        settle(page)
        assert probe_calls(pg) == before
    finally:
        context.close()


def test_the_secrets_stay_out_of_pages_logs_and_errors(world: dict, tmp_path: Path) -> None:
    log = world["log"].read_text()
    written = re.search(r"secrets written to (\S+) \(mode 0600\)", log)
    assert written, log
    path = Path(written.group(1))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.stat().st_uid == os.getuid()
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    auth = tomllib.loads(path.read_text())["auth"]
    assert (auth["client_secret"], auth["cookie_secret"]) == (CLIENT_SECRET, COOKIE_SECRET)  # the right file
    assert auth["redirect_uri"] == f"{world['url']}/oauth2callback"
    assert len(SEEN_HTML) >= 5, "the browser tests ran first and kept the pages they saw"
    for text in [log, *SEEN_HTML]:
        assert CLIENT_SECRET not in text and COOKIE_SECRET not in text
    # The CLI's logs and stderr take out every secret the configuration names.
    loaded = config.load(world["config"])
    env = dict(os.environ)
    os.environ.update(SECRET_ENV)
    try:
        assert {CLIENT_SECRET, COOKIE_SECRET} <= set(known_secrets(loaded))
    finally:
        os.environ.clear()
        os.environ.update(env)
    # An unusable secret: the error names the variable, never the value.
    bad = {**os.environ, "OBSERVATORY_CONFIG": str(world["config"]), **SECRET_ENV}
    bad["OBS_TEST_COOKIE_SECRET"] = f"{COOKIE_SECRET} {CLIENT_SECRET}"
    run = subprocess.run(
        [sys.executable, "-m", "dashboard", "serve", "--port", "1"],
        cwd=ROOT, env=bad, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 2 and "OBS_TEST_COOKIE_SECRET" in run.stderr, run.stderr
    assert CLIENT_SECRET not in run.stderr + run.stdout and COOKIE_SECRET not in run.stderr + run.stdout


# -- the decision table ---------------------------------------------------------------------------
NOW = 1_800_000_000.0  # the decisions' clock
ON_LIST = config.AccessSettings(sql_users=["Alice@Example.com", "svc-42"], sql_groups=["dba"])
ALICE = Viewer(
    logged_in=True, subject="a-1", email="alice@example.COM", email_verified=True, groups=("dev",),
    logged_in_at=NOW - 60,
)  # fmt: skip
BY_SUBJECT = Viewer(logged_in=True, subject="svc-42", logged_in_at=NOW - 60)
BY_GROUP = Viewer(
    logged_in=True, subject="b-2", email="bob@example.com", groups=("dev", "dba"), logged_in_at=NOW - 60
)
OFF = Viewer(logged_in=True, subject="c-3", email="carol@example.com", groups=("dev",), logged_in_at=NOW)
UNVERIFIED = Viewer(logged_in=True, subject="m-4", email="alice@example.com", logged_in_at=NOW)
NOBODY = Viewer()


@pytest.mark.parametrize(
    ("login", "exposed", "when_exposed", "user", "allowed"),
    [
        # with login, only the list decides; exposure and sql_when_exposed do not matter
        *[
            (True, e, w, u, True)
            for e in (False, True)
            for w in (False, True)
            for u in (ALICE, BY_SUBJECT, BY_GROUP)
        ],
        *[
            (True, e, w, u, False)
            for e in (False, True)
            for w in (False, True)
            for u in (OFF, UNVERIFIED, NOBODY)
        ],
        # without login: anyone on loopback; beyond it, only with sql_when_exposed
        *[(False, False, w, u, True) for w in (False, True) for u in (NOBODY, OFF)],
        (False, True, False, NOBODY, False),
        (False, True, True, NOBODY, True),
    ],
)
def test_who_may_run_sql(login: bool, exposed: bool, when_exposed: bool, user: Viewer, allowed: bool) -> None:
    settings = ON_LIST.model_copy(update={"sql_when_exposed": when_exposed})
    said = access.may_run_sql(settings, login=login, exposed=exposed, user=user, now=NOW)
    assert said.allowed is allowed
    assert bool(said.reason) is not allowed and "\n" not in said.reason


def test_reasons_say_why() -> None:
    def reason(**kw: object) -> str:
        return access.may_run_sql(
            **{"settings": ON_LIST, "login": True, "exposed": False, "now": NOW, **kw}
        ).reason

    assert "carol@example.com" in reason(user=OFF)
    assert reason(user=NOBODY).startswith("Log in")
    empty = access.may_run_sql(config.AccessSettings(), login=True, exposed=False, user=ALICE, now=NOW)
    assert not empty.allowed and "empty" in empty.reason
    exposed = access.may_run_sql(config.AccessSettings(), login=False, exposed=True, user=NOBODY)
    assert "sql_when_exposed" in exposed.reason


def test_viewer_from_claims() -> None:
    assert access.viewer({"is_logged_in": False, "email": "x@y"}) == NOBODY
    found = access.viewer(
        {"is_logged_in": True, "sub": "s", "email": "e@x", "roles": "dba"}, groups_claim="roles"
    )
    assert found == Viewer(logged_in=True, subject="s", email="e@x", groups=("dba",))
    odd = access.viewer({"is_logged_in": True, "groups": ["a", 3, None, ""], "email": 7})
    assert odd.groups == ("a",) and odd.email is None


def test_exposed_without_login_hides_the_sql_parts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The app itself (AppTest), told by serve that it listens beyond loopback, without login."""
    dsn = "postgresql://nobody@127.0.0.1:1/none"
    targets = f"targets:\n  postgres:\n    - name: shop\n      dsn: {dsn}\n"
    config_file = empty_store_config(tmp_path, targets)
    at = open_page(monkeypatch, config_file, "investigate", exposed=True, sql=PROBE, target="shop")
    no_exception(at)
    assert not [b for b in at.button if b.label == "Explain"] and "Running SQL is off" in texts(at.info)
    at = open_page(monkeypatch, config_file, "investigate", sql=PROBE, target="shop")
    assert [b for b in at.button if b.label == "Explain"]


# -- serve: the exposure warning, the secrets file ----------------------------------------------------
def test_the_exposure_warning_tells_the_truth() -> None:
    assert config.exposure_warning("127.0.0.1", 8501) is None
    assert config.exposure_warning("0.0.0.0", 8501, login=True) is None
    off = config.exposure_warning("0.0.0.0", 8501)
    on = config.exposure_warning("10.0.0.5", 8501, sql_when_exposed=True)
    assert off and "without login" in off and "are off" in off
    assert (
        on
        and "without login" in on
        and "can also run the advisor and EXPLAIN" in on
        and "10.0.0.5:8501" in on
    )


def test_serve_tells_the_app_whether_it_is_exposed() -> None:
    defaults = config.from_dict({})
    assert serve_cmd._env(defaults, "0.0.0.0")[access.EXPOSED_ENV] == "1"
    assert serve_cmd._env(defaults, "127.0.0.1")[access.EXPOSED_ENV] == "0"
    # Streamlit's server.address decides; serve's "1" can only add exposure (see the test below).
    assert access.is_exposed({access.EXPOSED_ENV: "1"}, "127.0.0.1")
    assert access.is_exposed({}, "0.0.0.0") and access.is_exposed({}, "192.168.1.4")
    assert not access.is_exposed({}, "127.0.0.1")
    assert access.is_exposed({}, None) and access.is_exposed({}, "")  # bare `streamlit run`: all interfaces


def test_the_auth_secrets_are_valid_toml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CS", 'a"b\\c\x7f')  # refused: DEL is not printable ASCII
    monkeypatch.setenv("CK", "k" * 32)
    oidc = config.OidcLogin(
        server_metadata_url="https://id.example.com/.well-known/openid-configuration",
        client_id='odd "id" \\ \x7f é',
        client_secret_env="CS",
        cookie_secret_env="CK",
        scope="openid email groups",
    )
    with pytest.raises(config.ConfigError, match="CS") as err:
        serve_cmd.auth_secrets(oidc, "127.0.0.1", 8501)
    assert 'a"b' not in str(err.value)
    monkeypatch.setenv("CS", "a\"b\\c#'[x]")
    auth = tomllib.loads(serve_cmd.auth_secrets(oidc, "::1", 8501))["auth"]
    assert auth["client_secret"] == "a\"b\\c#'[x]" and auth["client_id"] == oidc.client_id
    assert auth["redirect_uri"] == "http://[::1]:8501/oauth2callback"
    assert auth["client_kwargs"] == {"scope": "openid email groups"}
    with pytest.raises(config.ConfigError, match="redirect_uri"):
        serve_cmd.auth_secrets(oidc, "0.0.0.0", 8501)
    given = oidc.model_copy(update={"redirect_uri": "https://obs.example.com/oauth2callback"})
    assert tomllib.loads(serve_cmd.auth_secrets(given, "0.0.0.0", 8501))["auth"]["redirect_uri"] == (
        "https://obs.example.com/oauth2callback"
    )


def test_the_access_section_is_checked() -> None:
    with pytest.raises(config.ConfigError, match=r"access\.oidc\.client_secret_env: required"):
        config.from_dict({"access": {"oidc": {"server_metadata_url": "https://x/", "client_id": "c",
                                              "cookie_secret_env": "K"}}})  # fmt: skip
    with pytest.raises(config.ConfigError, match=r"access\.sql_user: unknown key"):
        config.from_dict({"access": {"sql_user": ["a"]}})


# -- the hostile review's findings (issue 17), each a test that failed before its fix --------------------
def oidc_login(**update: object) -> config.OidcLogin:
    given = config.OidcLogin(
        server_metadata_url="https://id.example.com/.well-known/openid-configuration",
        client_id="c",
        client_secret_env="OBS_TEST_CLIENT_SECRET",
        cookie_secret_env="OBS_TEST_COOKIE_SECRET",
    )
    return given.model_copy(update=update)


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRET_ENV.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def own_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """tempfile's folder is `tmp_path` for this test (the private folder goes in it)."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def decide(claims: dict, settings: config.AccessSettings = ON_LIST) -> access.Decision:
    user = access.viewer({"is_logged_in": True, "iat": NOW - 60, **claims})
    return access.may_run_sql(settings, login=True, exposed=True, user=user, now=NOW)


def test_a_second_serve_on_a_busy_port_writes_nothing(world: dict, tmp_path: Path) -> None:
    """The running app's port: the second start stops with one line, before writing any secrets (it
    once rewrote the running app's auth-PORT.toml, which Streamlit reloads)."""
    port = world["url"].rsplit(":", 1)[1]
    env = {**os.environ, **SECRET_ENV, "OBSERVATORY_CONFIG": str(world["config"]), "TMPDIR": str(tmp_path)}
    run = subprocess.run(
        [sys.executable, "-m", "dashboard", "serve", "--host", "127.0.0.1", "--port", port],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 2 and f"cannot listen on 127.0.0.1:{port}: in use" in run.stderr, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr
    assert not list(tmp_path.rglob("*.toml"))


def test_each_start_writes_its_own_secrets_file(secret_env: None, own_tmp: Path) -> None:
    first = serve_cmd.write_auth_secrets(oidc_login(), "127.0.0.1", 8501)
    second = serve_cmd.write_auth_secrets(oidc_login(), "127.0.0.1", 8501)
    assert first != second and first.parent == second.parent == own_tmp / f"observatory-{os.getuid()}"
    assert first.read_text() == second.read_text() and stat.S_IMODE(first.stat().st_mode) == 0o600


def test_a_named_provider_without_its_secrets_fails_closed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """access.provider names [auth.corp] of the user's own secrets, which the app does not find:
    the reason alone, no data, no SQL parts (it once opened to everyone)."""
    targets = "targets:\n  postgres:\n    - name: shop\n      dsn: postgresql://nobody@127.0.0.1:1/none\n"
    config_file = empty_store_config(tmp_path, targets + "access:\n  provider: corp\n  sql_groups: [dba]\n")
    at = open_page(monkeypatch, config_file, "investigate", sql="SELECT 1", target="shop")
    no_exception(at)
    assert not at.button and not at.text_area and not at.sidebar.children
    assert "no usable [auth] secrets for 'corp'" in texts(at.error).replace("\\", "")
    assert config.AccessSettings(provider="corp").login and not config.AccessSettings().login


def test_a_short_cookie_secret_is_refused(
    monkeypatch: pytest.MonkeyPatch, secret_env: None, tmp_path: Path
) -> None:
    """A short key is found offline from one's own signed cookie, then a cookie with any groups is
    forged: under 32 characters is refused, the variable named, never the value."""
    monkeypatch.setenv("OBS_TEST_COOKIE_SECRET", "abc")
    with pytest.raises(config.ConfigError, match=r"OBS_TEST_COOKIE_SECRET.*32") as err:
        serve_cmd.auth_secrets(oidc_login(), "127.0.0.1", 8501)
    assert "abc" not in str(err.value)
    own = tmp_path / "secrets.toml"  # the user's own [auth] is held to the same
    own.write_text('[auth]\ncookie_secret = "Qz7"\nredirect_uri = "http://localhost:8501/oauth2callback"\n')
    with pytest.raises(config.ConfigError, match="cookie_secret must be at least 32") as err:
        serve_cmd.check_own_auth([own], "127.0.0.1")
    assert "Qz7" not in str(err.value)


@pytest.mark.parametrize("verified", ["false", "False", None, "yes", 1, "", "true "])
def test_an_email_counts_only_when_verified(verified: object) -> None:
    claims = {"sub": "m-1", "email": "alice@example.com"}
    said = decide({**claims, **({} if verified is None else {"email_verified": verified})})
    assert said.allowed is (verified == "true ")  # "true" in any case, spaces around allowed
    assert decide({**claims, "email_verified": True}).allowed
    assert decide({**claims, "email_verified": "TRUE"}).allowed


def test_subjects_and_emails_are_apart() -> None:
    """An entry with "@" is an email (verified), any other a subject: a provider whose `sub` is
    chosen by the user must not let sub="alice@example.com" in."""
    assert not decide({"sub": "Alice@Example.com", "email": "m@evil.test", "email_verified": True}).allowed
    assert not decide({"sub": "alice@example.com"}).allowed
    assert not decide({"sub": "x", "email": "svc-42", "email_verified": True}).allowed
    assert decide({"sub": "svc-42"}).allowed and not decide({"sub": "SVC-42"}).allowed  # subjects exact


@pytest.mark.parametrize("email", ["ſam@example.com", "straße@example.com", "\u212aate@example.com"])
def test_unicode_lookalikes_do_not_match(email: str) -> None:
    settings = config.AccessSettings(sql_users=["sam@example.com", "strasse@example.com", "kate@example.com"])
    assert not decide({"sub": "x", "email": email, "email_verified": True}, settings).allowed
    assert decide({"sub": "x", "email": "KATE@example.COM", "email_verified": True}, settings).allowed
    assert access.ascii_lower("ÄBC\u212a") == "Äbc\u212a"


def test_an_old_login_must_log_in_again() -> None:
    """Streamlit's cookie keeps the login's claims (groups included) 30 days: SQL only within
    access.max_login_age of the login (auth_time, else iat); a login without a time never."""
    group = {"sub": "b", "groups": ["dba"]}
    fresh, stale = decide({**group, "iat": NOW - 3600}), decide({**group, "iat": NOW - 29 * 86400})
    assert fresh.allowed and not stale.allowed and stale.login_again
    assert "older than 12 h" in stale.reason and "log in again" in stale.reason
    assert not decide({**group, "iat": NOW - 60, "auth_time": NOW - 13 * 3600}).allowed  # auth_time wins
    undated = access.may_run_sql(
        ON_LIST, login=True, exposed=False, now=NOW, user=access.viewer({"is_logged_in": True, **group})
    )
    assert not undated.allowed and undated.login_again and "no iat" in undated.reason
    assert not decide({**group, "iat": "1799999999"}).allowed  # not a number
    longer = ON_LIST.model_copy(update={"max_login_age": 30 * 86400.0})
    assert decide({**group, "iat": NOW - 29 * 86400}, longer).allowed
    assert config.from_dict({"access": {"max_login_age": "2h"}}).access.max_login_age == 7200
    off = decide({"sub": "c", "groups": ["dev"], "iat": NOW - 29 * 86400})
    assert not off.allowed and not off.login_again  # not on the list: a new login changes nothing


def test_serve_removes_its_secrets_file_when_stopped(world: dict, tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    env = {**os.environ, **SECRET_ENV, "OBSERVATORY_CONFIG": str(world["config"]), "TMPDIR": str(tmp_path)}
    port = free_port()
    with observatory_serve(["--port", str(port)], env, log, f"http://127.0.0.1:{port}"):
        written = Path(re.search(r"secrets written to (\S+) \(mode 0600\)", log.read_text()).group(1))
        assert written.is_file() and written.parent.parent == tmp_path
    assert not written.exists(), log.read_text()[-2000:]  # SIGTERM to serve and the app: the file goes


def test_files_of_dead_starts_are_swept(own_tmp: Path, secret_env: None) -> None:
    """A `serve` killed with SIGKILL cleans nothing: the next start removes files of starts whose
    `serve` is gone and that no running process names."""
    folder = serve_cmd.private_folder()
    gone = folder / "auth-999999999-x1.toml"
    mine = folder / f"auth-{os.getpid()}-x2.toml"
    named = folder / "auth-999999998-x3.toml"
    for path in (gone, mine, named):
        path.write_text("[auth]\n")
    # an app that outlived its serve: its command line names the file
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", str(named)])
    try:
        deadline = time.monotonic() + 10  # its command line, as /proc shows it once it runs
        while str(named).encode() not in serve_cmd._named_by_processes():
            assert time.monotonic() < deadline, "the holder's command line never showed the file"
            time.sleep(0.05)
        written = serve_cmd.write_auth_secrets(oidc_login(), "127.0.0.1", 8501)
        assert not gone.exists() and mine.exists() and named.exists() and written.exists()
    finally:
        holder.kill()
        holder.wait()


def test_a_folder_someone_else_made_is_passed_by(own_tmp: Path, secret_env: None) -> None:
    """Another user may make /tmp/observatory-UID first (we could not remove it from a sticky /tmp):
    a fresh private folder instead, removed with the file."""
    squat = own_tmp / f"observatory-{os.getuid()}"
    squat.mkdir()
    os.chmod(squat, 0o755)  # not private: stands for someone else's too (the same check)
    path = serve_cmd.write_auth_secrets(oidc_login(), "127.0.0.1", 8501)
    assert path.parent != squat and path.parent.parent == own_tmp
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700 and not list(squat.iterdir())
    serve_cmd.remove_secrets(path)
    assert not path.parent.exists()


def test_login_beyond_loopback_needs_https(secret_env: None) -> None:
    with pytest.raises(config.ConfigError, match="needs an https:// redirect_uri"):
        serve_cmd.auth_secrets(oidc_login(), "10.0.0.5", 8501)  # would be http://10.0.0.5:8501/...
    plain = oidc_login(redirect_uri="http://obs.example.com/oauth2callback")
    with pytest.raises(config.ConfigError, match="https"):
        serve_cmd.auth_secrets(plain, "127.0.0.1", 8501)  # a reverse proxy in clear
    proxied = oidc_login(redirect_uri="https://obs.example.com/oauth2callback")
    for host in ("127.0.0.1", "10.0.0.5", "0.0.0.0"):
        serve_cmd.auth_secrets(proxied, host, 8501)
    for everywhere in ("::", "0.0.0.0", "::0", "0:0:0:0:0:0:0:0", "[::]", ""):
        assert config.is_unspecified(everywhere) and not config.is_loopback(everywhere)
        with pytest.raises(config.ConfigError, match="required when serving on every interface"):
            serve_cmd.auth_secrets(oidc_login(), everywhere, 8501)
        assert ":8501 (every interface)" in (config.exposure_warning(everywhere, 8501) or "")
    assert not config.is_unspecified("10.0.0.5") and not config.is_unspecified("::1")


def test_an_inherited_exposed_0_never_hides_a_public_address() -> None:
    """`streamlit run --server.address 0.0.0.0` in a shell with OBSERVATORY_EXPOSED=0 (copied from a
    unit's Environment=): still exposed. The variable only adds exposure."""
    for address in ("0.0.0.0", "10.0.0.5", "::", None, ""):
        assert access.is_exposed({access.EXPOSED_ENV: "0"}, address)
    assert not access.is_exposed({access.EXPOSED_ENV: "0"}, "127.0.0.1")


def test_a_cross_target_link_explains_nothing_on_opening(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`?id=N` of a statement recorded on erp explains it at once, on erp only; a crafted
    `&target=other` (or `&db=`) fills the form and waits for a click. Both targets refuse connections
    (port 1): an attempt shows as an error."""
    nowhere = "postgresql://nobody@127.0.0.1:1/none"
    targets = "targets:\n  postgres:\n" + "".join(
        f"    - name: {name}\n      dsn: {nowhere}\n" for name in ("erp", "other")
    )
    config_file = empty_store_config(tmp_path, targets)
    store = Store(config.load(config_file).store)
    store.write_cycle(cycle(T0, {1: 3}))
    text = cycle(T0, {1: 1}).texts[key(1)]
    sid = statement_ids_by_text(store.engine, store.target_id("postgres", "erp"), [text])[text]
    store.engine.dispose()
    at = open_page(monkeypatch, config_file, "investigate", id=str(sid))
    no_exception(at)
    assert at.error, "the statement's own target is asked at once (and refuses)"
    for crafted in ({"target": "other"}, {"db": "postgres"}):
        at = open_page(monkeypatch, config_file, "investigate", id=str(sid), **crafted)
        no_exception(at)
        assert not at.error and [b for b in at.button if b.label == "Explain"], crafted
        assert at.text_area[0].value == text  # the statement is shown
