"""Keeping passwords out of the UI, logs and error messages.

Everything that shows a DSN or an error from a driver goes through here first.

- `redact(text, *secrets)`: URL passwords, ``password=...`` conninfo values and every form a known
  secret can take in a message (raw, stripped, repr/JSON-escaped, URL-quoted).
- `redact_statement(text)`: the same for SQL text recorded by ``pg_stat_statements``, plus the
  literal after ``PASSWORD`` (``CREATE ROLE x PASSWORD '...'``), at any quoting depth.
- `secret_from_env(variable, key)`: a secret read from the environment, stripped and checked.
"""

from __future__ import annotations

import json
import logging
import os
import re
import unicodedata
from typing import Any
from urllib.parse import quote, quote_plus, unquote, urlsplit, urlunsplit

from psycopg.conninfo import conninfo_to_dict, make_conninfo

# Linear on any input: a scheme starts where a run of scheme characters does and is bounded, and
# neither user nor password runs past the '/' of the next "://", so no two attempts scan the same
# long stretch. The password is everything up to the last '@' of the authority, as urlsplit reads it.
_URL_PASSWORD = re.compile(
    r"(?P<scheme>(?<![a-z0-9+.-])[a-z][a-z0-9+.-]{0,63}://)(?P<user>[^:/@\s]*):(?P<pw>[^\s/]*)@", re.I
)
_KV_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.I)
# In SQL text, applied to the content of literals and comments only (password = crypt($1, password)
# in code is no secret): a conninfo in a literal ('host=a password=x', or ''x y'' quoted in it).
_SQL_KV_PASSWORD = re.compile(
    r"(password\s*=\s*)(?!\$\d)(''(?:[^']|'(?!'))*''|'(?:[^'\\]|\\.|'')*'|(?:[^\s'\\]|\\.|'')+)", re.I
)
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
    text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
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


def known_secrets(config: Any) -> list[str]:
    """Every secret a configuration refers to: passwords in DSNs and URLs (also percent-decoded),
    and the values of password_env and bearer_token_env variables."""
    found: list[str | None] = [password_of(config.store)]
    targets = config.targets
    for t in (*targets.postgres, *targets.redis, *targets.prometheus):
        url = getattr(t, "dsn", None) or getattr(t, "url", "")
        password = password_of(url)
        found += [password, unquote(password or "")]
        found += env_values(t.password_env, getattr(t, "bearer_token_env", None))
    return list(dict.fromkeys(s for s in found if s))


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


# -- SQL text ---------------------------------------------------------------------------------------
_PASSWORD_WORD = re.compile(r"\bpassword\b", re.I)
_PASSWORD_ANY = re.compile("password", re.I)  # also PGPASSWORD=, for the conninfo pattern
_WORTH_SCANNING = re.compile(r'password|u&"', re.I)  # U&"p\0061ssword" names the option too
_TOKEN = re.compile(
    r"(?P<word>\bpassword\b)|(?P<estring>\b[eE]')|(?P<quote>'+)|(?P<ident>\")"
    r"|(?P<dollar>(?<![\w$])\$(?:[^\W\d]\w*)?\$)|(?P<line>--)|(?P<block>/\*)",
    re.I,
)
_DOLLAR = re.compile(r"\$(?:[^\W\d]\w*)?\$")
_QUOTES = re.compile(r"'+")
_SPACE = re.compile(r"\s*")
_BLANKS = re.compile(r"[ \t\n\r\f\v]*")  # whitespace as PostgreSQL's scanner reads it
_NEWLINE = re.compile(r"[\n\r]")
_ESCAPE_OR_QUOTE = re.compile(r"[\\']")
_COMMENT_MARK = re.compile(r"/\*|\*/")
_UESCAPE = re.compile(r"uescape\b", re.I)
MAX_DEPTH = 8  # strings in dollar quotes in strings...: deeper than this is left as it is
MAX_NAME = 100  # a quoted identifier longer than this names no password option, even in U& escapes


def redact_statement(text: str) -> str:
    """SQL text with the literal after every PASSWORD keyword replaced by '***' (CREATE/ALTER
    ROLE/USER ... [ENCRYPTED] PASSWORD '...', E'...', $$...$$, $tag$...$tag$; also inside DO blocks,
    function bodies and EXECUTE strings, where quotes are doubled), and after every "password"
    option name, quoted or not (OPTIONS ("password" '...'), SET/ADD password '...'), whatever
    whitespace and comments stand between them; a literal continued on the next line ('a'
    newline 'b') is masked whole. Also password=... in literals and comments (conninfo strings) and
    URL passwords, as `redact` does. Linear in the length of the text; never raises."""
    text = text if isinstance(text, str) else str(text)
    try:
        if _WORTH_SCANNING.search(text):
            spans: list[tuple[int, int, str]] = []
            _scan(text, 0, len(text), 1, 0, spans)
            text = _replace(text, spans)
        return _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    except Exception:  # never expected; if it happens, show nothing after the first "password"
        found = _WORTH_SCANNING.search(text)
        return redact(text[: found.start()] + f"PASSWORD {MASK} (rest withheld)" if found else text)


Spans = list[tuple[int, int, str]]  # (start, end, what replaces text[start:end])


def _replace(text: str, spans: Spans) -> str:
    out, at = [], 0
    for start, end, replacement in sorted(spans):
        if start < at:  # inside one already replaced
            continue
        out += [text[at:start], replacement]
        at = end
    out.append(text[at:])
    return "".join(out)


def _conninfo(text: str, lo: int, hi: int, spans: Spans) -> None:
    """password=... in text[lo:hi], the content of a literal or comment."""
    spans += [(m.start(2), m.end(2), MASK) for m in _SQL_KV_PASSWORD.finditer(text, lo, hi)]


def _scan(text: str, lo: int, hi: int, width: int, depth: int, spans: Spans) -> None:
    """Find PASSWORD literals in text[lo:hi], SQL code in which one quote is written as `width`
    quotes (1 at top level, 2 inside a string literal, 4 inside a string in a string...), and
    password=... in the literals and comments in it."""
    if not _WORTH_SCANNING.search(text, lo, hi):
        return
    pos = lo
    while pos < hi:
        m = _TOKEN.search(text, pos, hi)
        if m is None:
            return
        kind, start = m.lastgroup, m.start()
        if kind == "word":
            literal = _literal_at(text, _skip_blank(text, m.end(), hi), hi, width)
            pos = _mask(text, m.end(), literal, width, depth, spans)
        elif kind == "quote" or (kind == "estring" and width > 1):
            start = text.index("'", start)
            run = _QUOTES.match(text, start, hi).end() - start
            if run < width:  # a stray quote at this depth
                pos = start + run
                continue
            content_end, pos = _string_end(text, start + width, hi, width)
            _conninfo(text, start + width, content_end, spans)
            if depth < MAX_DEPTH:
                _scan(text, start + width, content_end, width * 2, depth + 1, spans)
        elif kind == "estring":
            content: int | None = m.end()
            while content is not None:  # E'a\'' newline 'b\'c': the continuation is an E string too
                pos = _estring_end(text, content, hi)
                _conninfo(text, content, pos, spans)
                content = _continuation(text, pos, hi, 1)
        elif kind == "ident":
            pos = _identifier_end(text, m.end(), hi)
            pos = _mask(text, pos, _option_value(text, start, pos, hi, width), width, depth, spans)
        elif kind == "dollar":
            close = text.find(m.group(), m.end(), hi)
            body_end = hi if close < 0 else close
            _conninfo(text, m.end(), body_end, spans)  # a dollar-quoted string, or a body
            if depth < MAX_DEPTH:  # a body (DO, CREATE FUNCTION) is code at the same quoting
                _scan(text, m.end(), body_end, width, depth + 1, spans)
            pos = hi if close < 0 else close + len(m.group())
        else:  # a comment: scanned on its own, so a quote in it cannot mislead the rest
            end = _comment_end(text, m.end(), hi, kind == "block")
            _conninfo(text, m.end(), end, spans)
            if depth < MAX_DEPTH:
                _scan(text, m.end(), end, width, depth + 1, spans)
            pos = end


def _mask(
    text: str, after: int, literal: tuple[int, int] | None, width: int, depth: int, spans: Spans
) -> int:
    """Mask `literal`, the value of a password named up to `after`; where the scan goes on."""
    if literal is None:
        return after
    _scan(text, after, literal[0], width, depth, spans)  # the comments in between
    spans.append((*literal, "'" * width + MASK + "'" * width))
    return literal[1]


def _skip_blank(text: str, pos: int, hi: int) -> int:
    """The end of the whitespace, -- comments and (nested) /* */ comments at `pos`."""
    while True:
        pos = _SPACE.match(text, pos, hi).end()
        if text.startswith("--", pos, hi):
            pos = _comment_end(text, pos + 2, hi, False)
        elif text.startswith("/*", pos, hi):
            pos = _comment_end(text, pos + 2, hi, True)
        else:
            return pos


def _option_value(text: str, start: int, end: int, hi: int, width: int) -> tuple[int, int] | None:
    """The literal after text[start:end] when that quoted identifier is "password" in any case, or
    U&"..." spelling it with escapes (UESCAPE too), as an option name: OPTIONS ("password" '...')."""
    if not 10 <= end - start <= MAX_NAME or text[end - 1] != '"':
        return None
    name = text[start + 1 : end - 1].replace('""', '"')
    at = _skip_blank(text, end, hi)
    if text[max(start - 2, 0) : start] in ("U&", "u&"):
        escape = "\\"
        word = _UESCAPE.match(text, at, hi)
        if word is not None:
            quote, at = "'" * width, _skip_blank(text, word.end(), hi)
            if not (text.startswith(quote, at, hi) and text.startswith(quote, at + width + 1, hi)):
                return None
            escape, at = text[at + width], _skip_blank(text, at + 2 * width + 1, hi)
        name = _unicode_name(name, escape)
    return _literal_at(text, at, hi, width) if name.lower() == "password" else None


def _unicode_name(name: str, escape: str) -> str:
    code = re.escape(escape) + r"(?:(" + re.escape(escape) + r")|\+([0-9a-fA-F]{6})|([0-9a-fA-F]{4}))"
    return re.sub(code, lambda m: m[1] or chr(min(int(m[2] or m[3], 16), 0x10FFFF)), name)


def _literal_at(text: str, at: int, hi: int, width: int) -> tuple[int, int] | None:
    """(start, end) of the string literal starting at `at`, with the parts that continue it, or None
    when none starts there."""
    if at >= hi:
        return None
    char = text[at]
    if char == "'":
        run = _QUOTES.match(text, at, hi).end() - at
        return (at, _literal_end(text, at + width, hi, width)) if run >= width else None
    if width == 1 and char in "eE" and text.startswith("'", at + 1):
        return at, _literal_end(text, at + 2, hi, 1, extended=True)
    if width == 1 and char in "nN" and text.startswith("'", at + 1):
        return at, _literal_end(text, at + 2, hi, 1)
    if width == 1 and char in "uU" and text.startswith("&'", at + 1):
        return at, _literal_end(text, at + 3, hi, 1)
    if char == "$":
        tag = _DOLLAR.match(text, at, hi)
        if tag is not None:
            close = text.find(tag.group(), tag.end(), hi)
            return at, (hi if close < 0 else close + len(tag.group()))
    return None


def _literal_end(text: str, pos: int, hi: int, width: int, extended: bool = False) -> int:
    """End of a literal whose content starts at `pos`, and of the parts that continue it."""
    while True:
        end = _estring_end(text, pos, hi) if extended else _string_end(text, pos, hi, width)[1]
        after = _continuation(text, end, hi, width)
        if after is None:
            return end
        pos = after


def _continuation(text: str, pos: int, hi: int, width: int) -> int | None:
    """Where the content of the next part starts when the literal ending at `pos` goes on, or None.
    PostgreSQL joins 'a' and 'b' with only whitespace between them that holds a newline (and --
    comments, not /* */ ones) into one literal, 'ab'."""
    newline = False
    while True:
        end = _BLANKS.match(text, pos, hi).end()
        newline = newline or _NEWLINE.search(text, pos, end) is not None
        if not text.startswith("--", end, hi):
            break
        pos = _comment_end(text, end + 2, hi, False)
    return end + width if newline and text.startswith("'" * width, end, hi) else None


def _string_end(text: str, pos: int, hi: int, width: int) -> tuple[int, int]:
    """(end of the content, end of the literal) for a string opened just before `pos`, in which a
    quote is `width` quotes: an escaped one is 2*width, the closing one `width`. Unterminated:
    everything up to `hi` is in it."""
    while True:
        q = text.find("'", pos, hi)
        if q < 0:
            return hi, hi
        run = _QUOTES.match(text, q, hi).end() - q
        rest = run % (2 * width)
        if rest >= width:
            return q + run - rest, q + run - rest + width
        pos = q + run


def _estring_end(text: str, pos: int, hi: int) -> int:
    """End of an E'...' string whose content starts at `pos` (backslash escapes, '' too)."""
    while True:
        m = _ESCAPE_OR_QUOTE.search(text, pos, hi)
        if m is None:
            return hi
        if m.group() == "\\" or (m.end() < hi and text[m.end()] == "'"):  # \x, or '' inside
            pos = m.end() + 1
        else:
            return m.end()


def _identifier_end(text: str, pos: int, hi: int) -> int:
    while True:
        q = text.find('"', pos, hi)
        if q < 0:
            return hi
        if q + 1 < hi and text[q + 1] == '"':
            pos = q + 2
            continue
        return q + 1


def _comment_end(text: str, pos: int, hi: int, block: bool) -> int:
    if not block:
        newline = _NEWLINE.search(text, pos, hi)  # a -- comment ends at \n or \r, as in PostgreSQL
        return hi if newline is None else newline.start()
    nesting = 1  # PostgreSQL's block comments nest
    for m in _COMMENT_MARK.finditer(text, pos, hi):
        nesting += 1 if m.group() == "/*" else -1
        if nesting == 0:
            return m.end()
    return hi
