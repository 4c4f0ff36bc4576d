"""Subscriptions, notifications and the delivery outbox on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from trustscore_stream.db import notifications as repo

NFT = "nft:eth:0x" + "ab" * 20 + ":1"
T0 = datetime(2026, 12, 1, 12, tzinfo=UTC)


def spec(**extra: object) -> repo.SubscriptionSpec:
    fields: dict[str, object] = {
        "entity": NFT,
        "channels": ("in_app", "webhook"),
        "webhook_url": "http://127.0.0.1:9/hook",
    }
    fields.update(extra)
    return repo.SubscriptionSpec(**fields)  # type: ignore[arg-type]


def notification(user: str, sub: str, cause: str) -> repo.NewNotification:
    key = f"{user}-{cause}".ljust(64, "0")
    return repo.NewNotification(
        id=key[:32],
        dedup_key=key,
        user_id=user,
        subscription_id=sub,
        kind="score_threshold",
        severity="high",
        entity=NFT,
        title="t",
        body="b",
        data={"score": 42.0},
        cause_event_id=cause,
        created_at=T0,
        deliveries=(repo.NewDelivery("webhook", "http://127.0.0.1:9/hook"),),
    )


def test_subscriptions_are_scoped_by_user(engine: Engine) -> None:
    mine = repo.create_subscription(engine, "u1", spec())
    assert len(mine["webhook_secret"]) == 64
    repo.create_subscription(engine, "u2", spec(channels=("in_app",), webhook_url=None))
    assert [s["id"] for s in repo.list_subscriptions(engine, "u1")] == [mine["id"]]
    assert "webhook_secret" not in repo.list_subscriptions(engine, "u1")[0]
    assert repo.get_subscription(engine, "u2", mine["id"]) is None
    assert repo.delete_subscription(engine, "u2", mine["id"]) is None
    assert repo.delete_subscription(engine, "u1", mine["id"])["id"] == mine["id"]
    assert repo.list_subscriptions(engine, "u1") == []


def test_notifications_are_created_once_and_read_by_their_owner(engine: Engine) -> None:
    sub = repo.create_subscription(engine, "u1", spec())
    first = notification("u1", sub["id"], "ev-1")
    assert repo.record_notifications(engine, [first]) == [first.id]
    assert repo.record_notifications(engine, [first, notification("u1", sub["id"], "ev-2")]) == [
        notification("u1", sub["id"], "ev-2").id
    ]
    assert len(repo.list_notifications(engine, "u1", unread_only=False, limit=10)) == 2
    assert repo.mark_read(engine, "u2", first.id) is None
    assert repo.mark_read(engine, "u1", first.id)["read_at"] is not None
    assert [n["id"] for n in repo.list_notifications(engine, "u1", True, 10)] == [
        notification("u1", sub["id"], "ev-2").id
    ]
    assert [n["id"] for n in repo.unpushed(engine, [first.id])] == [first.id]
    repo.mark_pushed(engine, [first.id])
    assert repo.unpushed(engine, [first.id]) == []


def test_a_delivery_is_claimed_once_retried_then_dead(engine: Engine) -> None:
    sub = repo.create_subscription(engine, "u1", spec())
    item = notification("u1", sub["id"], "ev-1")
    repo.record_notifications(engine, [item])
    lease = timedelta(seconds=30)
    (job,) = repo.claim_due_deliveries(engine, T0, 10, lease)
    assert job.secret == sub["webhook_secret"] and job.notification["id"] == item.id
    assert repo.claim_due_deliveries(engine, T0, 10, lease) == []  # leased
    retry_at = T0 + timedelta(seconds=5)
    repo.record_attempts(engine, [repo.AttemptOutcome(job.id, 1, False, "HTTP 500", retry_at, T0)])
    assert repo.claim_due_deliveries(engine, T0 + timedelta(seconds=1), 10, lease) == []
    (again,) = repo.claim_due_deliveries(engine, retry_at, 10, lease)
    assert again.attempts == 1
    repo.record_attempts(
        engine, [repo.AttemptOutcome(job.id, 2, False, "HTTP 500", None, retry_at)]
    )
    (report,) = repo.delivery_report(engine, "u1", item.id)
    assert report["status"] == "dead" and [a["outcome"] for a in report["attempts"]] == [
        "failed",
        "failed",
    ]
    assert repo.delivery_report(engine, "u2", item.id) is None
    # An expired lease (a worker died mid-attempt) makes a queued delivery claimable again.
    other = notification("u1", sub["id"], "ev-2")
    repo.record_notifications(engine, [other])
    assert len(repo.claim_due_deliveries(engine, T0, 10, lease)) == 1
    assert len(repo.claim_due_deliveries(engine, T0 + lease + lease, 10, lease)) == 1


def test_unread_critical_notifications_are_escalated_once(engine: Engine) -> None:
    sub = repo.create_subscription(engine, "u1", spec())
    only_app = repo.create_subscription(engine, "u1", spec(channels=("in_app",), webhook_url=None))
    critical = [
        replace(notification("u1", s["id"], cause), severity="critical", deliveries=())
        for s, cause in ((sub, "ev-1"), (sub, "ev-2"), (only_app, "ev-3"))
    ]
    repo.record_notifications(engine, critical)
    repo.mark_read(engine, "u1", critical[1].id)
    after = timedelta(minutes=15)
    assert repo.escalate_unread(engine, T0 + timedelta(minutes=14), after) == 0
    assert repo.escalate_unread(engine, T0 + timedelta(minutes=16), after) == 1  # ev-1 only
    assert repo.escalate_unread(engine, T0 + timedelta(minutes=30), after) == 0  # once
    (report,) = repo.delivery_report(engine, "u1", critical[0].id)
    assert (report["channel"], report["purpose"], report["status"]) == (
        "webhook",
        "escalation",
        "queued",
    )
    assert repo.delivery_report(engine, "u1", critical[2].id) == []  # nowhere to escalate to


def test_recent_counts_leave_out_critical_old_and_excluded(engine: Engine) -> None:
    sub = repo.create_subscription(engine, "u1", spec(channels=("in_app",), webhook_url=None))
    old = replace(notification("u1", sub["id"], "old"), created_at=T0 - timedelta(hours=2))
    critical = replace(notification("u1", sub["id"], "crit"), severity="critical")
    recent = [notification("u1", sub["id"], f"r{i}") for i in range(3)]
    repo.record_notifications(engine, [old, critical, *recent])
    since = T0 - timedelta(hours=1)
    assert repo.recent_counts(engine, ["u1", "u2"], since, []) == {"u1": 3}
    assert repo.recent_counts(engine, ["u1"], since, [recent[0].dedup_key]) == {"u1": 2}
