"""Services: the SLO scorecard of each Prometheus target, its series against their targets,
Prometheus' firing alerts and down scrape targets, and a service series beside a query's mean time
or a Redis hit rate on one timeline; collector health last."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard.analysis import redis_reads, services, slo, statements
from dashboard.analysis.reader import Reader
from dashboard.analysis.sqltext import one_line
from dashboard.analysis.targets import Target
from dashboard.ui import cached, charts, page_frame, plots
from dashboard.ui import frame as ui

CONFIGURE = """```yaml
targets:
  prometheus:
    - name: prod
      url: http://127.0.0.1:9090   # Prometheus, Thanos, Mimir or VictoriaMetrics
      interval: 60s
      preset: seed   # API p95 < 200 ms, errors < 0.1 %, availability >= 99.9 %, CPU < 70 %, memory < 80 %
      metrics: {selector: 'job="api"', node_selector: 'job="node"'}   # optional: your metric names
      series:        # optional: your own PromQL, with a unit and a target
        checkout_p99_ms: {expr: 'histogram_quantile(0.99, ...) * 1000', unit: ms, target: "< 500"}
```"""
NO_PROMETHEUS = f"""**No Prometheus target.** Name the Prometheus servers that hold your services'
metrics under `targets.prometheus` in `observatory.yaml` (or the file `$OBSERVATORY_CONFIG` names).
`preset: seed` records the seed's service targets with standard PromQL; `metrics:` names your
metrics if they differ from the usual ones (`http_request_duration_seconds`, `http_requests_total`,
node_exporter's):
{CONFIGURE}
Then run `observatory collect` (or `observatory up` for the collector and this app together)."""
NO_PROMETHEUS_DATA = """**No service data yet.** Run `observatory collect` (or `observatory up`) to
collect the Prometheus targets of the configuration; the first cycle back-fills the recent past
from Prometheus' own history."""

SCORE_COLUMNS = {
    "objective": st.column_config.TextColumn("objective", width="medium"),
    "target": st.column_config.TextColumn("target", width="small"),
    "window": st.column_config.TextColumn("window", help="the mean of the window's readings", width="small"),
    "verdict": st.column_config.TextColumn("verdict", width="small"),
    "current": st.column_config.TextColumn("current", help="the latest reading", width="small"),
    "worst": st.column_config.TextColumn(
        "worst hour", help="the hour whose mean is furthest on the wrong side of the target", width="small"
    ),
    "worst_at": st.column_config.DatetimeColumn(
        "worst hour began", format="YYYY-MM-DD HH:mm", timezone="UTC"
    ),
    "readings": st.column_config.NumberColumn("readings", format="%d", width="small"),
}
ALERT_COLUMNS = {
    "name": st.column_config.TextColumn("alert"),
    "state": st.column_config.TextColumn("state", width="small"),
    "since": st.column_config.DatetimeColumn("active since", format="YYYY-MM-DD HH:mm:ss", timezone="UTC"),
    "labels": st.column_config.TextColumn("labels", width="large"),
    "summary": st.column_config.TextColumn("summary", width="large"),
}
TARGET_COLUMNS = {
    "job": st.column_config.TextColumn("job"),
    "instance": st.column_config.TextColumn("instance"),
    "health": st.column_config.TextColumn("health", width="small"),
    "last_error": st.column_config.TextColumn("last error", width="large"),
    "last_scrape": st.column_config.DatetimeColumn(
        "last scrape", format="YYYY-MM-DD HH:mm:ss", timezone="UTC"
    ),
}
VERDICT_STYLES = {
    "pass": "background-color: #e8f5e9; color: #1b5e20; font-weight: 600",
    "fail": "background-color: #ffebee; color: #b71c1c; font-weight: 600",
}
BROKEN = "color: #b71c1c"
OVERLAY = "overlay_open"  # the expander of the service-and-database timeline


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def scorecard(reader: Reader, target: Target, window) -> None:
    card = services.scorecard(reader, target, window)
    if card.empty:
        st.caption("No series of this target has a target: give one, e.g. `target: '< 200'`.")
        return
    met, judged = int(card["passed"].eq(True).sum()), int(card["passed"].notna().sum())
    color = "green" if met == judged else "red"
    st.markdown(f"**SLO scorecard** · :{color}-badge[{met} of {judged} objectives met]")
    shown = slo.scorecard_table(card)
    broken = card["worst_passed"].eq(False).to_numpy()
    styled = shown.style.map(lambda v: VERDICT_STYLES.get(v, ""), subset=["verdict"]).apply(
        lambda col: [BROKEN if b else "" for b in broken], subset=["worst"]
    )
    ui.table(styled, SCORE_COLUMNS)


def series_charts(reader: Reader, target: Target, window) -> None:
    configured = services.configured(reader, target)
    errors = services.errors(reader, target)
    plots.show(service_charts(target, window), window)
    for name in configured:
        if name in errors:
            st.caption(f"Last evaluation of {ui.md_escape(name)}: {ui.md_escape(errors[name])}")


@cached.view
def service_charts(reader: Reader, target: Target, window) -> list[charts.Chart]:
    """Each configured series against its target, made once for every session (cached.view)."""
    shown = []
    for name, series in services.configured(reader, target).items():
        scale, unit = slo.display_scale(series.unit)
        line = None if series.slo is None else (series.slo[0], series.slo[1] * scale)
        label = slo.fmt_target(*series.slo, series.unit) if series.slo else ""
        lines = services.service_line(reader, target, name, window)
        shown.append(charts.slo_lines(lines, name, unit, line, label))
    return shown


def prometheus_state(reader: Reader, target: Target) -> None:
    st.markdown("**Prometheus' alerts and scrape targets**")
    if services.details(reader, target) is None:
        st.caption("Shown after the first successful collection of this target.")
        return
    counts = services.state(reader, target)
    alerts, down = services.alerts(reader, target), services.down(reader, target)
    if alerts.empty and down.empty:
        st.success(
            f"No alert firing or pending · all {counts['targets']} scrape targets up", icon=":material/check:"
        )
        return
    if len(alerts):
        st.error(
            f"{plural(counts['firing'], 'alert')} firing, {counts['pending']} pending",
            icon=":material/notifications:",
        )
        ui.table(alerts[list(ALERT_COLUMNS)], ALERT_COLUMNS)
    else:
        st.caption("No alert firing or pending.")
    if len(down):
        st.error(
            f"{len(down)} of {plural(counts['targets'], 'scrape target')} down", icon=":material/link_off:"
        )
        ui.table(down[list(TARGET_COLUMNS)], TARGET_COLUMNS)
    else:
        st.caption(f"All {counts['targets']} scrape targets up.")


def service(reader: Reader, target: Target, window) -> None:
    scorecard(reader, target, window)
    series_charts(reader, target, window)
    prometheus_state(reader, target)


def overlay(reader: Reader, targets: list[Target], window) -> None:
    """A service series and a query's mean time (or a Redis hit rate) on one time axis."""
    st.subheader("Service and database on one timeline")
    series_names = {f"{t.id}:{name}": (t, name) for t in targets for name in services.configured(reader, t)}
    if not series_names:
        return
    label = "Pick a service series, and a query's mean time or a Redis hit rate to put beside it"
    box = st.expander(label, key=OVERLAY, on_change="rerun")
    if not box.open:  # drawn on demand: its select boxes and chart cost the page 0.1-0.2 s (issue 11)
        return
    with box:
        overlay_chart(reader, targets, series_names, window)


def overlay_chart(reader: Reader, targets: list[Target], series_names: dict, window) -> None:
    queries, redis_nodes, others = beside_choices(reader, window)
    several = len(targets) > 1
    left, right = st.columns(2)
    chosen = left.selectbox(
        "Service series",
        list(series_names),
        format_func=lambda k: (
            f"{series_names[k][0].name} · {series_names[k][1]}" if several else series_names[k][1]
        ),
        key="overlay_service",
    )
    other = right.selectbox(
        "Beside it", list(others), format_func=others.get, key="overlay_other",
        placeholder="no query or Redis node recorded in this window",
    )  # fmt: skip
    target, name = series_names[chosen]
    series = services.configured(reader, target)[name]
    scale, unit = slo.display_scale(series.unit)
    line = None if series.slo is None else (series.slo[0], series.slo[1] * scale)
    service_line = services.service_line(reader, target, name, window)
    if other in queries:
        sid, pg_target = queries[other]
        beside = services.statement_mean_line(reader, sid, pg_target, window, f"query #{sid} mean")
        beside_unit = "query mean (ms)"
    elif other in redis_nodes:
        node = redis_nodes[other]
        beside = redis_reads.hit_rate_line(reader, node, window, f"{node.name} hit rate")
        beside_unit = "hit rate (%)"
    else:
        beside, beside_unit = pd.DataFrame(columns=["ts", "series", "value"]), ""
    left_unit = f"{name} ({unit})" if unit else name
    chart = charts.overlay(service_line, left_unit, beside, beside_unit, target=line)
    plots.show([chart], window, columns=1)
    if other in queries:
        st.page_link(ui.QUERY_PAGE, label=f"Open query #{queries[other][0]}", icon=":material/search:",
                     query_params={"id": queries[other][0]})  # fmt: skip


def beside_choices(
    reader: Reader, window
) -> tuple[dict[str, tuple[int, Target]], dict[str, Target], dict[str, str]]:
    """What can go beside a service series: the window's top queries of the PostgreSQL targets
    picked (key -> statement id and target) and the Redis nodes picked (key -> node), with the
    labels of both (key -> label)."""
    others: dict[str, str] = {}
    queries: dict[str, tuple[int, Target]] = {}
    postgres = ui.current_targets("postgres")
    if postgres:
        for r in statements.top_statements(reader, postgres, window, limit=10).itertuples():
            others[f"query:{r.statement_id}"] = f"Query #{r.statement_id} mean time: {one_line(r.query, 70)}"
            queries[f"query:{r.statement_id}"] = (
                int(r.statement_id),
                Target(int(r.target_id), str(r.target)),
            )
    redis_nodes = {f"redis:{t.id}": t for t in ui.current_targets("redis")}
    others.update({key: f"Redis {t.name} hit rate" for key, t in redis_nodes.items()})
    return queries, redis_nodes, others


st.title("Services")
reader = cached.reader()
targets, window, statuses = page_frame.per_target(
    reader,
    "prometheus",
    none=NO_PROMETHEUS,
    no_data=NO_PROMETHEUS_DATA,
    caption="Service level objectives from Prometheus, {window} · times in UTC",
    draw=service,
)
overlay(reader, targets, window)
ui.health(statuses)
