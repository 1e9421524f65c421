"""The plan file people download and load back, and plans pasted from elsewhere.

Our file is JSON: a few facts about where and when the plan was taken around EXPLAIN's own JSON,
kept exactly as the server wrote it, so that other tools (explain.depesz.com, PEV2) read its "plan".
`loads` also takes a bare EXPLAIN (FORMAT JSON) output, as psql prints it too (header, dashes,
'+' at line ends, '(1 row)', expanded, CSV) or as pgAdmin copies it.

Everything loaded is untrusted: the size is capped before parsing, every field is type-checked, and
anything wrong is a PlanUnreadable saying what. The file never carries a DSN or a password: there is
no field for one.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dashboard.plans.tree import MAX_BYTES, MAX_DEPTH, Plan, PlanUnreadable, read_plan

VERSION = 1
MARK = "observatory_plan"  # the key that tells our file from a bare EXPLAIN output
MAX_STATEMENT = 100_000  # characters kept of a statement
MAX_NAME = 200  # characters kept of target, database, command
CUT = "\n-- [cut: {n:,} characters in all]"
FILE_PART = 40  # characters a name part keeps in a file name


@dataclass(frozen=True)
class PlanDocument:
    plan: Plan
    statement: str | None = None
    target: str | None = None  # the configuration's name for the server, never its DSN
    database: str | None = None
    server_version: int | None = None  # server_version_num: 150004
    captured_at: datetime | None = None  # UTC
    command: str | None = None  # 'EXPLAIN (ANALYZE, BUFFERS, VERBOSE, SETTINGS)'
    generic: bool = False  # a generic plan: $n without values


def dumps(doc: PlanDocument) -> str:
    """Our file: the facts, then "plan" exactly as EXPLAIN gave it. ASCII only, so it survives
    any channel."""
    return json.dumps(
        {
            MARK: VERSION,
            "captured_at": _iso(doc.captured_at),
            "target": _capped(doc.target, MAX_NAME),
            "database": _capped(doc.database, MAX_NAME),
            "server_version": doc.server_version,
            "statement": _capped(doc.statement, MAX_STATEMENT),
            "command": _capped(doc.command, MAX_NAME),
            "generic": doc.generic,
            "plan": doc.plan.raw,
        },
        indent=2,
    )


def file_name(doc: PlanDocument) -> str:
    """'plan-erp-primary-shop-20261130T1530Z.json': only [A-Za-z0-9._-], whatever the names hold."""
    parts = ["plan", _file_part(doc.target), _file_part(doc.database)]
    if doc.captured_at is not None:
        parts.append(_utc(doc.captured_at).strftime("%Y%m%dT%H%MZ"))
    return "-".join(p for p in parts if p) + ".json"


def loads(source: str | bytes) -> PlanDocument:
    """Our file, or a bare EXPLAIN (FORMAT JSON) output (then only `plan` is set). Raises
    PlanUnreadable with the reason."""
    data = _parsed(_unwrapped(_text(source)))
    if isinstance(data, dict) and MARK in data:
        return _document(data)
    return PlanDocument(plan=_plan(data))


# Writing -------------------------------------------------------------------------------------------


def _utc(moment: datetime) -> datetime:
    """A naive time is taken as UTC, the observatory's clock."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else _utc(moment).isoformat().replace("+00:00", "Z")


def _capped(text: str | None, limit: int) -> str | None:
    """The text, or its start with a note of its length: the result fits the limit, so capping
    again changes nothing."""
    if text is None or len(text) <= limit:
        return text
    note = CUT.format(n=len(text)) if limit >= MAX_STATEMENT else "…"
    return text[: limit - len(note)] + note


def _file_part(text: str | None) -> str:
    if not text:
        return ""
    ascii_only = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", ascii_only)
    return safe.strip("._-")[:FILE_PART].strip("._-")


# Reading -------------------------------------------------------------------------------------------


def _text(source: str | bytes) -> str:
    if isinstance(source, bytes | bytearray):
        if len(source) > MAX_BYTES:
            raise PlanUnreadable(f"{len(source):,} bytes: plan files up to {MAX_BYTES:,} bytes are read")
        try:
            return bytes(source).decode("utf-8-sig")  # a byte order mark from Windows editors
        except UnicodeDecodeError:
            raise PlanUnreadable("not UTF-8 text: save the plan as EXPLAIN (FORMAT JSON) prints it") from None
    if not isinstance(source, str):
        raise PlanUnreadable(f"not text but {type(source).__name__}: give the file's text or bytes")
    if len(source) > MAX_BYTES:
        raise PlanUnreadable(f"{len(source):,} characters: plan files up to {MAX_BYTES:,} are read")
    return source.removeprefix("\ufeff")


_HEADER = re.compile(r'"?QUERY PLAN"?')
_RULE = re.compile(r"[-+─═┌┐└┘├┤┬┴┼╞╡╪]+")  # under the header, and \pset border 2's box
_FOOTER = re.compile(r"\(\d+ rows?\)")
_RECORD = re.compile(r"[-+─┌├]*\[ RECORD \d+ \][-+─┐┤]*|\* Record \d+")  # expanded output (\x)
_EXPANDED = re.compile(r"^\s*QUERY PLAN\s*[|│]?\s?|^\s*[|│]\s?")  # 'QUERY PLAN | [', '           |   {'
_SIDES = ("|", "│")  # \pset border 2, and linestyle unicode
_WRAPS = ("+", "↵")  # a value going on on the next line


def _unwrapped(text: str) -> str:
    """EXPLAIN's JSON out of psql's (or pgAdmin's) frame around it: header, rules, borders, record
    lines, the marks of a value going on, the row count, CSV's quotes. JSON (and EXPLAIN's, one
    key or bracket a line) never has a line that is only rules, starts with '|' or ends with '+',
    so taking those off changes no plan."""
    text = text.strip()
    lines = text.splitlines()
    if not lines or not _framed(lines):
        return text
    kept = []
    for line in lines:
        bare = line.strip()
        if len(bare) > 1 and bare.startswith(_SIDES) and bare.endswith(_SIDES):
            line = bare = bare[1:-1]
        if _frame_line(bare.strip()):
            continue
        line = _EXPANDED.sub("", line, count=1).rstrip()
        kept.append(line[:-1] if line.endswith(_WRAPS) else line)
    inner = "\n".join(kept).strip()
    if len(inner) > 1 and inner.startswith('"') and inner.endswith('"'):  # CSV: one quoted cell
        inner = inner[1:-1].replace('""', '"')
    return inner


def _frame_line(bare: str) -> bool:
    return any(p.fullmatch(bare) for p in (_HEADER, _RULE, _FOOTER, _RECORD))


def _framed(lines: list[str]) -> bool:
    first = lines[0].strip()
    return (
        _frame_line(first)
        or first.startswith((*_SIDES, "QUERY PLAN", '"[', '"{'))
        or first.endswith(_WRAPS)
        or bool(_FOOTER.fullmatch(lines[-1].strip()))
    )


def _no_constant(name: str) -> Any:
    raise PlanUnreadable(f"not valid JSON: {name} is not a number JSON has")


def _parsed(text: str) -> Any:
    if not text:
        raise PlanUnreadable("empty: paste the output of EXPLAIN (FORMAT JSON) or load a plan file")
    if not text.startswith(("[", "{")):
        if "(cost=" in text or "(actual time=" in text:
            raise PlanUnreadable("EXPLAIN's text format is not read: run EXPLAIN (FORMAT JSON, ...) instead")
        raise PlanUnreadable("not JSON: give EXPLAIN (FORMAT JSON, ...)'s output or a plan file saved here")
    try:
        return json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise PlanUnreadable(f"nested too deeply (plans go at most {MAX_DEPTH} levels down)") from None
    except PlanUnreadable:
        raise
    except ValueError as err:  # JSONDecodeError, and an integer of over 4,300 digits
        raise PlanUnreadable(f"not valid JSON: {err}") from None


def _plan(data: Any) -> Plan:
    """read_plan, and a reason even for a value its checks let through (a null cost, -1 workers)."""
    try:
        return read_plan(data)
    except PlanUnreadable:
        raise
    except (TypeError, ValueError, ArithmeticError) as err:
        raise PlanUnreadable(f"a value in the plan is not one EXPLAIN writes ({type(err).__name__})") from err


def _document(data: dict[str, Any]) -> PlanDocument:
    _check_version(data[MARK])
    if "plan" not in data:
        raise PlanUnreadable('a plan file without its "plan"')
    if not isinstance(data["plan"], list | dict):
        raise PlanUnreadable('"plan" is not EXPLAIN\'s JSON (a list holding one object)')
    generic = data.get("generic", False)
    if generic is None:
        generic = False
    if not isinstance(generic, bool):
        raise PlanUnreadable(f'"generic" is not true or false: {_brief(generic)}')
    return PlanDocument(
        plan=_plan(data["plan"]),
        statement=_capped(_field_text(data, "statement"), MAX_STATEMENT),
        target=_capped(_field_text(data, "target"), MAX_NAME),
        database=_capped(_field_text(data, "database"), MAX_NAME),
        server_version=_field_version(data),
        captured_at=_field_time(data),
        command=_capped(_field_text(data, "command"), MAX_NAME),
        generic=generic,
    )


def _check_version(version: Any) -> None:
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise PlanUnreadable(f'"{MARK}" is not a file version: {_brief(version)}')
    if version > VERSION:
        raise PlanUnreadable(
            f"a version {version} plan file: this observatory reads version {VERSION}; a newer one wrote it"
        )


def _field_text(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise PlanUnreadable(f'"{key}" is not text: {_brief(value)}')
    return value


def _field_version(data: dict[str, Any]) -> int | None:
    value = data.get("server_version")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 10_000_000:
        raise PlanUnreadable(f'"server_version" is not a server_version_num such as 150004: {_brief(value)}')
    return value


def _field_time(data: dict[str, Any]) -> datetime | None:
    value = data.get("captured_at")
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 64:
        raise PlanUnreadable(f'"captured_at" is not an ISO-8601 time: {_brief(value)}')
    try:
        return _utc(datetime.fromisoformat(value))
    except ValueError:
        raise PlanUnreadable(f'"captured_at" is not an ISO-8601 time: {_brief(value)}') from None


def _brief(value: Any) -> str:
    """A wrong value in an error, short: a list or object by its kind (its repr could be megabytes,
    or nested deeper than repr goes), anything else by the start of its repr."""
    if isinstance(value, list | dict):
        return "a list" if isinstance(value, list) else "an object"
    return f"{value!r:.40}"
