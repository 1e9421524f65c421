"""Keeping passwords out of the UI, logs and error messages.

Everything that shows a DSN or an error from a driver goes through here first.
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit, urlunsplit

from psycopg.conninfo import conninfo_to_dict, make_conninfo

_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@\s]*)@", re.I)
_KV_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.I)


def redact(text: str, *secrets: str | None) -> str:
    """Remove passwords from URLs, key=value conninfo strings and any known secret values."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    text = _KV_PASSWORD.sub(r"\1***", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def password_of(dsn: str) -> str | None:
    try:
        return conninfo_to_dict(dsn).get("password")
    except Exception:
        parts = urlsplit(dsn)
        return parts.password


def describe_dsn(dsn: str) -> str:
    """A short, password-free description: 'monitor@db1:5432/erp'."""
    try:
        info = conninfo_to_dict(dsn)
    except Exception:
        parts = urlsplit(dsn)
        return redact(urlunsplit(parts._replace(query="")))
    user = info.get("user", "")
    host = info.get("host", "local socket")
    port = f":{info['port']}" if info.get("port") else ""
    return f"{user + '@' if user else ''}{host}{port}/{info.get('dbname', '')}"


def postgres_conninfo(dsn: str, password_env: str | None = None, **extra: object) -> str:
    """The DSN plus extra libpq parameters; the password comes from `password_env` when named."""
    params: dict[str, object] = dict(extra)
    if password_env:
        value = os.environ.get(password_env)
        if value is None:
            raise ValueError(f"environment variable {password_env} (password_env) is not set")
        params["password"] = value
    return make_conninfo(dsn, **params)
