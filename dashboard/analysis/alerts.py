"""The Alerts page's figures: what fires now, the history of a window, the rules and their state,
silences, Prometheus' own alerts, and an incident's window across layers. No Streamlit.

The store holds the alerts pending or firing as of the daemon's last evaluation (`Reads.alerts`),
each change of state (`Reads.alert_history`: pending, firing, resolved) and the rules' problems the
daemon last saw (`Reads.alert_journal("rule_errors")`: {"load": [...], "rules": {name: error}}).
An *episode* is one alert from pending to its resolution: a pending alert whose condition stopped
holding is dropped by the evaluation without an event (as Prometheus does), so its end is unknown;
it is drawn for one evaluation interval.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from datetime import UTC
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from dashboard.alerts import rules as rules_mod
from dashboard.alerts.evaluate import source_url
from dashboard.analysis import redis, redis_reads, services, statements
from dashboard.analysis.reader import Reader
from dashboard.analysis.targets import Target
from dashboard.core import metrics
from dashboard.core.alerts import Alert
from dashboard.core.config import AlertSettings, Config
from dashboard.store.rates import rate
from dashboard.store.reads import Window

RULE_ERRORS = "rule_errors"  # the journal key collectors/jobs/alerts.py saves the rules' problems under
STATE_ORDER = {"firing": 0, "pending": 1}
INCIDENT_BEFORE = 1800  # an incident's window opens this long before the alert became active
SEARCH_BACK = 30 * 86400  # how far back a resolved alert's incident is looked for
LOCK_WAITS = "pg.connections.waiting_on_lock"
REDIS_LATENCY = "redis.latency.latest_ms"
MAX_RULE_SERIES = 20  # lines in a rule's chart; beyond, the ones with the highest values
LONG_COLUMNS = ["ts", "series", "value"]
EPISODE_COLUMNS = [
    "fingerprint", "name", "labels", "state", "start", "fired", "end", "duration_s", "value",
    "ongoing", "start_known",
]  # fmt: skip


# -- text ---------------------------------------------------------------------------------------
def labels_text(labels: dict[str, str], skip: tuple[str, ...] = ("alertname",)) -> str:
    """'k=v, k2=v2' in name order, as written (the page shows it as text, never markup)."""
    return ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k not in skip)


def fmt_value(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:.4g}"


def duration_text(seconds: float | None) -> str:
    """'2 d 3 h', '14 min', '40 s'."""
    if seconds is None or not math.isfinite(seconds):
        return "–"
    seconds = max(0, int(seconds))
    if seconds >= 86400:
        return f"{seconds // 86400} d {seconds % 86400 // 3600} h"
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    if seconds >= 60:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def _utc(ts: float | None) -> pd.Timestamp | None:
    return None if ts is None or ts != ts else pd.Timestamp(float(ts), unit="s", tz=UTC)


# -- now ----------------------------------------------------------------------------------------
def active(reader: Reader) -> list[Alert]:
    """Every alert pending or firing as of the daemon's last evaluation, firing first."""
    found = reader.store.alerts()
    return sorted(found, key=lambda a: (STATE_ORDER.get(a.state, 2), a.name, -a.active_at))


def hidden_by_targets(alert: Alert, known: set[str], picked: set[str]) -> bool:
    """An alert about a target the sidebar offers but is not picked (alerts of no target always show)."""
    target = alert.labels.get("target")
    return target in known and target not in picked


def counts(alerts: Iterable[Alert]) -> dict[str, int]:
    alerts = list(alerts)
    return {state: sum(a.state == state for a in alerts) for state in ("firing", "pending")}


def active_table(alerts: Sequence[Alert], now: float, link_query: str = "") -> pd.DataFrame:
    """One row per alert: name, state, value, since (UTC), for (how long), summary, labels, page (the
    page behind it, relative to the app, with `link_query` appended), fingerprint."""
    rows = [
        {
            "name": a.name,
            "state": a.state,
            "value": fmt_value(a.value),
            "since": _utc(a.active_at),
            "for": duration_text(now - a.active_at),
            "summary": a.annotations.get("summary") or a.annotations.get("description") or "",
            "labels": labels_text(a.labels),
            "page": f"{a.source_url}{link_query}" if a.source_url else None,
            "fingerprint": a.fingerprint,
        }
        for a in alerts
    ]
    columns = ["name", "state", "value", "since", "for", "summary", "labels", "page", "fingerprint"]
    frame = pd.DataFrame(rows, columns=columns)
    frame["since"] = pd.to_datetime(frame["since"], utc=True)
    return frame


# -- history ------------------------------------------------------------------------------------
def history(reader: Reader, window: Window, fingerprint: str | None = None) -> pd.DataFrame:
    """Changes of state in the window (of one alert): fingerprint, rule, labels (JSON), ts, state, value."""
    return reader.store.alert_history(window, fingerprint)


def _labels(text: object) -> dict[str, str]:
    try:
        found = json.loads(str(text))
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def episodes(
    events: pd.DataFrame, alerts: Sequence[Alert], window: Window, now: int, interval: float
) -> pd.DataFrame:
    """Each alert's episodes in the window, newest first: from pending (`start`; the window's start
    when it began before, `start_known` False) through firing (`fired`) to resolved (`end`); an alert
    still active ends now (`ongoing`); one dropped while pending ends after `interval` (state
    "dropped"). `value` is its last known value."""
    current = {a.fingerprint: a for a in alerts}
    rows: list[dict] = []
    seen: set[str] = set()

    def close(ep: dict, end: float, state: str) -> None:
        ep.update(end=end, state=state, duration_s=end - ep["start"])
        rows.append(ep)

    for fp, part in events.groupby("fingerprint", sort=False) if len(events) else ():
        seen.add(fp)
        first = part.iloc[0]
        base = {"fingerprint": fp, "name": str(first["rule"]), "labels": _labels(first["labels"])}
        ep: dict | None = None
        for r in part.itertuples():
            ts, value = int(r.ts), float(r.value) if r.value is not None else math.nan
            if r.state == "pending":
                if ep is not None:  # pending again: the last one was dropped in between
                    close(
                        ep, min(ep["start"] + interval, ts), "dropped" if ep["fired"] is None else "resolved"
                    )
                ep = {**base, "start": ts, "fired": None, "start_known": True}
            elif ep is None:  # firing or resolved first: it began before the window
                ep = {**base, "start": window.start, "fired": window.start, "start_known": False}
            if r.state == "firing":
                ep["fired"] = ts
            ep["value"] = value
            if r.state == "resolved":
                close(ep, ts, "resolved")
                ep = None
        if ep is not None:
            alert = current.get(fp)
            if alert is not None:
                ep.update(fired=alert.fired_at, value=alert.value, ongoing=True)
                close(ep, now, alert.state)
            elif ep["fired"] is None:
                close(ep, min(ep["start"] + interval, now), "dropped")
            else:  # firing, then neither resolved nor active: its rule was removed, or no evaluation since
                close(ep, now, "firing")
    for fp, alert in current.items():  # active since before the window, no change in it
        if fp not in seen:
            rows.append(
                {"fingerprint": fp, "name": alert.name, "labels": alert.labels, "state": alert.state,
                 "start": alert.active_at, "fired": alert.fired_at, "end": now,
                 "duration_s": now - alert.active_at, "value": alert.value, "ongoing": True,
                 "start_known": True}
            )  # fmt: skip
    for row in rows:
        row.setdefault("ongoing", False)
    frame = pd.DataFrame(rows, columns=EPISODE_COLUMNS)
    return frame.sort_values("start", ascending=False, kind="stable").reset_index(drop=True)


def episodes_table(found: pd.DataFrame) -> pd.DataFrame:
    """The episodes as shown: alert, labels, state, pending since, firing since, ended, lasted, value."""
    return pd.DataFrame(
        {
            "name": found["name"],
            "labels": found["labels"].map(labels_text),
            "state": [
                f"{s} (now)" if ongoing else s
                for s, ongoing in zip(found["state"], found["ongoing"], strict=True)
            ],
            "start": pd.to_datetime(found["start"], unit="s", utc=True),
            "fired": pd.to_datetime(found["fired"], unit="s", utc=True),
            "end": pd.to_datetime(found["end"].where(~found["ongoing"].astype(bool)), unit="s", utc=True),
            "lasted": [
                ("over " if not known else "") + duration_text(d)
                for d, known in zip(found["duration_s"], found["start_known"], strict=True)
            ],
            "value": found["value"].map(fmt_value),
            "fingerprint": found["fingerprint"],
        }
    )


def activity(found: pd.DataFrame, window: Window, now: int) -> pd.DataFrame:
    """How many alerts were firing and pending over the window, as steps (a long frame: ts, series
    "firing"/"pending", value), from the episodes."""
    end = min(now, window.end)
    changes: dict[str, dict[int, int]] = {"firing": {}, "pending": {}}
    for ep in found.itertuples():
        fired = ep.fired if ep.fired == ep.fired and ep.fired is not None else None
        spans = [("pending", ep.start, fired if fired is not None else ep.end)]
        if fired is not None:
            spans.append(("firing", fired, ep.end))
        for state, start, stop in spans:
            start, stop = max(int(start), window.start), min(int(stop), end)
            if stop > start:
                changes[state][start] = changes[state].get(start, 0) + 1
                if stop < end:  # still active at the end: the last point shows it
                    changes[state][stop] = changes[state].get(stop, 0) - 1
    times = sorted({window.start, end, *changes["firing"], *changes["pending"]})
    parts = []
    for state in ("firing", "pending"):
        level, xs, ys = 0, [], []
        for t in times:
            step = changes[state].get(t, 0)
            if step and xs and xs[-1] < t - 1:
                xs.append(t - 1)
                ys.append(level)
            level += step
            xs.append(t)
            ys.append(level)
        parts.append(pd.DataFrame({"ts": xs, "series": state, "value": ys}))
    return pd.concat(parts, ignore_index=True)


def events_table(events: pd.DataFrame) -> pd.DataFrame:
    """Every change of state in the window, newest first: time, alert, state, value, labels."""
    if events.empty:
        return pd.DataFrame(columns=["time", "name", "state", "value", "labels", "fingerprint"])
    ordered = events.iloc[::-1]
    return pd.DataFrame(
        {
            "time": pd.to_datetime(ordered["ts"], unit="s", utc=True),
            "name": ordered["rule"],
            "state": ordered["state"],
            "value": ordered["value"].map(lambda v: fmt_value(None if v is None else float(v))),
            "labels": ordered["labels"].map(lambda t: labels_text(_labels(t))),
            "fingerprint": ordered["fingerprint"],
        }
    ).reset_index(drop=True)


# -- rules --------------------------------------------------------------------------------------
class RuleErrors(NamedTuple):
    load: list[str]  # a rule file or a rule that could not be read
    rules: dict[str, str]  # rule name -> why its last evaluation failed
    saved: bool  # whether the daemon has saved any (it has evaluated the rules at least once)


def rule_errors(reader: Reader) -> RuleErrors:
    """The rules' problems the daemon saw at its last evaluation (its journal)."""
    text = reader.store.alert_journal(RULE_ERRORS)
    if text is None:
        return RuleErrors([], {}, False)
    try:
        found = json.loads(text)
        load = [str(p) for p in found.get("load") or []]
        by_rule = {str(k): str(v) for k, v in (found.get("rules") or {}).items()}
    except (ValueError, AttributeError):
        return RuleErrors([f"the daemon's record of rule errors cannot be read: {text[:200]}"], {}, True)
    return RuleErrors(load, by_rule, True)


def config_folder(config: Config) -> Path:
    """Where `rule_files` are relative to: the configuration file's folder."""
    return Path(config.source).parent if config.source != "embedded defaults" else Path.cwd()


def loaded_rules(config: Config) -> tuple[list[rules_mod.Rule], list[str]]:
    """The rules as the daemon's job loads them (the built-in pack and `rule_files`), with the
    problems found in the files now."""
    names = {t.name for t in config.targets.prometheus}
    return rules_mod.load(config.alerts, config_folder(config), names)


def shown_where(where: str, base: Path | None) -> str:
    """A rule's 'file:line' as shown: "built-in pack:line", or the file relative to `base`."""
    pack = str(rules_mod.DEFAULT_RULES)
    if where.startswith(pack):
        return "built-in pack" + where[len(pack) :]
    if base is not None and where.startswith(f"{base}/"):
        return where[len(str(base)) + 1 :]
    return where


def rule_state(name: str, alerts: Sequence[Alert], errors: RuleErrors) -> str:
    if name in errors.rules:
        return "broken"
    states = {a.state for a in alerts if a.name == name}
    return "firing" if "firing" in states else "pending" if "pending" in states else "ok"


def rules_table(
    found: Sequence[rules_mod.Rule], alerts: Sequence[Alert], errors: RuleErrors, base: Path | None = None
) -> pd.DataFrame:
    """Every rule loaded: name, group, status (firing/pending/ok/broken), expr, for, keep firing for,
    source (store, or prometheus and its target), where (file:line), error."""
    rows = [
        {
            "name": r.name,
            "group": r.group,
            "status": rule_state(r.name, alerts, errors),
            "expr": r.expr,
            "for": duration_text(r.for_s) if r.for_s else "0 s",
            "keep_firing_for": duration_text(r.keep_firing_for_s) if r.keep_firing_for_s else "",
            "source": r.source if r.source == "store" else f"prometheus: {r.target}",
            "where": shown_where(r.where, base),
            "error": errors.rules.get(r.name, ""),
        }
        for r in found
    ]
    return pd.DataFrame(rows, columns=["name", "group", "status", "expr", "for", "keep_firing_for", "source",
                                       "where", "error"])  # fmt: skip


def problems(errors: RuleErrors, load_now: Sequence[str], found: Sequence[rules_mod.Rule]) -> list[str]:
    """Every broken rule's message: the files' problems (the daemon's and the files' as they are now)
    and the rules whose evaluation failed, each once."""
    known = {r.name for r in found}
    failed = [f"{name}: {error}" + ("" if name in known else " (no longer in the rules)")
              for name, error in sorted(errors.rules.items())]  # fmt: skip
    return list(dict.fromkeys([*errors.load, *load_now, *failed]))


# -- a rule's series ----------------------------------------------------------------------------
class RuleSeries(NamedTuple):
    long: pd.DataFrame  # ts, series, value: the rule's operand per bucket (before its function)
    note: str  # what is drawn, or why nothing is


def _with_labels(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(
        label_map=[
            {"target": t, **metrics.decode(lb)}
            for t, lb in zip(frame["target"], frame["labels"], strict=True)
        ]
    )


def _matches(labels: dict[str, str], matchers: Iterable) -> bool:
    return all((labels.get(m.label) == m.value) == m.equal for m in matchers)


def _key(labels: dict[str, str], drop: tuple[str, ...] = ()) -> str:
    own = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k not in ("target", "kind", *drop))
    return f"{labels.get('target', '')}" + (f" · {own}" if own else "")


def _mean(points: pd.DataFrame) -> pd.Series:
    return points["sum"] / points["count"].where(points["count"] > 0)


def _summed(frame: pd.DataFrame, drop: tuple[str, ...] = ()) -> pd.DataFrame:
    """Per (series key less the `drop` labels, ts, name): gauges' means and counters' sums, summed,
    and the width."""
    keys = frame["label_map"].map(lambda lb: _key(lb, drop))
    value = _mean(frame).where(frame["kind"] == "gauge", frame["sum"])
    values = frame.assign(series=keys, value=value)
    return values.groupby(["series", "ts", "name"], as_index=False).agg(
        value=("value", "sum"), width=("width", "max")
    )


def _ratio(frame: pd.DataFrame, part: str, other: str, drop: tuple[str, ...] = ()) -> pd.DataFrame:
    summed = _summed(frame, drop)
    wide = summed.pivot_table(index=["series", "ts"], columns="name", values="value", aggfunc="sum")
    wide = wide.reindex(columns=[part, other]).fillna(0.0)
    total = wide[part] + wide[other]
    value = wide[part] / total.where(total > 0)
    return value.rename("value").reset_index().dropna(subset=["value"])


def rule_series(
    reader: Reader, rule: rules_mod.Rule, targets: Sequence[Target], window: Window
) -> RuleSeries:
    """The series a `source: store` rule compares, per bucket over the window, for the picked targets."""
    if rule.source != "store" or rule.parsed is None:
        return RuleSeries(_empty(), f"PromQL, evaluated by the Prometheus target {rule.target}: its own "
                                    "series are on the Services page.")  # fmt: skip
    selector = rule.parsed.selector
    name, matchers = selector.name, selector.matchers
    note = "Per bucket, before the rule's function"
    note += (
        f" ({rule.parsed.function} over {duration_text(rule.parsed.window)})" if rule.parsed.function else ""
    )
    derived = {
        "redis.hit_rate": ("redis", (metrics.REDIS_KEYSPACE_HITS, metrics.REDIS_KEYSPACE_MISSES)),
        "pg.cache_hit_ratio": ("postgres", (metrics.PG_DB_BLKS_HIT, metrics.PG_DB_BLKS_READ)),
        "pg.connections.used_ratio": ("postgres", (metrics.PG_CONNECTIONS, "pg.connections.max")),
        "queue.depth": ("redis", (metrics.REDIS_QUEUE_DEPTH,)),
        "queue.failed_per_min": ("redis", (metrics.REDIS_QUEUE_FAILED,)),
        "queue.oldest_age_s": ("redis", (metrics.REDIS_QUEUE_OLDEST_AGE_S,)),
    }
    if name in ("target.up", "target.stale_s"):
        return RuleSeries(_empty(), "From each collector's status now: see Collector health on each page.")
    if name.startswith("pg.statement."):
        return RuleSeries(_empty(), "Per statement: see the Queries page and each statement's detail.")
    if name in derived:
        kind, names = derived[name]
        picked = [t for t in targets if t.kind == kind]
    else:
        picked, names = list(targets), (name,)
    if not picked:
        return RuleSeries(_empty(), "No picked target holds this series.")
    frame = reader.series(picked, names, window)
    if frame.empty:
        return RuleSeries(_empty(), "No reading of this series in this window.")
    kinds = {t.name: t.kind for t in picked}
    frame = _with_labels(frame)
    frame["label_map"] = [{**lb, "kind": kinds.get(lb["target"], "")} for lb in frame["label_map"]]
    frame = frame[frame["label_map"].map(lambda lb: _matches(lb, matchers))]
    if frame.empty:
        return RuleSeries(_empty(), "No reading of this series matches the rule's labels in this window.")
    if name == "redis.hit_rate":
        long = _ratio(frame, metrics.REDIS_KEYSPACE_HITS, metrics.REDIS_KEYSPACE_MISSES)
    elif name == "pg.cache_hit_ratio":
        long = _ratio(frame, metrics.PG_DB_BLKS_HIT, metrics.PG_DB_BLKS_READ)
    elif name == "pg.connections.used_ratio":
        summed = _summed(frame, ("state",))
        wide = summed.pivot_table(index=["series", "ts"], columns="name", values="value", aggfunc="sum")
        wide = wide.reindex(columns=[metrics.PG_CONNECTIONS, "pg.connections.max"])
        limit = wide["pg.connections.max"]
        long = (wide[metrics.PG_CONNECTIONS] / limit.where(limit > 0)).rename("value").reset_index()
    elif name == "queue.depth":
        frame = frame[~frame["label_map"].map(lambda lb: lb.get("state") in redis.FINISHED_STATES)]
        long = _summed(frame, ("state",))
    elif name == "queue.failed_per_min":
        summed = _summed(frame)
        long = summed.assign(value=rate(summed["value"], summed["width"], 60.0))
    elif (frame["kind"] == "counter").any():
        summed = _summed(frame)
        long = summed.assign(value=rate(summed["value"], summed["width"]))
        note += "; a counter, per second"
    else:
        long = _summed(frame)
    long = long.dropna(subset=["value"])[LONG_COLUMNS]
    if long["series"].nunique() > MAX_RULE_SERIES:
        top = long.groupby("series")["value"].max().nlargest(MAX_RULE_SERIES).index
        long = long[long["series"].isin(top)]
        note += f"; the {MAX_RULE_SERIES} highest lines"
    return RuleSeries(long.reset_index(drop=True), note + ".")


def _empty() -> pd.DataFrame:
    return pd.DataFrame(columns=LONG_COLUMNS)


# -- silences and Prometheus' own alerts ----------------------------------------------------------
def silences_table(settings: AlertSettings, alerts: Sequence[Alert], now: float) -> pd.DataFrame:
    """Every silence configured: matchers, until (UTC), active or expired, comment, and how many of
    the alerts now it mutes."""
    rows = []
    for s in settings.silences:
        until = s.until if s.until.tzinfo else s.until.replace(tzinfo=UTC)
        live = now < until.timestamp()
        muted = sum(all(a.labels.get(k) == v for k, v in s.matchers.items()) for a in alerts) if live else 0
        rows.append(
            {"matchers": ", ".join(f"{k}={v}" for k, v in s.matchers.items()), "until": pd.Timestamp(until),
             "state": "active" if live else "expired", "comment": s.comment, "muting": muted}
        )  # fmt: skip
    frame = pd.DataFrame(rows, columns=["matchers", "until", "state", "comment", "muting"])
    frame["until"] = pd.to_datetime(frame["until"], utc=True)
    return frame


def prometheus_firing(
    reader: Reader, targets: Sequence[Target], now: int, recent: int = 3600
) -> pd.DataFrame:
    """Per Prometheus target: how many alerts its Prometheus reported firing at the last cycle of the
    last `recent` seconds (`prom.alerts{state="firing"}`), and when; NaN when none was recorded."""
    picked = [t for t in targets if t.kind == "prometheus"]
    if not picked:
        return pd.DataFrame(columns=["target", "firing", "ts"])
    frame = reader.series(picked, (metrics.PROM_ALERTS,), Window(now - recent, now), "raw")
    frame = frame[frame["labels"].map(lambda lb: metrics.decode(lb).get("state") == "firing")]
    last = frame.sort_values("ts").groupby("target").tail(1).set_index("target")
    return pd.DataFrame(
        {
            "target": [t.name for t in picked],
            "firing": [float(last["sum"].get(t.name, math.nan)) for t in picked],
            "ts": [last["ts"].get(t.name) for t in picked],
        }
    )


# -- an incident --------------------------------------------------------------------------------
class Incident(NamedTuple):
    fingerprint: str
    name: str
    labels: dict[str, str]
    state: str  # pending, firing (active now), resolved or dropped
    value: float
    start: int  # when it became active
    fired: int | None
    end: int | None  # when it resolved; None: active (or dropped, then its last event)
    summary: str
    source_url: str | None

    def window(self, now: int) -> Window:
        """From INCIDENT_BEFORE before it became active to its resolution, or now."""
        return Window(
            self.start - INCIDENT_BEFORE, max(self.end if self.end is not None else now, self.start + 60)
        )


def find_incident(reader: Reader, fingerprint: str, now: int, interval: float) -> Incident | None:
    """The alert of that fingerprint: active now, else its last episode in the last SEARCH_BACK."""
    for a in reader.store.alerts():
        if a.fingerprint == fingerprint:
            summary = a.annotations.get("summary") or ""
            return Incident(fingerprint, a.name, a.labels, a.state, a.value, a.active_at, a.fired_at, None,
                            summary, a.source_url)  # fmt: skip
    window = Window(now - SEARCH_BACK, now)
    events = history(reader, window, fingerprint)  # read by its index: any URL can ask
    if events.empty:
        return None
    last = episodes(events, [], window, now, interval).iloc[0]
    labels = dict(last["labels"])
    fired = None if pd.isna(last["fired"]) else int(last["fired"])
    return Incident(fingerprint, str(last["name"]), labels, str(last["state"]), float(last["value"]),
                    int(last["start"]), fired, int(last["end"]), "", source_url(labels))  # fmt: skip


def statement_changes(
    reader: Reader, targets: Sequence[Target], window: Window, limit: int = 8
) -> pd.DataFrame:
    """The statements whose total time changed most in `window` against the window of the same
    length before it: statement_id, target, query, exec_ms, before_ms, change_ms, calls, mean_ms."""
    columns = ["statement_id", "target", "query", "exec_ms", "before_ms", "change_ms", "calls", "mean_ms"]
    picked = [t for t in targets if t.kind == "postgres"]
    if not picked:
        return pd.DataFrame(columns=columns)
    before = Window(window.start - window.seconds, window.start)
    now_top = statements.top_statements(reader, picked, window, limit=100)
    then_top = statements.top_statements(reader, picked, before, limit=100)
    both = now_top.merge(
        then_top[["statement_id", "exec_ms", "query", "target"]].rename(
            columns={"exec_ms": "before_ms", "query": "query_before", "target": "target_before"}
        ),
        on="statement_id",
        how="outer",
    )
    if both.empty:
        return pd.DataFrame(columns=columns)
    both["exec_ms"] = both["exec_ms"].fillna(0.0)
    both["before_ms"] = both["before_ms"].fillna(0.0)
    both["query"] = both["query"].fillna(both["query_before"])
    both["target"] = both["target"].fillna(both["target_before"])
    both["calls"] = both["calls"].fillna(0)
    both["change_ms"] = both["exec_ms"] - both["before_ms"]
    both = both.reindex(both["change_ms"].abs().sort_values(ascending=False).index).head(limit)
    both["statement_id"] = both["statement_id"].astype(int)
    return both[columns].reset_index(drop=True)


class Layers(NamedTuple):
    """An incident's window across layers, each a long frame (ts, series, value) but `connections`
    (series_frame rows of pg.connections, per target), `services` ((title, unit, long frame) per
    recorded series) and `slowlog` (slow-log entries)."""

    lock_waits: pd.DataFrame
    connections: pd.DataFrame
    redis_latency: pd.DataFrame
    queue_backlog: pd.DataFrame
    services: list[tuple[str, str, pd.DataFrame]]
    slowlog: pd.DataFrame


def layers(reader: Reader, targets: Sequence[Target], window: Window) -> Layers:
    pg = [t for t in targets if t.kind == "postgres"]
    nodes = [t for t in targets if t.kind == "redis"]
    prom = [t for t in targets if t.kind == "prometheus"]
    pg_frame = reader.series(pg, (LOCK_WAITS, metrics.PG_CONNECTIONS), window) if pg else None
    lock_waits = _gauge_lines(pg_frame, LOCK_WAITS) if pg_frame is not None else _empty()
    connections = (
        pg_frame[pg_frame["name"] == metrics.PG_CONNECTIONS] if pg_frame is not None else pd.DataFrame()
    )
    node_frame = reader.series(nodes, (REDIS_LATENCY, metrics.REDIS_QUEUE_DEPTH), window) if nodes else None
    latency, backlog = _empty(), _empty()
    if node_frame is not None and len(node_frame):
        latency = _gauge_lines(node_frame, REDIS_LATENCY, "event")
        depth = node_frame[node_frame["name"] == metrics.REDIS_QUEUE_DEPTH]
        labels = depth["labels"].map(metrics.decode)
        depth = depth[~labels.map(lambda lb: lb.get("state") in redis.FINISHED_STATES)]
        if len(depth):
            named = depth["labels"].map(metrics.decode).map(lambda lb: lb.get("queue", "?"))
            several = len(nodes) > 1
            series = [f"{t} · {q}" if several else q for t, q in zip(depth["target"], named, strict=True)]
            backlog = (
                depth.assign(series=series, value=_mean(depth))
                .groupby(["series", "ts"], as_index=False)["value"]
                .sum()[LONG_COLUMNS]
            )
    service_lines = []
    for t in prom:
        for name, series in services.configured(reader, t).items():
            unit = series.unit or ""
            title = f"{t.name} · {name}" if len(prom) > 1 else name
            service_lines.append((title, unit, services.service_line(reader, t, name, window)))
    slow = redis_reads.slowlog(reader, nodes, window, limit=50)
    return Layers(lock_waits, connections, latency, backlog, service_lines, slow)


def _gauge_lines(frame: pd.DataFrame, name: str, label: str | None = None) -> pd.DataFrame:
    points = frame[frame["name"] == name]
    if points.empty:
        return _empty()
    several = points["target"].nunique() > 1 or label is None
    if label is None:
        series = points["target"]
    else:
        own = points["labels"].map(lambda lb: metrics.decode(lb).get(label, lb) or name)
        series = [f"{t} · {o}" if several else o for t, o in zip(points["target"], own, strict=True)]
    out = points.assign(series=series, value=_mean(points))
    return out.groupby(["series", "ts"], as_index=False)["value"].sum()[LONG_COLUMNS]
