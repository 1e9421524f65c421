"""Posting the review to the alert receivers of the configuration (`send`), for a schedule the
daemon keeps (`review: {schedule: "mon 08:00", receivers: [...]}`).

- webhook: one JSON document, {"kind": "observatory.review", period, baseline, generated, summary,
  url, markdown, html, cut}: the summary to show, the Markdown to paste, the self-contained HTML file
  as the attachment (a webhook receiver takes what it wants of it). Bounded: each statement text at
  STATEMENT_MAX characters, the Markdown at MARKDOWN_MAX bytes and the HTML at HTML_MAX (left out
  past it); `cut` says what was cut, and the Markdown says so at its end;
- Slack: the summary as the message text (an incoming webhook takes no file), sent with "mrkdwn":
  false so that SQL's * _ ~ ` show as written, and escaped as Slack needs (& < >);
- Alertmanager: left out, it takes alerts, not documents (reported as not delivered, with why).

No e-mail: the configuration has no SMTP settings (dashboard/core/config.py); add them first.

Delivery goes through the alerts' own `Sender` (dashboard/alerts/dispatch.py): the same retries,
the same redirect refusal, URL passwords and Slack URLs kept out of every log line. Its log lines
say "alert notification to <label> failed" whatever it sends (it takes no word for what it sends):
the label starts with "weekly review", so a failed review reads as the review's.
"""

from __future__ import annotations

import functools
import queue
import time
from collections.abc import Sequence
from typing import NamedTuple
from urllib.parse import urlsplit

from dashboard.alerts.dispatch import Job, Outcome, Retry, Sender
from dashboard.alerts.payloads import clip, rfc3339, slack_escape
from dashboard.analysis.review.model import Review
from dashboard.analysis.sqltext import one_line
from dashboard.core.config import AlertmanagerReceiver, Config, Receiver, SlackReceiver
from dashboard.core.redaction import password_of, secret_from_env
from dashboard.report import render
from dashboard.report.text import change_pct, ms

KIND = "observatory.review"
SUMMARY_LINES = 5  # regressions and improvements named in the summary
SLACK_MAX = 3900  # characters of a Slack message's text (it truncates past 4,000)
STATEMENT_MAX = 2000  # characters of a statement's text in a webhook's documents
MARKDOWN_MAX = 256 * 1024  # bytes of the webhook's Markdown (UTF-8)
HTML_MAX = 4 * 1024 * 1024  # bytes of its HTML file (uPlot alone is ~50 KiB): left out past it
LOG_PREFIX = "weekly review: "  # the Sender logs "alert notification to <label> failed"
DEFAULT_RETRY = Retry(attempts=3, base=2.0, timeout=15.0)  # a review is not urgent, but it is big


class Delivery(NamedTuple):
    receiver: str  # how logs name it: its kind and host or variable, never a secret
    delivered: bool
    reason: str = ""  # why not, when it was not sent at all


def send(
    review: Review,
    receivers: Sequence[Receiver],
    config: Config,
    *,
    retry: Retry = DEFAULT_RETRY,
    timeout: float = 120.0,
) -> list[Delivery]:
    """Post `review` to each receiver, retrying as alert notifications do; wait up to `timeout`
    seconds in all, and say which were delivered."""
    outcomes: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
    found: list[Delivery] = []
    senders: list[Sender] = []
    webhook: dict | None = None
    for number, receiver in enumerate(receivers):
        if isinstance(receiver, AlertmanagerReceiver):
            found.append(Delivery("alertmanager", False, "Alertmanager takes alerts, not reports"))
            continue
        sender = _sender(number, receiver, outcomes, retry)
        if isinstance(receiver, SlackReceiver):
            body = slack_body(review)
        else:
            webhook = webhook or webhook_body(review, config)
            body = webhook
        sender.submit(Job(KIND, body))
        senders.append(sender)
    deadline = time.monotonic() + timeout
    while not all(s.idle for s in senders) and time.monotonic() < deadline:
        time.sleep(0.02)
    for sender in senders:
        sender.close(0)
    delivered = set()
    while not outcomes.empty():
        outcome = outcomes.get_nowait()
        if outcome.delivered:
            delivered.add(outcome.receiver)
    return found + [Delivery(s.label.removeprefix(LOG_PREFIX), s.name in delivered) for s in senders]


def summary(review: Review) -> str:
    """A few lines of plain text: the counts, the objectives missed, the largest changes."""
    latest = [o for o in review.objectives if o.week == review.period.label]
    missed = [o.name for o in latest if o.met is False]
    lines = [
        f"Weekly performance review {review.period.label} (vs {review.baseline.label})",
        f"{len(review.regressions)} regressions, {len(review.improvements)} improvements, "
        f"{len(review.new)} new heavy statements, {len(review.gone)} gone; "
        f"{len(review.alerts)} alerts fired; {len(review.indexes)} new indexes, "
        f"{len(review.suggestions)} open suggestions, {len(review.unused)} unused indexes",
        f"SLOs: {sum(o.met is True for o in latest)} met, {len(missed)} missed"
        + (f" ({', '.join(missed)})" if missed else "")
        + f", {sum(o.met is None for o in latest)} not measured",
    ]
    for title, changes in (("Regressed", review.regressions), ("Improved", review.improvements)):
        for c in changes[:SUMMARY_LINES]:
            lines.append(
                f"{title} {change_pct(c.change)}: {ms(c.mean_ms[0])} -> {ms(c.mean_ms[1])}, "
                f"{c.target}: {one_line(c.query, 100)}"
            )
    return "\n".join(" ".join(line.split()) for line in lines)


def webhook_body(review: Review, config: Config) -> dict:
    def period(p) -> dict:
        return {"label": p.label, "start": rfc3339(p.start), "end": rfc3339(p.end)}

    shortened, statements = clipped(review)
    markdown, markdown_cut = _markdown(shortened)
    html = render.html(shortened)
    html_cut = len(html.encode("utf-8")) > HTML_MAX
    return {
        "kind": KIND,
        "version": 1,
        "period": period(review.period),
        "baseline": period(review.baseline),
        "generated": rfc3339(review.generated),
        "summary": summary(review),
        "url": config.alerts.external_url,
        "markdown": markdown,
        "html": None if html_cut else html,
        "cut": {"statements": statements, "markdown": markdown_cut, "html": html_cut},
    }


def clipped(review: Review) -> tuple[Review, int]:
    """`review` with every statement text at most STATEMENT_MAX characters, and how many were cut:
    one statement of 1 MB must not make the document a megabyte (the store keeps texts whole)."""
    cut = 0

    def short(text: str) -> str:
        nonlocal cut
        cut += len(text) > STATEMENT_MAX
        return clip(text, STATEMENT_MAX)

    def changes(found: tuple) -> tuple:
        return tuple(c._replace(query=short(c.query)) for c in found)

    indexes = tuple(
        o._replace(statements=tuple(e._replace(query=short(e.query)) for e in o.statements))
        for o in review.indexes
    )
    suggestions = tuple(s._replace(create_sql=short(s.create_sql)) for s in review.suggestions)
    shortened = review._replace(
        regressions=changes(review.regressions),
        improvements=changes(review.improvements),
        new=changes(review.new),
        gone=changes(review.gone),
        indexes=indexes,
        suggestions=suggestions,
    )
    return shortened, cut


def _markdown(review: Review) -> tuple[str, bool]:
    """The review's Markdown, at most MARKDOWN_MAX bytes: cut at a line's end, saying so."""
    text = render.markdown(review)
    if len(text.encode("utf-8")) <= MARKDOWN_MAX:
        return text, False
    note = (
        f"\n_Cut here: the review is longer than {MARKDOWN_MAX // 1024} KiB; "
        "`observatory report` writes all of it._\n"
    )
    kept = text.encode("utf-8")[: MARKDOWN_MAX - len(note.encode("utf-8"))].decode("utf-8", "ignore")
    return kept[: kept.rfind("\n") + 1] + note, True


def slack_body(review: Review) -> dict:
    # mrkdwn off: a statement's * _ ~ ` are SQL, not bold or code; & < > are still Slack's controls.
    return {"text": slack_escape(clip(summary(review), SLACK_MAX)), "mrkdwn": False}


def _sender(number: int, receiver: Receiver, outcomes: queue.SimpleQueue[Outcome], retry: Retry) -> Sender:
    """The receiver's worker; named by its place in the list (two may share a host)."""
    if isinstance(receiver, SlackReceiver):
        variable = receiver.slack.url_env
        url = functools.partial(secret_from_env, variable, "url_env")  # read when it is sent
        return Sender(f"review-{number}", f"{LOG_PREFIX}slack ({variable})", url, outcomes, retry, [])
    target = receiver.webhook
    label = f"{LOG_PREFIX}webhook ({_origin(target)})"
    return Sender(f"review-{number}", label, lambda: target, outcomes, retry, [password_of(target) or ""])


def _origin(url: str) -> str:
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}"
    except ValueError:
        return "an invalid URL"
