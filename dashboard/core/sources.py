"""The sources the observatory reads: each registers its config, collector, details and pages here, once.

Adding a source touches exactly:
- its package under `collectors/` (the collector, with the source's `kind`);
- `core.config`: its target model (fields that refer to a secret marked with `Secret`) and a list
  of them in `Targets`, under the source's kind (tests/test_sources.py checks that `Targets` and
  `SOURCES` name the same kinds);
- its details model (`core.details`);
- one entry in `SOURCES` below;
- its figures in `dashboard.analysis` and its pages under `pages/`.

A page over every source's data (Alerts) is registered once in `COMMON_PAGES`; `pages()` lists them all.

Everything else reads this table or the config models and names no source: the scheduler, the
status merge (pages and `observatory status`), the sidebar, the app's navigation, the store's
details reads, the secrets kept out of logs (`redaction.known_secrets`) and `observatory collect`'s
message when nothing is configured.
"""

from __future__ import annotations

from typing import NamedTuple

from pydantic import BaseModel

from dashboard.core.config import Config, PostgresTarget, PrometheusTarget, RedisTarget
from dashboard.core.details import Details, PostgresDetails, RedisDetails
from dashboard.core.prometheus_details import PrometheusDetails


class Page(NamedTuple):
    """A page script under pages/, as st.navigation lists it."""

    script: str  # relative to the entrypoint, dashboard/app.py
    title: str
    icon: str
    url_path: str = ""  # "" lets Streamlit derive it from the script's name
    position: int = 50  # navigation order across sources; detail pages sort last


class Source(NamedTuple):
    kind: str  # the key under `targets:` in the config, and the store's target kind
    title: str  # what people call it
    config: type[BaseModel]  # one target's config model
    collector: str  # "module:Class"; only the collector daemon imports it
    details: type[Details]  # what its collector keeps of a cycle (Status.details), as the store parses it
    pages: tuple[Page, ...]


SOURCES: tuple[Source, ...] = (
    Source(
        "postgres",
        "PostgreSQL",
        PostgresTarget,
        "collectors.postgres.collector:PostgresCollector",
        PostgresDetails,
        (
            Page("../pages/overview.py", "Overview", ":material/dashboard:", position=0),
            Page("../pages/queries.py", "Queries", ":material/list:", position=10),
            Page("../pages/tables.py", "Tables", ":material/table_chart:", "tables", position=19),
            Page("../pages/indexes.py", "Indexes", ":material/bolt:", "indexes", position=20),
            Page("../pages/connections.py", "Connections", ":material/lan:", "connections", position=21),
            Page("../pages/replication.py", "Replication", ":material/sync:", "replication", position=22),
            Page("../pages/settings.py", "Settings", ":material/tune:", "settings", position=23),
            Page("../pages/query.py", "Query detail", ":material/search:", "query", position=90),
        ),
    ),
    Source(
        "redis",
        "Redis",
        RedisTarget,
        "collectors.redis.collector:RedisCollector",
        RedisDetails,
        (Page("../pages/redis.py", "Redis", ":material/memory:", "redis", position=30),),
    ),
    Source(
        "prometheus",
        "Prometheus",
        PrometheusTarget,
        "collectors.prometheus.collector:PrometheusCollector",
        PrometheusDetails,
        (Page("../pages/services.py", "Services", ":material/monitor_heart:", "services", position=40),),
    ),
)
BY_KIND = {source.kind: source for source in SOURCES}

# Pages over every source's data, registered by no one source.
COMMON_PAGES: tuple[Page, ...] = (
    Page("../pages/alerts.py", "Alerts", ":material/notifications:", "alerts", position=5),
    Page("../pages/review.py", "Weekly review", ":material/summarize:", "review", position=6),
    Page("../pages/investigate.py", "Investigate", ":material/troubleshoot:", "investigate", position=25),
)


def pages() -> list[Page]:
    """Every registered page (the sources' and the common ones), in navigation order."""
    found = [*COMMON_PAGES, *(p for source in SOURCES for p in source.pages)]
    return sorted(found, key=lambda p: p.position)


def configured(config: Config, kind: str) -> list:
    """The config's targets of one source, in the order written."""
    return list(getattr(config.targets, kind))


def title(kind: str) -> str:
    source = BY_KIND.get(kind)
    return source.title if source else kind


def page(script_name: str) -> Page:
    """The registered page whose script is pages/<script_name>.py."""
    for found in pages():
        if found.script.endswith(f"/{script_name}.py"):
            return found
    raise KeyError(script_name)
