"""Notifications (dashboard.alerts.notify) against real HTTP receivers and a real Alertmanager.

Scheduling is driven by the `now` each test passes to `update()`, so group_wait, group_interval and
repeat_interval of minutes or hours take no time. Delivery is real: worker threads POST to
receivers started here. A count of requests is only asserted exact after `close()`, which waits
for the workers, so "nothing else was sent" is never a race.
"""

from __future__ import annotations

import base64
import itertools
import json
import logging
import time
import urllib.request
from datetime import UTC, datetime
from typing import Any

import pytest

from dashboard.alerts.notify import MemoryJournal, Notifier, Retry
from dashboard.alerts.payloads import MAX_LABEL_VALUE, ZERO_TIME, rfc3339
from dashboard.core.alerts import Alert
from dashboard.core.config import AlertSettings
from dashboard.servers.throwaway import ThrowawayAlertmanager
from tests.support.receiver import RecordingReceiver, SilentServer, closed_port

FAST = Retry(attempts=3, base=0.1, cap=0.4, timeout=1.0)
APP = "http://observatory.example:8501"
T0 = 1_700_000_000  # evaluation times (Unix seconds) the tests pass as `now`


def alert(name: str = "HighLatency", target: str = "api", state: str = "firing", **extra: Any) -> Alert:
    labels = {"alertname": name, "target": target, "severity": "warning", **extra.pop("labels", {})}
    return Alert(
        labels=labels,
        annotations={"summary": f"{name} on {target}", **extra.pop("annotations", {})},
        state=state,  # type: ignore[arg-type]
        value=extra.pop("value", 0.25),
        active_at=T0 - 60,
        fired_at=extra.pop("fired_at", T0 - 30),
        resolved_at=extra.pop("resolved_at", None),
        source_url=extra.pop("source_url", "/statements?queryid=42"),
    )


def resolved(a: Alert, at: int) -> Alert:
    return a._replace(state="resolved", resolved_at=at)


def settings(*receivers: dict, **overrides: Any) -> AlertSettings:
    values = {"group_wait": 30, "group_interval": 300, "repeat_interval": 3600, **overrides}
    return AlertSettings.model_validate({"receivers": list(receivers), **values})


def notifier(config: AlertSettings, journal: MemoryJournal | None = None, retry: Retry = FAST) -> Notifier:
    return Notifier(config, journal or MemoryJournal(), external_url=APP, retry=retry)


def labels_of(body: dict) -> list[dict]:
    return [a["labels"] for a in body["alerts"]]


def sent(n: Notifier, hook: RecordingReceiver) -> list[Any]:
    """Every body the receiver got, once the notifier's workers are done with what they were given."""
    assert n.wait(), "the notifier's workers did not finish in 5 s"
    return hook.bodies()


def test_firing_waits_group_wait_then_sends_alertmanager_webhook_json() -> None:
    with RecordingReceiver() as hook:
        n = notifier(settings({"webhook": hook.url}))
        fire = alert()
        n.update([fire._replace(state="pending")], T0 - 10)  # pending: never notified
        n.update([fire], T0)  # a new group: waits group_wait (30 s)
        n.update([fire], T0 + 29)
        assert sent(n, hook) == []
        n.update([fire], T0 + 30)
        [body] = sent(n, hook)
        n.close()
        assert hook.requests[0].path == "/hook"
    assert body == {
        "version": "4",
        "groupKey": '{}:{alertname="HighLatency", target="api"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": body["receiver"],
        "groupLabels": {"alertname": "HighLatency", "target": "api"},
        "commonLabels": fire.labels,
        "commonAnnotations": {"summary": "HighLatency on api"},
        "externalURL": APP,
        "alerts": [
            {
                "status": "firing",
                "labels": fire.labels,
                "annotations": fire.annotations,
                "startsAt": "2023-11-14T22:12:50Z",  # T0 - 30
                "endsAt": ZERO_TIME,
                "generatorURL": f"{APP}/statements?queryid=42",
                "fingerprint": fire.fingerprint,
            }
        ],
    }
    assert body["receiver"].startswith("webhook-") and "127.0.0.1" not in body["receiver"]


def test_repeats_every_repeat_interval_then_resolves_once_with_ends_at() -> None:
    with RecordingReceiver() as hook:
        n = notifier(settings({"webhook": hook.url}))
        fire = alert()
        for t in (T0, T0 + 30, T0 + 330, T0 + 3629):  # sent at +30; unchanged: no resend before +3630
            n.update([fire], t)
        assert len(sent(n, hook)) == 1
        n.update([fire], T0 + 3630)  # repeat_interval after the last notification
        assert len(sent(n, hook)) == 2
        n.update([resolved(fire, T0 + 3700)], T0 + 3700)  # changed, but group_interval (300 s) not yet
        n.update([], T0 + 3929)
        assert len(sent(n, hook)) == 2
        n.update([], T0 + 3930)  # 300 s after the repeat: the resolution goes out
        bodies = sent(n, hook)
        n.update([], T0 + 9000)  # resolved alerts are sent once, then forgotten
        n.update([fire], T0 + 9000)  # fires again: a new group, so group_wait again
        assert sent(n, hook) == bodies
        n.close()
    assert len(bodies) == 3 and bodies[0] == bodies[1]  # the repeat says the same
    assert bodies[2]["status"] == "resolved" and bodies[2]["alerts"][0]["status"] == "resolved"
    assert bodies[2]["alerts"][0]["endsAt"] == rfc3339(T0 + 3700)
    assert bodies[2]["alerts"][0]["startsAt"] == rfc3339(T0 - 30)


def test_groups_alerts_by_group_by_into_one_notification() -> None:
    with RecordingReceiver() as hook:
        n = notifier(settings({"webhook": hook.url}, group_by=["alertname"]))
        api, db, cache = alert(target="api"), alert(target="db"), alert(target="cache")
        n.update([api], T0)
        n.update([api, db], T0 + 10)
        n.update([api, db], T0 + 30)  # group_wait from the group's first alert
        [first] = sent(n, hook)
        n.update([api, db, cache], T0 + 100)  # changed: waits group_interval after the last
        n.update([api, db, cache], T0 + 329)
        assert len(sent(n, hook)) == 1
        n.update([api, db, cache], T0 + 330)
        [_, second] = sent(n, hook)
        n.close()
    assert sorted(x["target"] for x in labels_of(first)) == ["api", "db"]
    assert first["groupLabels"] == {"alertname": "HighLatency"}
    assert first["commonLabels"] == {"alertname": "HighLatency", "severity": "warning"}
    assert first["groupKey"] == '{}:{alertname="HighLatency"}'
    assert sorted(x["target"] for x in labels_of(second)) == ["api", "cache", "db"]


def groups_of(bodies: list[dict]) -> list[str]:
    return sorted(b["groupLabels"]["alertname"] + "/" + b["groupLabels"]["target"] for b in bodies)


def test_silences_and_target_down_inhibition_keep_alerts_out() -> None:
    until = datetime.fromtimestamp(T0 + 1000, UTC)
    silence = {"matchers": {"alertname": "CacheHitRateLow"}, "until": until.isoformat(), "comment": "known"}
    with RecordingReceiver() as hook:
        n = notifier(settings({"webhook": hook.url}, silences=[silence]))
        down = alert("TargetDown", target="db")
        muted = [alert("CacheHitRateLow", target="redis"), alert("HighLatency", target="db")]
        heard = alert("HighLatency", target="api")
        for t in (T0, T0 + 30):
            n.update([down, heard, *muted], t)
        first = sent(n, hook)
        n.update([heard, *muted], T0 + 1000)  # the silence ended and the target is back
        n.update([heard, *muted], T0 + 1030)
        later = sent(n, hook)[2:]
        n.close()
    assert groups_of(first) == ["HighLatency/api", "TargetDown/db"]
    assert groups_of(later) == ["CacheHitRateLow/redis", "HighLatency/db"]


def test_a_restarted_notifier_sends_nothing_twice_and_keeps_the_schedule() -> None:
    journal = MemoryJournal()
    early, late = alert(target="api"), alert(target="db")
    with RecordingReceiver() as hook:
        config = settings({"webhook": hook.url})
        first = notifier(config, journal)
        first.update([early], T0)
        first.update([early, late], T0 + 30)  # early sent; late's group waits until T0 + 60
        first.close()
        second = notifier(config, journal)  # the daemon restarted
        second.update([early, late], T0 + 40)
        assert len(sent(second, hook)) == 1
        second.update([early, late], T0 + 60)  # late's group_wait, counted from before the restart
        second.update([early, late], T0 + 200)
        second.close()
        third = notifier(config, journal)
        third.update([early, late], T0 + 3630)  # early's repeat is due, late's not
        bodies = sent(third, hook)
        third.close()
    assert [b["groupLabels"]["target"] for b in bodies] == ["api", "db", "api"]
    assert all(json.loads(v) for v in journal.entries.values())


def test_alertmanager_receiver_resends_each_minute_and_resolves_once() -> None:
    with RecordingReceiver() as am:
        base = am.url.removesuffix("/hook")
        journal = MemoryJournal()
        n = notifier(settings({"alertmanager": base}, evaluation_interval=30), journal)
        fire = alert()
        n.update([fire], T0)  # at once: no grouping of ours
        n.update([fire], T0 + 30)
        [first] = sent(n, am)
        n.close()
        n = notifier(settings({"alertmanager": base}, evaluation_interval=30), journal)  # restart
        n.update([fire], T0 + 59)  # not within a minute, restart or not
        assert len(sent(n, am)) == 1
        n.update([fire], T0 + 60)
        n.update([resolved(fire, T0 + 80)], T0 + 80)
        n.update([], T0 + 200)
        [_, again, gone] = sent(n, am)
        n.close()
        assert [r.path for r in am.requests] == ["/api/v2/alerts"] * 3
    assert first == [
        {
            "labels": fire.labels,
            "annotations": fire.annotations,
            "startsAt": rfc3339(T0 - 30),
            "endsAt": rfc3339(T0 + 240),  # now + 4 x max(evaluation interval, 60 s)
            "generatorURL": f"{APP}/statements?queryid=42",
        }
    ]
    assert again == [{**first[0], "endsAt": rfc3339(T0 + 300)}]
    assert gone == [{**first[0], "endsAt": rfc3339(T0 + 80)}]


def test_a_dead_or_hanging_receiver_does_not_delay_another() -> None:
    slow = Retry(attempts=2, base=0.1, cap=0.1, timeout=1.5)
    with RecordingReceiver() as good, SilentServer() as silent:
        refused = f"http://127.0.0.1:{closed_port()}/hook"
        config = settings({"webhook": refused}, {"webhook": silent.url}, {"webhook": good.url}, group_wait=1)
        n = notifier(config, retry=slow)
        n.update([alert()], T0)
        started = time.monotonic()
        n.update([alert()], T0 + 1)
        returned = time.monotonic() - started
        good.wait_for(1, timeout=1.0)
        delivered = good.requests[0].at - started
        n.close(timeout=0.2)
    assert returned < 0.5, f"update() took {returned:.3f} s"
    # Before the hanging receiver's 1.5 s timeout, and the dead one's retry: nobody waited for them.
    assert delivered < 1.0, f"the good receiver waited {delivered:.3f} s"


def test_retries_with_backoff_until_the_receiver_answers() -> None:
    with RecordingReceiver(statuses=[500, 503]) as hook:
        journal = MemoryJournal()
        n = notifier(settings({"webhook": hook.url}), journal)
        n.update([alert()], T0)
        n.update([alert()], T0 + 30)
        assert len(sent(n, hook)) == 3
        n.close()
        n = notifier(settings({"webhook": hook.url}), journal)
        n.update([alert()], T0 + 400)  # delivered in the end: nothing to send again
        n.close()
        arrivals = [r.at for r in hook.requests]
        bodies = hook.bodies()
    assert len(bodies) == 3 and bodies[0] == bodies[1] == bodies[2]
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2, gaps  # 1x, then 2x the base delay


def test_a_refused_notification_is_not_retried_but_sent_again_after_group_interval() -> None:
    with RecordingReceiver(statuses=[400]) as hook:
        n = notifier(settings({"webhook": hook.url}))
        n.update([alert()], T0)
        n.update([alert()], T0 + 30)
        assert len(sent(n, hook)) == 1  # no retry of a 4xx
        n.update([alert()], T0 + 329)  # the failure is a change: it waits group_interval
        assert len(sent(n, hook)) == 1
        n.update([alert()], T0 + 330)
        bodies = sent(n, hook)
        n.close()
    assert len(bodies) == 2 and bodies[0] == bodies[1]


def test_slack_message_escapes_markup_and_survives_hostile_labels(monkeypatch: pytest.MonkeyPatch) -> None:
    hostile = alert(
        target="<https://evil.example|click> & <!channel>",
        labels={"query": "SELECT 1;\n• FIRING Fake {x}\n" + "x" * 100_000, "tab\tkey": "nul\x00 bell\x07"},
    )
    with RecordingReceiver() as slack, RecordingReceiver() as hook:
        monkeypatch.setenv("OBS_TEST_SLACK", slack.url)
        n = notifier(settings({"slack": {"url_env": "OBS_TEST_SLACK"}}, {"webhook": hook.url}))
        n.update([hostile, alert()], T0)
        n.update([hostile, alert()], T0 + 30)
        assert n.wait()
        messages, bodies = slack.bodies(), hook.bodies()
        n.close()
    texts = "\n".join(m["text"] for m in messages)
    assert all(set(m) == {"text"} for m in messages)
    assert "<" not in texts and ">" not in texts
    assert "&lt;https://evil.example|click&gt; &amp; &lt;!channel&gt;" in texts
    assert all(len(line) < 400 for line in texts.splitlines())
    assert len(texts.splitlines()) == 4  # per message a header and one line per alert: no injected line
    [evil] = [b for b in bodies if "evil" in b["groupLabels"]["target"]]
    assert len(evil["alerts"][0]["labels"]["query"]) == MAX_LABEL_VALUE
    assert evil["alerts"][0]["labels"]["tab\tkey"] == "nul\x00 bell\x07"  # JSON-escaped, intact


def test_the_slack_url_never_reaches_the_logs(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    token = "T0K3N-s3cr3t-b1t"
    caplog.set_level(logging.DEBUG)
    with RecordingReceiver(statuses=[500, 500, 500]) as failing:
        urls = {
            "OBS_SLACK_REFUSED": f"http://127.0.0.1:{closed_port()}/services/T01/B02/{token}",
            "OBS_SLACK_500": failing.url + f"/services/{token}?token={token}",
            "OBS_SLACK_BAD": f"hxxp://hooks.slack.example/services/{token}",
        }
        for variable, url in urls.items():
            monkeypatch.setenv(variable, url)
        monkeypatch.delenv("OBS_SLACK_UNSET", raising=False)
        receivers = [{"slack": {"url_env": v}} for v in [*urls, "OBS_SLACK_UNSET"]]
        n = notifier(settings(*receivers, group_wait=1))
        n.update([alert()], T0)
        n.update([alert()], T0 + 1)
        deadline = time.monotonic() + 5
        while caplog.text.count("giving up") + caplog.text.count("not retried") < 4:
            assert time.monotonic() < deadline, caplog.text
            time.sleep(0.02)
        n.close()
    assert "OBS_SLACK_UNSET" in caplog.text and "HTTP 500" in caplog.text
    assert token not in caplog.text and "hooks.slack.example" not in caplog.text
    assert all(token not in str(r.args) and token not in r.getMessage() for r in caplog.records)


def test_a_real_alertmanager_receives_lists_and_notifies_our_alert() -> None:
    with RecordingReceiver() as hook, ThrowawayAlertmanager(webhook_url=hook.url) as am:
        now = int(time.time())  # Alertmanager drops alerts whose endsAt has passed: real time here
        fire = alert(
            "ObservatoryTest",
            target="db<1>",
            labels={"weird key": "a\nb"},
            fired_at=now - 10,
            source_url="/incident?at=1",
        )
        n = notifier(settings({"alertmanager": am.url}))
        n.update([fire], now)
        listed = _wait_for_alert(am.url, "ObservatoryTest")
        [notified] = hook.wait_for(1, timeout=10)
        ended = int(time.time())  # not in the future: Alertmanager keeps a later endsAt it holds
        n.update([resolved(fire, ended)], ended)
        bodies = hook.wait_for(2, timeout=10)
        n.close()
    expected = {"alertname": "ObservatoryTest", "target": "db<1>", "severity": "warning", "weird_key": "a\nb"}
    assert listed["labels"] == expected and listed["status"]["state"] == "active"
    assert listed["annotations"] == fire.annotations
    assert listed["generatorURL"] == f"{APP}/incident?at=1"
    assert notified["version"] == "4" and notified["status"] == "firing"
    assert notified["alerts"][0]["labels"] == expected
    assert bodies[1]["status"] == "resolved" and bodies[1]["alerts"][0]["endsAt"] == rfc3339(ended)


def _wait_for_alert(base: str, name: str, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{base}/api/v2/alerts", timeout=2) as resp:
            found = [a for a in json.loads(resp.read()) if a["labels"].get("alertname") == name]
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"Alertmanager did not list {name} within {timeout} s")


def test_a_webhook_url_with_a_password_sends_basic_auth() -> None:
    with RecordingReceiver() as hook:
        url = hook.url.replace("http://", "http://alice:s%40cret@")
        n = notifier(settings({"webhook": url}, group_wait="0s"))
        n.update([alert()], T0)
        sent(n, hook)
        n.close()
    (request,) = hook.requests
    assert request.authorization == "Basic " + base64.b64encode(b"alice:s@cret").decode()


def test_inhibition_keeps_kinds_apart_and_a_muted_resolution_still_goes_out() -> None:
    with RecordingReceiver() as hook:
        n = notifier(settings({"webhook": hook.url}, group_wait="0s", group_interval=60))
        cache = alert("CacheHitRateLow", "main", labels={"kind": "redis"})
        n.update([cache], T0)
        assert labels_of(sent(n, hook)[0])[0]["alertname"] == "CacheHitRateLow"
        pg_down = alert("TargetDown", "main", labels={"kind": "postgres"})  # another kind: no muting
        redis_down = alert("TargetDown", "main", labels={"kind": "redis"})
        n.update([cache, pg_down, redis_down], T0 + 60)
        n.update([resolved(cache, T0 + 120), pg_down, redis_down], T0 + 120)  # resolves while muted
        n.update([pg_down, redis_down], T0 + 240)
        bodies = sent(n, hook)
        n.close()
    outcomes = [(b["status"], [a["labels"]["alertname"] for a in b["alerts"]]) for b in bodies]
    assert ("resolved", ["CacheHitRateLow"]) in outcomes, outcomes  # the receiver's incident is closed
    assert ("firing", ["TargetDown", "TargetDown"]) in outcomes  # each kind's, one group


def test_alertmanager_gets_silenced_alerts_too() -> None:
    """It silences and inhibits by its own rules: an alert we stopped pushing would expire there."""
    with RecordingReceiver() as am:
        base = am.url.rsplit("/", 1)[0]
        silence = {"matchers": {"alertname": "HighLatency"}, "until": "2099-01-01T00:00:00Z"}
        n = notifier(settings({"alertmanager": base}, silences=[silence]))
        n.update([alert()], T0)
        bodies = sent(n, am)
        n.close()
    assert [a["labels"]["alertname"] for a in bodies[0]] == ["HighLatency"]


def test_a_notification_in_flight_when_the_process_dies_is_sent_again() -> None:
    """At least once, as Alertmanager's log: a send not confirmed in the journal is owed after a
    restart (here the first process never records its worker's outcome: it was killed)."""
    journal = MemoryJournal()
    with RecordingReceiver() as hook:
        config = settings({"webhook": hook.url}, group_wait="0s", group_interval=60)
        killed = notifier(config, journal)
        killed.update([alert()], T0)  # handed to the worker, then the process dies
        hook.wait_for(1)
        again = notifier(config, journal)
        again.update([alert()], T0 + 30)
        assert len(sent(again, hook)) == 1  # group_interval not over yet
        again.update([alert()], T0 + 60)
        again.update([alert()], T0 + 120)
        bodies = sent(again, hook)
        again.close()
        killed.close()
    assert len(bodies) == 2  # once more after the restart, then confirmed: not a third time
