"""Who may run SQL from the dashboard: the decision, free of Streamlit (dashboard.ui.access asks it).

The SQL-running parts are the Indexes paste box, Investigate's Explain (an estimated plan sends
EXPLAIN to the server too), EXPLAIN ANALYZE and "Fill with sample values". The rest of the app only
reads the store.

- With login (Streamlit's OIDC `st.login`): a user on `access.sql_users` (an entry with "@" is an
  email, matched only when verified, ASCII letters in any case; any other entry a subject, matched
  exactly) or in one of `access.sql_groups` may, while the login is younger than
  `access.max_login_age`; anyone else logged in reads, and nobody who is not logged in sees anything
  (the app shows its login button alone).
- Without login, on a loopback address: anyone who reaches the app may (it is this machine's).
- Without login, on any other address: nobody, unless `access.sql_when_exposed: true`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from dashboard.core.config import AccessSettings, is_loopback

EXPOSED_ENV = "OBSERVATORY_EXPOSED"  # "1": `observatory serve` listens beyond loopback
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


@dataclass(frozen=True)
class Viewer:
    """The person looking at the app, as the ID token describes them (None fields: not given)."""

    logged_in: bool = False
    subject: str | None = None
    email: str | None = None
    email_verified: bool = False  # only an explicit true (or "true") counts
    groups: tuple[str, ...] = ()
    logged_in_at: float | None = None  # the ID token's auth_time, else iat (epoch seconds)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""  # one line, for the page, when not allowed
    login_again: bool = False  # refused only because the login is too old (or undated)


def viewer(claims: Mapping[str, object], groups_claim: str = "groups") -> Viewer:
    """A Viewer from `st.user`'s claims (a mapping with is_logged_in, sub, email, groups...)."""
    if not claims.get("is_logged_in"):
        return Viewer()
    return Viewer(
        logged_in=True,
        subject=_text(claims.get("sub")),
        email=_text(claims.get("email")),
        email_verified=_true(claims.get("email_verified")),
        groups=_groups(claims.get(groups_claim)),
        logged_in_at=_epoch(claims.get("auth_time")) or _epoch(claims.get("iat")),
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _true(value: object) -> bool:
    """A boolean claim: some providers (Apple, Cognito's userinfo) send "true"/"false" strings."""
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _epoch(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value or value <= 0:
        return None
    return float(value)


def _groups(value: object) -> tuple[str, ...]:
    """A groups claim is a list of names in most providers, a single string in some."""
    if isinstance(value, str):
        return (value,) if value else ()
    if isinstance(value, list | tuple):
        return tuple(v for v in value if isinstance(v, str) and v)
    return ()


def ascii_lower(text: str) -> str:
    """`text` with A-Z lowered and nothing else touched: no non-ASCII letter folds into an ASCII one
    (casefold turns "ſ" into "s", "ß" into "ss", the Kelvin sign into "k")."""
    return text.translate(_ASCII_LOWER)


def on_list(settings: AccessSettings, user: Viewer) -> bool:
    """Whether `user` is named in `sql_users` (an entry with "@" by verified email, any other by
    subject) or is in a group of `sql_groups`."""
    emails = {ascii_lower(u) for u in settings.sql_users if "@" in u}
    subjects = {u for u in settings.sql_users if "@" not in u}
    if user.subject is not None and user.subject in subjects:
        return True
    if user.email is not None and user.email_verified and ascii_lower(user.email) in emails:
        return True
    return bool(set(settings.sql_groups) & set(user.groups))


def login_age(settings: AccessSettings, user: Viewer, now: float) -> str | None:
    """Why the login is too old to run SQL with, or None when it is fresh enough. Its claims (groups
    included) are those of the login, kept in Streamlit's cookie for 30 days."""
    if user.logged_in_at is None:
        return "This login carries no time (no iat claim in the ID token): log in again to run SQL."
    if now - user.logged_in_at > settings.max_login_age:
        hours = settings.max_login_age / 3600
        return f"This login is older than {hours:g} h (access.max_login_age): log in again to run SQL."
    return None


def may_run_sql(
    settings: AccessSettings, *, login: bool, exposed: bool, user: Viewer, now: float | None = None
) -> Decision:
    """May `user` run SQL on the targets? `login`: the app asks for a login; `exposed`: it listens
    on an address other than loopback; `now`: epoch seconds (default: the clock)."""
    if login:
        if not user.logged_in:
            return Decision(False, "Log in to run SQL on the targets.")
        if on_list(settings, user):
            stale = login_age(settings, user, time.time() if now is None else now)
            return Decision(True) if stale is None else Decision(False, stale, login_again=True)
        if not settings.sql_users and not settings.sql_groups:
            return Decision(
                False, "Running SQL is off for everyone: access.sql_users and access.sql_groups are empty."
            )
        who = user.email or user.subject or "this account"
        return Decision(
            False,
            f"Read-only for {who}: running SQL is for the users and groups of access.sql_users / sql_groups.",
        )
    if not exposed or settings.sql_when_exposed:
        return Decision(True)
    return Decision(
        False,
        "Running SQL is off: the dashboard is served beyond this machine without login "
        "(configure access.oidc, or set access.sql_when_exposed: true).",
    )


def is_exposed(environ: Mapping[str, str], address: str | None) -> bool:
    """Whether the app listens beyond loopback: as Streamlit's server.address says (a bare
    `streamlit run` has no address and listens on every interface), or as `observatory serve` said
    ($OBSERVATORY_EXPOSED=1). The variable only ever adds exposure: an inherited "0" never makes a
    public address private."""
    return environ.get(EXPOSED_ENV) == "1" or not address or not is_loopback(address)
