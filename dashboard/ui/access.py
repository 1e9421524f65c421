"""The login and the guard of the SQL-running parts, on the page side (the decision is
dashboard.core.access's).

Login is Streamlit's OIDC (`st.login`, Authlib): on when the configuration has `access.oidc` (and
`observatory serve` wrote Streamlit's [auth] secrets from it) or `access.provider` (a provider of the
user's own secrets), or Streamlit's own secrets hold [auth]. When the configuration asks for login and
Streamlit's [auth] is missing or unusable, the app shows why and nothing else (fails closed).
"""

from __future__ import annotations

import os

import streamlit as st
from streamlit import auth_util
from streamlit.errors import StreamlitAuthError

from dashboard.core import access
from dashboard.core.config import Config
from dashboard.ui import frame as ui

MIN_COOKIE_SECRET = 32  # characters; dashboard.cli.serve refuses shorter ones too


def _streamlit_auth() -> bool:
    """Whether Streamlit has an [auth] section: then `st.user` always says whether one is logged in."""
    return "is_logged_in" in st.user


def login_required(config: Config) -> bool:
    return config.access.login or _streamlit_auth()


def auth_problem(config: Config) -> str | None:
    """Why Streamlit's [auth] secrets cannot log anyone in for this configuration, or None."""
    provider = config.access.provider or "default"
    try:
        auth_util.validate_auth_credentials(provider)
    except StreamlitAuthError:  # its text names files, never values
        if config.access.oidc is not None:
            fix = "start the dashboard with `observatory serve`, which writes them from access.oidc"
        else:
            fix = "check .streamlit/secrets.toml in the app's working folder (or your home folder)"
        return f"Login is configured but Streamlit has no usable [auth] secrets for '{provider}': {fix}."
    cookie_secret = auth_util.get_secrets_auth_section().get("cookie_secret")
    if not isinstance(cookie_secret, str) or len(cookie_secret) < MIN_COOKIE_SECRET:
        return f"Login is configured but [auth] cookie_secret is shorter than {MIN_COOKIE_SECRET} characters."
    return None


def gate(config: Config) -> bool:
    """Drawn before anything else: True when the app may go on. With login, a visitor not logged in
    gets the login button alone; a logged-in one a logout button in the sidebar. Login asked for but
    not usable: the reason alone (fail closed)."""
    if not login_required(config):
        return True
    problem = auth_problem(config)
    if problem is not None:
        st.error(
            ui.md_escape(problem) + " Start the dashboard with `observatory serve`.", icon=":material/lock:"
        )
        return False
    if st.user.is_logged_in:
        _account(config)
        return True
    st.title("Performance observatory")
    st.caption("Log in to see the databases, caches and services it watches. Nothing is shown before.")
    st.button(
        "Log in", type="primary", icon=":material/login:", on_click=_login, args=(config.access.provider,)
    )
    return False


def _login(provider: str | None) -> None:
    st.login(provider) if provider else st.login()


def _account(config: Config) -> None:
    user = access.viewer(st.user.to_dict(), config.access.groups_claim)
    with st.sidebar:
        st.caption(f"Logged in as {ui.md_escape(user.email or user.subject or 'an unnamed account')}")
        st.button("Log out", icon=":material/logout:", on_click=st.logout)


def decision(config: Config) -> access.Decision:
    """May the person looking at this session run SQL on the targets?"""
    login = login_required(config)
    user = access.viewer(st.user.to_dict(), config.access.groups_claim) if login else access.Viewer()
    return access.may_run_sql(config.access, login=login, exposed=_exposed(), user=user)


def _exposed() -> bool:
    return access.is_exposed(os.environ, st.get_option("server.address"))


def sql_allowed(config: Config) -> bool:
    """The guard of a SQL-running part: True to draw it; else its one-line reason is drawn instead."""
    said = decision(config)
    if not said.allowed:
        st.info(ui.md_escape(said.reason), icon=":material/lock:")
    if said.login_again:
        st.button("Log in again", icon=":material/login:", on_click=_login, args=(config.access.provider,))
    return said.allowed


def require_sql(config: Config) -> None:
    """The last check before a call that sends SQL to a target: PermissionError when not allowed."""
    said = decision(config)
    if not said.allowed:
        raise PermissionError(said.reason)
