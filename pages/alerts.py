"""Alerts: what fires and is pending now, the window's history, every rule and its state (broken
ones with their message), silences and Prometheus' own alerts. `?incident=<fingerprint>` opens an
alert's incident view: its window across PostgreSQL, Redis, queues and services on one time axis."""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import partial

import pandas as pd
import streamlit as st

from dashboard.alerts.rules import Rule
from dashboard.analysis import alerts
from dashboard.analysis.reader import Reader
from dashboard.analysis.sqltext import one_line
from dashboard.analysis.targets import Target
from dashboard.core.alerts import Alert
from dashboard.ui import cached, charts, plots
from dashboard.ui import frame as ui

HOW = """Alerts come from the rules of `alerts:` in `observatory.yaml` (the built-in pack and your
`rule_files`), evaluated by `observatory collect` (or `observatory up`) after each cycle: see the
README section "Alerts"."""
INCIDENT = "incident"  # the query parameter of the incident view: an alert's fingerprint
DATETIME = {"format": "YYYY-MM-DD HH:mm:ss", "timezone": "UTC"}
ACTIVE_COLUMNS = {
    "name": st.column_config.TextColumn("alert"),
    "state": st.column_config.TextColumn("state", width="small"),
    "value": st.column_config.TextColumn(
        "value", width="small", help="the rule's value at the last evaluation"
    ),
    "since": st.column_config.DatetimeColumn("active since (UTC)", **DATETIME),
    "for": st.column_config.TextColumn("for", width="small", help="how long it has been pending or firing"),
    "summary": st.column_config.TextColumn("summary", width="large"),
    "labels": st.column_config.TextColumn("labels", width="medium"),
    "page": st.column_config.LinkColumn(
        "behind it", display_text=r"^([^&]*)", help="the page behind the alert"
    ),
}
EPISODE_COLUMNS = {
    "name": st.column_config.TextColumn("alert"),
    "labels": st.column_config.TextColumn("labels", width="medium"),
    "state": st.column_config.TextColumn("state", width="small"),
    "start": st.column_config.DatetimeColumn("pending from", **DATETIME),
    "fired": st.column_config.DatetimeColumn("firing from", **DATETIME),
    "end": st.column_config.DatetimeColumn("ended", **DATETIME),
    "lasted": st.column_config.TextColumn("lasted", width="small"),
    "value": st.column_config.TextColumn("value", width="small", help="its last known value"),
}
EVENT_COLUMNS = {
    "time": st.column_config.DatetimeColumn("time", **DATETIME),
    "name": st.column_config.TextColumn("alert"),
    "state": st.column_config.TextColumn("became", width="small"),
    "value": st.column_config.TextColumn("value", width="small"),
    "labels": st.column_config.TextColumn("labels", width="large"),
}
RULE_COLUMNS = {
    "name": st.column_config.TextColumn("rule"),
    "group": st.column_config.TextColumn("group", width="small"),
    "status": st.column_config.TextColumn("status", width="small"),
    "expr": st.column_config.TextColumn("expr", width="large"),
    "for": st.column_config.TextColumn("for", width="small"),
    "keep_firing_for": st.column_config.TextColumn("keep firing for", width="small"),
    "source": st.column_config.TextColumn("source", width="small"),
    "where": st.column_config.TextColumn("defined at"),
    "error": st.column_config.TextColumn("error", width="medium"),
}
SILENCE_COLUMNS = {
    "matchers": st.column_config.TextColumn("matchers", width="medium"),
    "until": st.column_config.DatetimeColumn("until", **DATETIME),
    "state": st.column_config.TextColumn("state", width="small"),
    "comment": st.column_config.TextColumn("comment", width="large"),
    "muting": st.column_config.NumberColumn("alerts it mutes now", format="%d"),
}
STATEMENT_COLUMNS = {
    "link": st.column_config.LinkColumn("id", display_text=r"id=(\d+)", width="small"),
    "query": st.column_config.TextColumn("query", width="large"),
    "target": st.column_config.TextColumn("target", width="small"),
    "exec_s": st.column_config.NumberColumn("time in the window", format="%.2f s"),
    "before_s": st.column_config.NumberColumn("the window before", format="%.2f s"),
    "change_s": st.column_config.NumberColumn("change", format="%+.2f s"),
}
SLOWLOG_COLUMNS = {
    "time": st.column_config.DatetimeColumn("time", **DATETIME),
    "target": st.column_config.TextColumn("node", width="small"),
    "duration_ms": st.column_config.NumberColumn("duration", format="%.2f ms", width="small"),
    "command": st.column_config.TextColumn("command", width="large"),
}
STATUS_STYLES = {
    "broken": "background-color: #ffebee; color: #b71c1c; font-weight: 600",
    "firing": "color: #b71c1c; font-weight: 600",
    "pending": "color: #e65100; font-weight: 600",
    "ok": "color: #1b5e20",
}


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def choose_incident(key: str, fingerprints: list[str]) -> None:
    """A row picked in a table of alerts opens its incident view."""
    rows = st.session_state[key].selection.rows
    if rows:
        st.query_params[INCIDENT] = fingerprints[rows[0]]


def close_incident() -> None:
    st.query_params.pop(INCIDENT, None)


# -- now ----------------------------------------------------------------------------------------
def header(shown: Sequence[Alert]) -> None:
    found = alerts.counts(shown)
    if found["firing"] or found["pending"]:
        st.markdown(f":red-badge[{found['firing']} firing] :orange-badge[{found['pending']} pending]")
    else:
        st.markdown(":green-badge[nothing firing or pending]")


def now_section(shown: Sequence[Alert], hidden: int, now: float) -> None:
    st.subheader("Firing and pending now")
    if hidden:
        st.caption(f"{plural(hidden, 'alert')} of targets not picked in the sidebar left out.")
    if not shown:
        st.success("No alert firing or pending", icon=":material/check:")
        st.caption(HOW)
        return
    table = alerts.active_table(shown, now, ui.window_query())
    pick = partial(choose_incident, "now_alerts", table["fingerprint"].tolist())
    ui.table(table[list(ACTIVE_COLUMNS)], ACTIVE_COLUMNS, max_height=420, key="now_alerts", on_select=pick,
             selection_mode="single-row")  # fmt: skip
    st.caption("As of the collector's last evaluation. Select a row for its incident view.")


# -- history ------------------------------------------------------------------------------------
def history_section(reader: Reader, every: Sequence[Alert], window, now: int, interval: float) -> None:
    st.subheader("History")
    events = alerts.history(reader, window)
    found = alerts.episodes(events, every, window, now, interval)
    if found.empty:
        st.caption(f"No alert was pending or firing in the {ui.window_label()}.")
        return
    colors = charts.ALERT_STATE_COLORS
    chart = charts.stacked_area(alerts.activity(found, window, now), "Alerts active", "alerts", colors)
    plots.show([chart], window, columns=1)
    box = st.expander(f"Each alert from pending to resolved ({len(found)})", key="episodes_open",
                      on_change="rerun")  # fmt: skip
    if box.open:  # drawn on demand: a table is a grid the browser builds (issue 11)
        with box:
            table = alerts.episodes_table(found)
            pick = partial(choose_incident, "episodes", table["fingerprint"].tolist())
            ui.table(table[list(EPISODE_COLUMNS)], EPISODE_COLUMNS, max_height=420, key="episodes",
                     on_select=pick, selection_mode="single-row")  # fmt: skip
            st.caption(
                f"In the {ui.window_label()}, newest first; select a row for its incident view. An alert "
                "that stops holding while pending is dropped without a trace (as in Prometheus): it is "
                "shown for one evaluation interval."
            )
    box = st.expander(f"Every change of state ({len(events)})", key="events_open", on_change="rerun")
    if box.open:
        with box:
            ui.table(alerts.events_table(events)[list(EVENT_COLUMNS)], EVENT_COLUMNS, max_height=500)


# -- rules --------------------------------------------------------------------------------------
@cached.view
def rule_set(reader: Reader) -> tuple[list[Rule], list[str]]:
    """The rules as the daemon loads them, read once for every session (cached.view)."""
    return alerts.loaded_rules(reader.config)


def rules_section(reader: Reader, every: Sequence[Alert], targets: list[Target], window) -> None:
    st.subheader("Rules")
    found, load_now = rule_set()
    errors = alerts.rule_errors(reader)
    broken = alerts.problems(errors, load_now, found)
    if broken:  # each message escaped on its own, one a line (hard breaks)
        lines = "\\\n".join(ui.md_escape(problem) for problem in broken)
        st.error(
            f"**{plural(len(broken), 'broken rule')} or rule file problems:**\\\n{lines}",
            icon=":material/error:",
        )
    if not errors.saved:
        st.caption(
            "The collector has not evaluated the rules yet: `observatory collect` (or `observatory up`) "
            f"evaluates them every {alerts.duration_text(reader.config.alerts.evaluation_interval)}."
        )
    if not found:
        st.caption(f"No rule loaded. {HOW}")
        return
    table = alerts.rules_table(found, every, errors, alerts.config_folder(reader.config))
    states = table["status"].value_counts()
    summary = ", ".join(f"{states[s]} {s}" for s in STATUS_STYLES if s in states)
    box = st.expander(f"All {plural(len(found), 'rule')}: {summary}", key="rules_open", on_change="rerun")
    if box.open:  # drawn on demand: a table is a grid the browser builds (issue 11)
        with box:
            columns = [c for c in RULE_COLUMNS if c != "error" or table["error"].any()]
            styled = table[columns].style.map(lambda v: STATUS_STYLES.get(v, ""), subset=["status"])
            ui.table(styled, {c: RULE_COLUMNS[c] for c in columns})
            st.caption(
                "The rules as the configuration's files hold them now (the collector reads them when it "
                "starts). Status: the rule's alerts now; broken: its last evaluation failed."
            )
    box = st.expander(
        "A rule's series over the window, with its threshold", key="rule_open", on_change="rerun"
    )
    if box.open:  # drawn on demand: a read and a chart frame (issue 11)
        with box:
            rule_detail(reader, found, targets, window)


def rule_detail(reader: Reader, found: list[Rule], targets: list[Target], window) -> None:
    index = st.selectbox(
        "Rule",
        range(len(found)),
        key="rule_detail",
        format_func=lambda i: f"{found[i].name} · {found[i].expr}",
    )
    rule = found[index]
    shown = alerts.rule_series(reader, rule, targets, window)
    if rule.parsed is not None and not shown.long.empty:
        parsed = rule.parsed
        chart = charts.threshold_lines(
            shown.long, rule.name, parsed.selector.name, parsed.op, parsed.threshold
        )
        plots.show([chart], window, columns=1)
    st.caption(ui.md_escape(shown.note))


# -- silences, Prometheus -----------------------------------------------------------------------
def silences_section(reader: Reader, every: Sequence[Alert], now: float) -> None:
    st.subheader("Silences")
    table = alerts.silences_table(reader.config.alerts, every, now)
    if table.empty:
        st.caption(
            "No silence configured. A silence keeps the alerts it matches out of notifications until a "
            "time (they still show here): `alerts: silences: [{matchers: {alertname: X}, until: "
            "2026-12-01T08:00:00Z, comment: ...}]`."
        )
        return
    ui.table(table[list(SILENCE_COLUMNS)], SILENCE_COLUMNS)
    st.caption("Silenced alerts still fire and show on this page; no receiver is notified of them.")


def prometheus_section(reader: Reader, targets: list[Target], now: int) -> None:
    picked = [t for t in targets if t.kind == "prometheus"]
    if not picked:
        return
    st.subheader("Prometheus' own alerts")
    found = alerts.prometheus_firing(reader, picked, now)
    cols = st.columns(4)
    for i, r in enumerate(found.itertuples()):
        firing = "–" if r.firing != r.firing else f"{r.firing:.0f} firing"
        cols[i % len(cols)].metric(
            ui.md_escape(r.target),
            firing,
            help="alerts its Prometheus reported firing at the collector's last cycle (prom.alerts)",
            border=True,
        )
    st.caption(
        "Alerts Prometheus evaluates with its own rules, beside ours: the Services page lists each one."
    )
    st.page_link(ui.SERVICES_PAGE, label="Open Services", icon=":material/monitor_heart:")


# -- an incident --------------------------------------------------------------------------------
def incident_view(reader: Reader, fingerprint: str, targets: list[Target], now: int, interval: float) -> None:
    st.button("All alerts", icon=":material/arrow_back:", on_click=close_incident)
    found = alerts.find_incident(reader, fingerprint, now, interval)
    if found is None:
        st.warning(
            f"No alert with fingerprint '{ui.md_escape(fingerprint)}' is active or was in the last "
            f"{alerts.SEARCH_BACK // 86400} days.",
            icon=":material/search_off:",
        )
        return
    window = found.window(now)
    color = {"firing": "red", "pending": "orange"}.get(found.state, "gray")
    st.subheader(f"Incident: {ui.md_escape(found.name)}")
    state = found.state if found.end is None else f"{found.state} at {ui.utc(found.end)}"
    st.markdown(f":{color}-badge[{ui.md_escape(state)}] value {ui.md_escape(alerts.fmt_value(found.value))}")
    if found.summary:
        st.markdown(ui.md_escape(found.summary))
    fired = f" · firing since {ui.utc(found.fired)}" if found.fired else ""
    st.caption(
        f"{ui.md_escape(alerts.labels_text(found.labels))} · active since {ui.utc(found.start)}{fired}. "
        f"From {ui.utc(window.start)} (30 min before it became active) to "
        f"{'its end' if found.end is not None else 'now'}, every layer on one time axis."
    )
    behind = ui.page_of(found.source_url)
    if behind is not None:
        st.page_link(behind[0], label="Open the page behind it", icon=":material/open_in_new:",
                     query_params=behind[1])  # fmt: skip
    statement_changes(reader, targets, window)
    layers = alerts.layers(reader, targets, window)
    plots.show(incident_charts(reader, found, targets, layers, window), window)
    slow_log(targets, layers.slowlog)


def statement_changes(reader: Reader, targets: list[Target], window) -> None:
    if not any(t.kind == "postgres" for t in targets):
        return
    st.markdown("**Statements whose time changed most** (against the window of the same length before)")
    found = alerts.statement_changes(reader, targets, window)
    if found.empty:
        st.caption("No statement ran in this window or the one before.")
        return
    shown = pd.DataFrame(
        {
            "link": [f"query?id={sid}" for sid in found["statement_id"]],
            "query": found["query"].map(lambda q: one_line(str(q), 160)),
            "target": found["target"],
            "exec_s": found["exec_ms"] / 1000,
            "before_s": found["before_ms"] / 1000,
            "change_s": found["change_ms"] / 1000,
        }
    )
    ui.table(shown, STATEMENT_COLUMNS, max_height=340)


def incident_charts(
    reader: Reader, found: alerts.Incident, targets: list[Target], layers: alerts.Layers, window
) -> list[charts.Chart]:
    kinds = {t.kind for t in targets}
    shown = []
    rule = next((r for r in rule_set()[0] if r.name == found.name), None)
    if rule is not None and rule.parsed is not None:
        own = [t for t in targets if t.name == found.labels.get("target")] or targets
        series = alerts.rule_series(reader, rule, own, window)
        parsed = rule.parsed
        shown.append(
            charts.threshold_lines(
                series.long, f"{rule.name}: {parsed.selector.name}", "", parsed.op, parsed.threshold
            )
        )
    if "postgres" in kinds:
        shown.append(charts.lines(layers.lock_waits, "PostgreSQL sessions waiting on a lock", "sessions"))
        for name, part in layers.connections.groupby("target", sort=False) if len(layers.connections) else ():
            several = layers.connections["target"].nunique() > 1
            shown.append(
                charts.connections_area(part, "Connections by state" + (f" — {name}" if several else ""))
            )
    if "redis" in kinds:
        shown.append(charts.lines(layers.redis_latency, "Redis latency (LATENCY LATEST)", "ms"))
        shown.append(charts.lines(layers.queue_backlog, "Queue backlog (jobs not finished)", "jobs"))
    for title, unit, long in layers.services:
        shown.append(charts.lines(long, title, unit))
    return shown


def slow_log(targets: list[Target], entries: pd.DataFrame) -> None:
    if not any(t.kind == "redis" for t in targets):
        return
    st.markdown("**Redis slow log in the window**")
    if entries.empty:
        st.caption("No command was slower than slowlog-log-slower-than in this window.")
        return
    shown = pd.DataFrame(
        {
            "time": pd.to_datetime(entries["ts"], unit="s", utc=True),
            "target": entries["target"],
            "duration_ms": entries["duration_us"] / 1000,
            "command": entries["command"],
        }
    )
    ui.table(shown, SLOWLOG_COLUMNS, max_height=340)


# -- the page -----------------------------------------------------------------------------------
st.title("Alerts")
reader = cached.reader()
window = ui.current_window()
now = int(time.time())
interval = float(reader.config.alerts.evaluation_interval)
targets = ui.current_targets()
every = alerts.active(reader)
known = {t.name for t in ui.known_targets()}
picked = {t.name for t in targets}
shown = [a for a in every if not alerts.hidden_by_targets(a, known, picked)]

incident = st.query_params.get(INCIDENT)
if incident:
    incident_view(reader, incident, targets, window.end, interval)
    st.stop()

header(shown)
st.caption(f"Alerts now, their history in the {ui.window_label()} · times in UTC")
now_section(shown, len(every) - len(shown), now)
history_section(reader, every, window, now, interval)
rules_section(reader, every, targets, window)
silences_section(reader, every, now)
prometheus_section(reader, targets, now)
