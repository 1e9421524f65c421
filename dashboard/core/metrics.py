"""The names of the series the store holds, and the one codec of their labels.

A point's labels are one string, "k=v,k2=v2": collectors write it with `encode`, analyses read it with
`decode`. Values go through `label_value`, so no name a server reports (a database called "a,b=c")
can split into labels of its own.
"""

from __future__ import annotations

from collections.abc import Mapping

LABEL_CHARS = 200  # per key or value; the store's column holds 400 characters of labels in all

# Prometheus: one series per configured expression, plus what Prometheus says about itself.
PROM_SERIES = "prom.series"
PROM_ALERTS = "prom.alerts"
PROM_TARGETS = "prom.targets"


def label_value(value: object) -> str:
    """A label key or value that cannot break the "k=v,k2=v2" form."""
    return str(value).replace(",", "_").replace("=", "_")[:LABEL_CHARS]


def encode(labels: Mapping[str, object]) -> str:
    """{"lib": "bullmq", "queue": "email"} -> "lib=bullmq,queue=email", in the mapping's order."""
    return ",".join(f"{label_value(k)}={label_value(v)}" for k, v in labels.items())


def decode(text: str | None) -> dict[str, str]:
    """ "lib=bullmq,queue=email" -> {"lib": "bullmq", "queue": "email"}."""
    return dict(part.split("=", 1) for part in (text or "").split(",") if "=" in part)
