"""The observatory's configuration: one YAML file, validated, with embedded defaults.

Every mistake is reported with the path of the offending key (``targets.postgres[0].interval``) and
what to write instead; passwords never appear in messages (see ``dashboard.core.redaction``).
"""

from __future__ import annotations

import ipaddress
import os
import re
import stat
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from dashboard.core.health.settings import parse_size

DEFAULT_FILE = "observatory.yaml"
ENV_FILE = "OBSERVATORY_CONFIG"

# y: 365 days, as retention is written (the README's `daily: 5y` was refused without it)
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800, "y": 365 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|min|m|h|d|w|y)?\s*$")


class ConfigError(ValueError):
    """A configuration problem, worded for the person who wrote the file."""


def parse_duration(value: Any) -> float:
    """'90s', '5m', '2d', '1y', '250ms' or a bare number of seconds -> seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 60s, 5m, 2h or 7d")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"{value!r} is not a duration: write e.g. 60s, 5m, 2h or 7d")
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if seconds <= 0:
        raise ValueError("a duration must be greater than zero")
    if seconds == float("inf") or seconds != seconds:
        raise ValueError("a duration must be a finite number of seconds")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]


def _duration_or_zero(value: Any) -> float:
    return 0.0 if value in (0, "0", "0s") else parse_duration(value)


WaitDuration = Annotated[float, BeforeValidator(_duration_or_zero)]  # 0 allowed: no wait at all


class Secret(Enum):
    """Marks a field that refers to a secret, e.g. ``Annotated[str | None, Secret.ENV]``: logs and
    errors are kept free of the secret of every marked field, in any model of the configuration
    (`dashboard.core.redaction.known_secrets`)."""

    ENV = "the name of an environment variable holding a secret"
    URL = "a DSN or URL that may carry a password"


SecretEnv = Annotated[str | None, Secret.ENV]


def secret_fields(model: type[BaseModel]) -> dict[str, Secret]:
    """The fields of `model` marked with `Secret`, and how each refers to its secret."""
    return {
        name: mark
        for name, field in model.model_fields.items()
        for mark in field.metadata
        if isinstance(mark, Secret)
    }


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Target(_Strict):
    """What every target has: a unique name, its own interval, a password kept out of the file."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    interval: Duration = 60.0
    password_env: SecretEnv = None  # name of an environment variable holding the password

    @field_validator("interval")
    @classmethod
    def _not_too_often(cls, v: float) -> float:
        if v < 1:
            raise ValueError("interval must be at least 1s")
        return v


class HealthIntervals(_Strict):
    """How often each health part of a PostgreSQL target is read (at the first cycle after)."""

    sessions: Duration = 15.0  # sessions: blocking, long-running queries, idle in transaction
    # Wait events and lock waits, sampled between the cycles by the daemon (collectors/postgres/waits.py)
    waits: Duration = 5.0
    replication: Duration = 30.0
    server_stats: Duration = 60.0  # checkpoints, WAL, temp files, transaction ID age, sequences
    settings: Duration = 3600.0
    indexes: Duration = 900.0  # pgwatch reads index statistics every 15 minutes
    tables: Duration = 300.0  # sizes stat every file of a table: pgwatch reads them every 5 minutes


class PostgresTarget(_Target):
    dsn: Annotated[str, Secret.URL] = Field(min_length=1)
    statement_timeout: Duration = 5.0
    connect_timeout: Duration = 5.0
    advise_interval: Duration = 3600.0  # how often the index advisor re-reads this server
    advise: bool = True  # run the index advisor (read-only; proves suggestions with HypoPG)
    # Advise even when the role is a superuser or may run programs, touch server files or end
    # sessions: planning statements others wrote would run with that power. Off: such roles are refused.
    advise_privileged: bool = False
    # Investigate: EXPLAIN ANALYZE runs the statement (rolled back). Off by default: it costs what the
    # statement costs. Statements that write are refused even then, unless explain_analyze_writes.
    explain_analyze: bool = False
    explain_analyze_writes: bool = False
    explain_timeout: Duration = 10.0  # a statement EXPLAIN (ANALYZE) runs longer is cancelled
    health: HealthIntervals = HealthIntervals()
    # A blocking chain that lasts this long is kept as history (the Connections page); sampled every
    # health.waits, so one lasting this plus that interval is kept for sure.
    blocking_history_after: Duration = 5.0
    # An active statement counts as long-running past this (None: the role's or database's
    # observatory.long_running_s setting, else 60 s, as PgHero).
    long_running_after: Duration | None = None
    # The server's memory ("16GB"; units of 1024), for the Settings page's sizing when no
    # node_exporter series (node_memory_MemTotal_bytes) of a Prometheus target gives it.
    ram: Annotated[int | None, BeforeValidator(lambda v: v if v is None else parse_size(v))] = None


class RedisQueues(_Strict):
    """Job queues kept in this Redis, by library: the queue names as the application uses them."""

    bullmq: list[str] = []
    rq: list[str] = []
    celery: list[str] = []
    bullmq_prefix: str = "bull"


class RedisTarget(_Target):
    url: Annotated[str, Secret.URL] = Field(min_length=1, pattern=r"^(redis|rediss|unix)://")
    interval: Duration = 15.0
    timeout: Duration = 5.0
    queues: RedisQueues = RedisQueues()


_SLO = re.compile(r"^\s*(<=|>=|<|>)\s*(-?\d+(?:\.\d+)?(?:e-?\d+)?)\s*$", re.I)


class Series(_Strict):
    """One PromQL expression to record, with its unit and an optional SLO target like '< 200'."""

    expr: str = Field(min_length=1)
    unit: str = ""
    target: str | None = None
    # How its error budget is counted (alert burn rates): `readings`, the share of readings that miss
    # the target (latency, utilisation), or `value`, the series is itself the share that went wrong
    # (an error ratio; 1 - availability), and the target's distance from 0 (or 1) is the budget.
    budget: Literal["readings", "value"] = "readings"

    @field_validator("target")
    @classmethod
    def _slo(cls, v: str | None) -> str | None:
        if v is not None and not _SLO.match(v):
            raise ValueError(
                f"{v!r} is not a target: write an operator and a number, e.g. '< 200' or '>= 0.999'"
            )
        return v

    @property
    def slo(self) -> tuple[str, float] | None:
        """The target as (operator, threshold)."""
        if self.target is None:
            return None
        match = _SLO.match(self.target)
        assert match is not None  # validated above
        return match.group(1), float(match.group(2))


class PrometheusTarget(_Target):
    """Any server speaking the Prometheus HTTP API (Prometheus, Thanos, Mimir, VictoriaMetrics)."""

    url: Annotated[str, Secret.URL] = Field(min_length=1, pattern=r"^https?://")
    interval: Duration = 60.0
    timeout: Duration = 10.0
    username: str | None = None  # basic auth; the password comes from password_env
    bearer_token_env: SecretEnv = None  # name of an environment variable holding a bearer token
    verify_tls: bool = True
    ca_file: str | None = None
    backfill: Duration = 7 * 86400.0  # the longest gap filled from range queries
    preset: str | None = Field(None, pattern=r"^seed$")  # 'seed': the seed's SLOs, standard PromQL
    metrics: dict[str, str] = {}  # preset metric names, e.g. {http_duration: my_request_seconds}
    series: dict[str, Series] = {}


class Targets(_Strict):
    """One list per source, keyed by its kind: the same keys as `dashboard.core.sources.SOURCES`."""

    postgres: list[PostgresTarget] = []
    redis: list[RedisTarget] = []
    prometheus: list[PrometheusTarget] = []

    @field_validator("*")
    @classmethod
    def _unique_names(cls, targets: list, info) -> list:
        seen: set[str] = set()
        for t in targets:
            if t.name in seen:
                raise ValueError(f"two {info.field_name} targets are named {t.name!r}: names must be unique")
            seen.add(t.name)
        return targets


class AdvisorSettings(_Strict):
    """Which recorded statements the index advisor looks at, and what it calls worth an index."""

    min_calls: int = Field(10, ge=1)
    min_mean_ms: float = Field(1.0, ge=0)
    limit: int = Field(100, ge=1)
    min_table_rows: int = Field(1000, ge=0)
    min_reduction: float = Field(0.25, gt=0, lt=1)


class WebhookReceiver(_Strict):
    """POSTs Alertmanager's webhook JSON (version 4) to the URL."""

    webhook: Annotated[str, Secret.URL]


class SlackUrl(_Strict):
    url_env: Annotated[str, Secret.ENV]  # a Slack URL is its own secret: only from the environment


class SlackReceiver(_Strict):
    """POSTs a Slack-compatible incoming-webhook message."""

    slack: SlackUrl


class AlertmanagerReceiver(_Strict):
    """POSTs to an Alertmanager's /api/v2/alerts (it then groups, silences and routes)."""

    alertmanager: Annotated[str, Secret.URL]


Receiver = WebhookReceiver | SlackReceiver | AlertmanagerReceiver


class Silence(_Strict):
    """Alerts whose labels hold every matcher are not notified until `until` (they still show)."""

    matchers: dict[str, str] = Field(min_length=1)
    until: datetime
    comment: str = ""


class AlertSettings(_Strict):
    """Alerting rules and where their notifications go (dashboard.alerts)."""

    rule_files: list[str] = []  # Prometheus rule-file layout; globs, relative to the config file
    default_rules: bool = True  # the built-in pack (dashboard/alerts/default_rules.yaml)
    disabled_rules: list[str] = []  # alert names of the built-in pack to leave out
    evaluation_interval: Duration = 30.0
    receivers: list[Receiver] = []
    silences: list[Silence] = []
    group_by: list[str] = ["alertname", "target"]
    group_wait: WaitDuration = 30.0  # before the first notification of a new group (0: at once)
    group_interval: Duration = 300.0  # before notifying a group again when it changed
    repeat_interval: Duration = 4 * 3600.0  # before notifying a group again while it still fires
    external_url: str | None = None  # the app's address, for links in notifications (generatorURL)


_WEEKLY = re.compile(r"^\s*(mon|tue|wed|thu|fri|sat|sun)\s+([01]?\d|2[0-3]):([0-5]\d)\s*$", re.I)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class ReviewSettings(_Strict):
    """The weekly review (dashboard.analysis.review): what a change must be to be reported, and
    when the daemon sends the last week's report to `receivers`."""

    min_change: float = Field(0.30, gt=0)  # a mean time this much higher (or lower), at least
    min_calls: int = Field(100, ge=1)  # in each week, for a statement to be compared
    z: float = Field(3.0, gt=0)  # standard errors from no change, at least
    schedule: str | None = None  # "mon 08:00": weekday and time (UTC) to send the last week's review
    receivers: list[WebhookReceiver | SlackReceiver] = []

    @field_validator("schedule")
    @classmethod
    def _weekly(cls, v: str | None) -> str | None:
        if v is not None and not _WEEKLY.match(v):
            raise ValueError(f"{v!r} is not a weekly time: write a weekday and a UTC time, e.g. 'mon 08:00'")
        return v

    @property
    def when(self) -> tuple[int, int, int] | None:
        """The schedule as (ISO weekday 1-7, hour, minute), or None."""
        match = _WEEKLY.match(self.schedule or "")
        if not match:
            return None
        return WEEKDAYS.index(match.group(1).lower()) + 1, int(match.group(2)), int(match.group(3))


MAX_RETENTION = 100 * 365 * 86400.0  # keeps every prune's horizon a timestamp the stores can hold


class Retention(_Strict):
    raw: Duration = 2 * 86400.0
    hourly: Duration = 90 * 86400.0
    daily: Duration = 5 * 365 * 86400.0

    @field_validator("raw", "hourly", "daily")
    @classmethod
    def _at_most_a_century(cls, v: float) -> float:
        # Longer made the horizon overflow a 64-bit integer: every hourly prune failed whole,
        # the raw level's with it (SQLite: "Python int too large", PostgreSQL: "bigint out of range").
        if v > MAX_RETENTION:
            raise ValueError("retention must be at most 100y (36500d)")
        return v


class OidcLogin(_Strict):
    """Streamlit's login (`st.login`, Authlib) with one OpenID Connect provider. `observatory serve`
    writes it as Streamlit's [auth] secrets (a private file, mode 0600); the two secrets come from the
    environment only."""

    server_metadata_url: str = Field(pattern=r"^https?://")  # its .well-known/openid-configuration URL
    client_id: str = Field(min_length=1)
    client_secret_env: Annotated[str, Secret.ENV]  # name of the variable holding the client secret
    cookie_secret_env: Annotated[str, Secret.ENV]  # name of the variable holding a long random string
    # Where the provider sends the browser back: the app's address as users reach it, ending in
    # /oauth2callback. Default: http://HOST:PORT/oauth2callback of `serve --host --port`.
    redirect_uri: str | None = Field(None, pattern=r"^https?://.+/oauth2callback$")
    # Add the scope that brings the groups claim, if the provider needs one (e.g. "groups").
    scope: str = "openid email profile"


class AccessSettings(_Strict):
    """Who may use the dashboard and who may run SQL from it (dashboard.core.access). Login is on when
    `oidc` or `provider` is set, or Streamlit's own secrets (.streamlit/secrets.toml) hold an [auth]
    section; the app refuses to open when login is asked for and Streamlit has no usable [auth]."""

    oidc: OidcLogin | None = None
    provider: str | None = None  # a named provider of your own [auth.NAME] secrets (default: [auth])
    # May run SQL on the targets (the Indexes paste box, Investigate's Explain, EXPLAIN ANALYZE and
    # sample values), when logged in: an entry with "@" is an email, matched (ASCII letters in any
    # case) only when the ID token says email_verified; any other entry is a subject ("sub" claim),
    # matched exactly. A provider that sends no email_verified (e.g. Entra ID): list subjects or groups.
    sql_users: list[str] = []
    sql_groups: list[str] = []  # ... or a member of one of these groups,
    groups_claim: str = "groups"  # as the ID token's claim of this name lists them
    # The claims (groups included) are those of the login: past this age (from the ID token's
    # auth_time, else iat) the SQL-running parts ask for a new login.
    max_login_age: Duration = 12 * 3600.0
    # Without login, on a host other than loopback, the SQL-running parts are off unless this is true.
    sql_when_exposed: bool = False

    @property
    def login(self) -> bool:
        """Whether this configuration asks for a login (then the app never opens without one)."""
        return self.oidc is not None or self.provider is not None


class Config(_Strict):
    store: Annotated[str, Secret.URL] = "sqlite:///observatory.db"
    retention: Retention = Retention()
    advisor: AdvisorSettings = AdvisorSettings()
    alerts: AlertSettings = AlertSettings()
    review: ReviewSettings = ReviewSettings()
    access: AccessSettings = AccessSettings()
    targets: Targets = Targets()
    source: str = "embedded defaults"  # where this config came from, for messages

    @field_validator("store")
    @classmethod
    def _known_store(cls, v: str) -> str:
        if not v.startswith(("sqlite://", "postgresql://", "postgresql+psycopg://")):
            raise ValueError("store must be sqlite:///path.db or postgresql+psycopg://user@host/db")
        return v


def _location(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _explain(err: ValidationError, source: str) -> ConfigError:
    lines = [f"{source}: invalid configuration"]
    for e in err.errors():
        where = _location(e["loc"])
        if e["type"] == "extra_forbidden":
            lines.append(f"  {where}: unknown key; check its spelling and placement")
        elif e["type"] == "missing":
            lines.append(f"  {where}: required but missing")
        else:
            lines.append(f"  {where}: {e['msg'].removeprefix('Value error, ')}")
    return ConfigError("\n".join(lines))


def from_dict(data: dict[str, Any] | None, source: str = "embedded defaults") -> Config:
    data = dict(data or {})
    data.pop("source", None)
    odd = next((k for k in data if not isinstance(k, str)), None)
    if odd is not None:
        raise ConfigError(
            f"{source}: invalid configuration\n  {odd!r}: unknown key; keys are names (store, targets)"
        )
    try:
        return Config(**data, source=source)
    except ValidationError as err:
        raise _explain(err, source) from None


def _read(candidate: Path, explicit: bool) -> str | None:
    """The file's text; None when there is no file and none was asked for. Every problem is a
    ConfigError of one line."""
    try:
        info = candidate.stat()
    except FileNotFoundError:
        if candidate.is_symlink():
            raise ConfigError(
                f"{candidate}: a symbolic link to {os.readlink(candidate)}, which does not exist"
            ) from None
        if explicit:
            raise ConfigError(f"{candidate}: no such configuration file") from None
        return None
    except (OSError, ValueError) as err:  # a loop of links, a component that is a file, a NUL
        raise ConfigError(f"{candidate}: cannot read: {getattr(err, 'strerror', None) or err}") from None
    if stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"{candidate}: is a directory, not a configuration file")
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"{candidate}: not a regular file")
    try:
        raw = candidate.read_bytes()
    except OSError as err:
        raise ConfigError(f"{candidate}: cannot read: {err.strerror or err}") from None
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ConfigError(f"{candidate}: UTF-16 text: save the file as UTF-8")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise ConfigError(
            f"{candidate}: line {line}: not UTF-8 text (byte 0x{raw[err.start]:02x}): save the file as UTF-8"
        ) from None


def load(path: str | os.PathLike[str] | None = None) -> Config:
    """Load the file named, else $OBSERVATORY_CONFIG, else ./observatory.yaml, else the defaults."""
    explicit = path or os.environ.get(ENV_FILE)
    candidate = Path(explicit) if explicit else Path(DEFAULT_FILE)
    text = _read(candidate, bool(explicit))
    if text is None:
        return from_dict({})
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = " ".join(str(getattr(err, "problem", None) or err).split())
        raise ConfigError(f"{candidate}:{where}: not valid YAML ({problem})") from None
    except RecursionError:
        raise ConfigError(f"{candidate}: not valid YAML (nested too deeply)") from None
    except (ValueError, TypeError) as err:  # a value YAML cannot build, e.g. the date 2024-13-01
        raise ConfigError(f"{candidate}: not valid YAML ({' '.join(str(err).split())})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{candidate}: expected a mapping of keys (store, retention, targets)")
    return from_dict(data, source=str(candidate))


# -- where the dashboard listens --------------------------------------------------------------------
def is_loopback(host: str) -> bool:
    """Whether `host` is reachable from this machine only: 127.0.0.0/8, ::1 (also IPv4-mapped or
    in brackets) and localhost. Any other name or address, and "" or 0.0.0.0 (every interface), is
    not."""
    name = host.strip().strip("[]").rstrip(".").lower()
    return name == "localhost" or _address_is(name, "is_loopback")


def is_unspecified(host: str) -> bool:
    """Whether `host` means every interface: "", 0.0.0.0, or any spelling of :: (::0, 0:0:0:0:0:0:0:0,
    ::ffff:0.0.0.0, in brackets or not)."""
    name = host.strip().strip("[]")
    return not name or _address_is(name, "is_unspecified")


def _address_is(name: str, kind: str) -> bool:
    """Whether `name` is an IP address (a zone after % ignored) of `kind` ("is_loopback"...), itself
    or as the IPv4 address an IPv6 one maps; a host name is not."""
    try:
        address = ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(getattr(address, kind) or (mapped is not None and getattr(mapped, kind)))


def exposure_warning(host: str, port: int, login: bool = False, sql_when_exposed: bool = False) -> str | None:
    """The warning to print before serving the dashboard on `host`: None on a loopback address or
    with login (`login`: access.oidc or Streamlit's own [auth] secrets); else who can see it and
    whether its SQL-running parts are on (`sql_when_exposed`)."""
    if is_loopback(host) or login:
        return None
    where = f"{host}:{port}" + (" (every interface)" if is_unspecified(host) else "")
    if sql_when_exposed:
        sql = (
            "as access.sql_when_exposed is true, they can also run the advisor and EXPLAIN (ANALYZE) "
            "on your databases."
        )
    else:
        sql = (
            "its SQL-running parts (the advisor's paste box, Investigate's Explain) are off "
            "(access.sql_when_exposed: true turns them on)."
        )
    return (
        f"observatory: warning: the dashboard will listen on {where}, which is not a loopback address, "
        f"without login: anyone who can reach this address can see it; {sql} Configure login "
        "(access.oidc), or serve it on 127.0.0.1 and reach it through an SSH tunnel or an authenticating "
        "reverse proxy."
    )
