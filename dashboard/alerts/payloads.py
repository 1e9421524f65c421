"""The bodies our notifications carry: Alertmanager's webhook JSON, a Slack message, and the
alerts Alertmanager's own API takes (POST /api/v2/alerts).

Pure functions over `Alert`s. Label and annotation values come from the monitored systems (a
statement's text, a Redis key), so every value is clipped and every string made valid UTF-8 before
it is JSON-encoded: a hostile value can make a payload longer, never invalid.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

from dashboard.core.alerts import Alert

ZERO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager's endsAt of an alert still firing
MAX_LABELS = 64  # per alert: more is a rule bug, and receivers choke on it
MAX_KEY = 128
MAX_LABEL_VALUE = 1024
MAX_ANNOTATION = 4096
MAX_ALERTS = 500  # per webhook notification; the rest are counted in truncatedAlerts
SLACK_MAX_LINES = 50
SLACK_MAX_LINE = 300
_LABEL_NAME = re.compile(r"[^A-Za-z0-9_]")  # what Alertmanager accepts in a label name


def rfc3339(ts: float | None) -> str:
    """A Unix time as Alertmanager writes it (UTC, seconds); None as its zero time."""
    if ts is None:
        return ZERO_TIME
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def clip(text: object, limit: int) -> str:
    """`text` as valid UTF-8 (lone surrogates replaced) and at most `limit` characters."""
    s = str(text).encode("utf-8", "replace").decode("utf-8")
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _clipped(mapping: dict[str, str], limit: int) -> dict[str, str]:
    items = sorted(mapping.items(), key=lambda kv: (kv[0] != "alertname", kv[0]))[:MAX_LABELS]
    return {clip(k, MAX_KEY): clip(v, limit) for k, v in items}


def generator_url(alert: Alert, external_url: str | None) -> str:
    """The page behind the alert, absolute when the app's URL is known."""
    if not alert.source_url:
        return external_url or ""
    return urljoin(external_url.rstrip("/") + "/", alert.source_url) if external_url else alert.source_url


def webhook_alert(alert: Alert, external_url: str | None) -> dict[str, Any]:
    """One entry of a webhook notification's `alerts` (also what the journal keeps of a resolved
    alert until it has been sent)."""
    resolved = alert.state == "resolved"
    return {
        "status": "resolved" if resolved else "firing",
        "labels": _clipped(alert.labels, MAX_LABEL_VALUE),
        "annotations": _clipped(alert.annotations, MAX_ANNOTATION),
        "startsAt": rfc3339(alert.fired_at or alert.active_at),
        "endsAt": rfc3339(alert.resolved_at) if resolved else ZERO_TIME,
        "generatorURL": clip(generator_url(alert, external_url), MAX_ANNOTATION),
        "fingerprint": alert.fingerprint,
    }


def _common(dicts: list[dict[str, str]]) -> dict[str, str]:
    """The pairs every dict holds (Alertmanager's commonLabels / commonAnnotations)."""
    if not dicts:
        return {}
    first, rest = dicts[0], dicts[1:]
    return {k: v for k, v in first.items() if all(d.get(k) == v for d in rest)}


def group_key(group_labels: dict[str, str]) -> str:
    """Alertmanager's groupKey for the root route: `{}:{alertname="X", target="y"}`."""
    pairs = ", ".join(f"{k}={_quoted(v)}" for k, v in sorted(group_labels.items()))
    return clip("{}:{" + pairs + "}", MAX_ANNOTATION)


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def webhook_payload(
    receiver: str, group_labels: dict[str, str], alerts: list[dict[str, Any]], external_url: str | None
) -> dict[str, Any]:
    """Alertmanager's webhook body (version 4): firing alerts first, at most MAX_ALERTS of them."""
    ordered = sorted(alerts, key=lambda a: (a["status"] != "firing", a["startsAt"], a["fingerprint"]))
    kept = ordered[:MAX_ALERTS]
    return {
        "version": "4",
        "groupKey": group_key(group_labels),
        "truncatedAlerts": len(ordered) - len(kept),
        "status": "firing" if any(a["status"] == "firing" for a in kept) else "resolved",
        "receiver": receiver,
        "groupLabels": _clipped(group_labels, MAX_LABEL_VALUE),
        "commonLabels": _common([a["labels"] for a in kept]),
        "commonAnnotations": _common([a["annotations"] for a in kept]),
        "externalURL": external_url or "",
        "alerts": kept,
    }


# -- Slack ------------------------------------------------------------------------------------------
def slack_escape(text: str) -> str:
    """Slack's three control characters, escaped as it requires, so a label value such as
    `<https://evil|click>` or `<!channel>` shows as text instead of a link or a mention."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_line(alert: dict[str, Any]) -> str:
    labels = alert["labels"]
    summary = alert["annotations"].get("summary") or alert["annotations"].get("description") or ""
    where = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "alertname")
    line = f"{alert['status'].upper()} {labels.get('alertname', '?')} {{{where}}}"
    line = f"{line}: {summary}" if summary else line
    # One line per alert: a newline in a value must not start a fake line of its own.
    return "• " + slack_escape(clip(" ".join(line.split()), SLACK_MAX_LINE))


def slack_payload(webhook: dict[str, Any]) -> dict[str, str]:
    """A short Slack message for a webhook notification: a header and one line per alert."""
    alerts = webhook["alerts"]
    firing = sum(a["status"] == "firing" for a in alerts)
    head = f"[{webhook['status'].upper()}:{firing or len(alerts)}] " + ", ".join(
        f"{k}={v}" for k, v in sorted(webhook["groupLabels"].items())
    )
    lines = [slack_escape(clip(" ".join(head.split()), SLACK_MAX_LINE))]
    lines += [_slack_line(a) for a in alerts[:SLACK_MAX_LINES]]
    more = len(alerts) - SLACK_MAX_LINES + webhook.get("truncatedAlerts", 0)
    if more > 0:
        lines.append(f"… and {more} more")
    return {"text": "\n".join(lines)}


# -- Alertmanager API -------------------------------------------------------------------------------
def _label_name(name: str) -> str:
    """A label name Alertmanager accepts (it rejects the whole batch for one bad name)."""
    cleaned = _LABEL_NAME.sub("_", name) or "_"
    return "_" + cleaned if cleaned[0].isdigit() else cleaned


def alertmanager_alert(alert: Alert, ends_at: float, external_url: str | None) -> dict[str, Any]:
    """One alert of a POST /api/v2/alerts batch. Empty values are left out: to Alertmanager an
    empty label is no label."""
    labels = {_label_name(k): v for k, v in _clipped(alert.labels, MAX_LABEL_VALUE).items() if v}
    found: dict[str, Any] = {
        "labels": labels,
        "annotations": {_label_name(k): v for k, v in _clipped(alert.annotations, MAX_ANNOTATION).items()},
        "startsAt": rfc3339(alert.fired_at or alert.active_at),
        "endsAt": rfc3339(ends_at),
    }
    url = generator_url(alert, external_url)
    if url:
        found["generatorURL"] = clip(url, MAX_ANNOTATION)
    return found
