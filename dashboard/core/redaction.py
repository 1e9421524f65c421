"""Keeping passwords out of the UI, logs and error messages.

Everything that shows a DSN or an error from a driver goes through here first.

- `redact(text, *secrets)`: URL passwords, ``password=...`` conninfo values and every form a known
  secret can take in a message (raw, stripped, repr/JSON-escaped, URL-quoted).
- `statement_redaction.redact_statement(text)`: the same for SQL text, and the literal after
  ``PASSWORD``.
- `secret_from_env(variable, key)`: a secret read from the environment, stripped and checked.
- `known_secrets(config)`: every secret the configuration refers to, through the fields it marks
  with `config.Secret` (what the CLI takes out of its logs and stderr).
"""

from __future__ import annotations

import json
import logging
import os
import re
import unicodedata
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, quote_plus, unquote, urlsplit, urlunsplit

from psycopg.conninfo import conninfo_to_dict, make_conninfo
from pydantic import BaseModel

from dashboard.core.config import Secret, secret_fields

# Linear on any input: a scheme starts where a run of scheme characters does and is bounded, and
# neither user nor password runs past the '/' of the next "://", so no two attempts scan the same
# long stretch. The password is everything up to the last '@' of the authority, as urlsplit reads it.
URL_PASSWORD = re.compile(
    r"(?P<scheme>(?<![a-z0-9+.-])[a-z][a-z0-9+.-]{0,63}://)(?P<user>[^:/@\s]*):(?P<pw>[^\s/]*)@", re.I
)
_KV_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.I)
# In SQL text, applied to the content of literals and comments only (password = crypt($1, password)
# in code is no secret): a conninfo in a literal ('host=a password=x', or ''x y'' quoted in it).
MASK = "***"


# -- known secrets ----------------------------------------------------------------------------------
def secret_forms(secret: str) -> list[str]:
    """Every way `secret` can show up in a message, longest first: as is, without surrounding
    whitespace, escaped by repr() or JSON (a newline as \\n), URL-quoted, or as bytes' repr."""
    forms: set[str] = set()
    for s in {secret, secret.strip()}:
        if not s.strip():  # whitespace alone is no secret to hunt for in every message
            continue
        forms.update((s, repr(s)[1:-1], ascii(s)[1:-1], json.dumps(s)[1:-1]))
        forms.update((json.dumps(s, ensure_ascii=False)[1:-1], quote(s, safe=""), quote(s), quote_plus(s)))
        forms.add(repr(s.encode("utf-8", "backslashreplace"))[2:-1])
    return sorted((f for f in forms if f), key=len, reverse=True)


def redact_secrets(text: str, *secrets: str | None) -> str:
    """`text` with every form of the given secrets replaced by ***, nothing else changed."""
    for secret in secrets:
        if secret:
            for form in secret_forms(secret):
                text = text.replace(form, MASK)
    return text


def redact(text: str, *secrets: str | None) -> str:
    """Remove passwords from URLs, key=value conninfo strings and any known secret values."""
    text = text if isinstance(text, str) else str(text)
    text = URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    text = _KV_PASSWORD.sub(rf"\1{MASK}", text)
    return redact_secrets(text, *secrets)


# -- secrets from the environment -------------------------------------------------------------------
class SecretError(ValueError):
    """A secret variable that is unset or unusable. The message names the variable, never its value."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


def _unusable(char: str) -> bool:
    return char.isspace() or unicodedata.category(char) in ("Cc", "Cf", "Cs", "Zl", "Zp")


def secret_from_env(variable: str, key: str = "password_env", *, ascii_only: bool = False) -> str:
    """The value of `variable` without surrounding whitespace (a trailing newline from
    ``export X="$(cat file)"``). Raises SecretError when it is unset, empty, or has whitespace or a
    control character inside (or, with `ascii_only`, anything but printable ASCII)."""
    value = os.environ.get(variable)
    where = f"environment variable {variable} ({key})"
    if value is None:
        raise SecretError(f"{where} is not set", "export the variable before starting the collector")
    secret = value.strip()
    if not secret:
        raise SecretError(f"{where} is empty", f"set {variable} to the secret")
    if any(_unusable(c) for c in secret):
        raise SecretError(
            f"{where} has whitespace or a control character inside its value",
            f'set {variable} to the secret alone, on one line (e.g. export {variable}="$(head -n 1 FILE)")',
        )
    if ascii_only and not (secret.isascii() and secret.isprintable()):
        raise SecretError(
            f"{where} has characters outside printable ASCII", f"{key} must hold the token alone, in ASCII"
        )
    return secret


def env_values(*variables: str | None) -> list[str]:
    """The raw values of the variables that are set (to redact them, whatever they hold)."""
    return [v for v in (os.environ.get(name) for name in variables if name) if v]


def known_secrets(config: BaseModel) -> list[str]:
    """Every secret a configuration refers to, through the fields its models mark with `Secret`
    (the store, every target of every source, anything nested): the password of a DSN or URL
    (also percent-decoded) and the value of a variable a ``*_env`` field names."""
    return list(dict.fromkeys(s for s in _secrets_in(config) if s))


def _secrets_in(value: object) -> Iterator[str | None]:
    if isinstance(value, list | tuple):
        for item in value:
            yield from _secrets_in(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _secrets_in(item)
    elif isinstance(value, BaseModel):
        marked = secret_fields(type(value))
        for name in type(value).model_fields:
            field = getattr(value, name)
            if marked.get(name) is Secret.URL and field:
                password = password_of(field)
                yield from (password, unquote(password or ""))
            elif marked.get(name) is Secret.ENV and field:
                yield from env_values(field)
            else:
                yield from _secrets_in(field)


class SecretFilter(logging.Filter):
    """Takes the known secrets out of every log record (message, arguments and traceback)."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = secrets  # the caller's list: secrets it adds later are taken out too

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep what it said, unformatted
            message = f"{record.msg} {record.args}"
        record.msg, record.args = redact(message, *self.secrets), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, *self.secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, *self.secrets)
        return True


class RedactingStream:
    """A text stream (stderr) that writes every string without the known secrets."""

    def __init__(self, stream: Any, secrets: list[str]) -> None:
        self._stream, self.secrets = stream, secrets  # the caller's list, as SecretFilter

    def write(self, text: str) -> int:
        self._stream.write(redact_secrets(text, *self.secrets) if self.secrets else text)
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


# -- DSNs -------------------------------------------------------------------------------------------
def password_of(dsn: str) -> str | None:
    try:
        return conninfo_to_dict(dsn).get("password")
    except Exception:
        try:
            return urlsplit(dsn).password
        except ValueError:
            return None


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
    """The DSN plus extra libpq parameters; the password comes from `password_env` when named
    (stripped of surrounding whitespace; SecretError when unset or unusable)."""
    params: dict[str, object] = dict(extra)
    if password_env:
        params["password"] = secret_from_env(password_env, "password_env")
    return make_conninfo(dsn, **params)
