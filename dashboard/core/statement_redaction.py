"""Passwords out of SQL text recorded by ``pg_stat_statements``: `redact_statement(text)` does what
`redaction.redact` does, and also masks the literal after ``PASSWORD`` (``CREATE ROLE x PASSWORD
'...'``) and after every "password" option, at any quoting depth (DO blocks, function bodies).
"""

from __future__ import annotations

import re

from dashboard.core.redaction import MASK, URL_PASSWORD, redact

_SQL_KV_PASSWORD = re.compile(
    r"(password\s*=\s*)(?!\$\d)(''(?:[^']|'(?!'))*''|'(?:[^'\\]|\\.|'')*'|(?:[^\s'\\]|\\.|'')+)", re.I
)

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
        return URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
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
