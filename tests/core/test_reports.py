"""``core.reports``: which recipients a send lets us follow, merging reports truthfully, the summary."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from airflow_provider_sms.core.errors import SmsValidationError
from airflow_provider_sms.core.reports import Tracked, merge_reports, pending, poll, summary, tracked_from
from airflow_provider_sms.core.results import DeliveryReport, SendResult
from airflow_provider_sms.core.timestamps import timestamp_or_none

A, B, C = "+61400000001", "+61400000002", "+61400000003"


def result(*accepted: tuple[str, str | None], provider: str = "cellcast", dry_run: bool = False) -> dict:
    sent = SendResult(provider, dry_run=dry_run)
    for to, message_id in accepted:
        sent.add_accepted(to, message_id)
    return sent.to_dict()


def report(message_id: str, status: str, to: str | None = None) -> DeliveryReport:
    return DeliveryReport("cellcast", message_id, to, status)


def test_tracked_from_one_result_a_list_and_a_send_result() -> None:
    tracked = tracked_from([result((A, "m1"), (B, None)), result((C, "m3"))])
    assert tracked.by_id == {"m1": A, "m3": C} and tracked.untracked == [B]
    assert tracked_from(SendResult("cellcast")).by_id == {}


def test_dry_runs_are_ignored() -> None:
    tracked = tracked_from(result((A, "m1"), dry_run=True))
    assert (tracked.provider, tracked.by_id, tracked.untracked) == ("cellcast", {}, [])


@pytest.mark.parametrize("bad", [None, "text", {"provider": "cellcast"}, [{"accepted": []}], 5])
def test_anything_else_is_a_clear_error(bad: object) -> None:
    with pytest.raises(SmsValidationError, match="what an SMS send returned"):
        tracked_from(bad)


def test_results_from_two_providers_cannot_be_followed_together() -> None:
    with pytest.raises(SmsValidationError, match="cellcast and cloudware"):
        tracked_from([result((A, "1")), result((B, "2"), provider="cloudware")])


def test_a_final_report_is_never_replaced_and_unknown_never_hides_what_is_known() -> None:
    tracked = Tracked("cellcast", {"m1": A, "m2": B})
    known = merge_reports({}, [report("m1", "delivered"), report("m2", "sent"), report("zz", "failed")], tracked)
    assert set(known) == {"m1", "m2"}  # a report for a message we did not send is ignored
    assert known["m1"].to == A  # filled in from the send when the provider does not say
    later = merge_reports(known, [report("m1", "sent"), report("m2", "unknown")], tracked)
    assert later["m1"].status == "delivered" and later["m2"].status == "sent"
    assert pending(tracked, later) == ["m2"]


def test_cloudware_sent_settles_the_wait() -> None:
    tracked = Tracked("cloudware", {"m1": A}, last_status="sent")
    known = {"m1": report("m1", "sent", A)}
    assert pending(tracked, known) == []
    assert summary(tracked, known)["sent"] == [A]


def test_poll_asks_only_about_pending_messages() -> None:
    asked: list[list[str]] = []

    class Hook:
        def get_delivery_reports(self, ids: list[str]) -> list[DeliveryReport]:
            asked.append(list(ids))
            return [report(i, "delivered") for i in ids]

    tracked = Tracked("cellcast", {"m1": A, "m2": B})
    known = poll(Hook(), tracked, {"m1": report("m1", "failed", A)})
    assert asked == [["m2"]]
    assert poll(Hook(), tracked, known) == known and asked == [["m2"]]  # nothing pending: no call


def test_summary_buckets() -> None:
    tracked = Tracked("cellcast", {"m1": A, "m2": B, "m3": C}, untracked=["+61400000004"])
    known = {"m1": report("m1", "delivered", A), "m2": report("m2", "unsubscribed", B)}
    outcome = summary(tracked, known)
    assert (outcome["delivered"], outcome["undelivered"], outcome["pending"], outcome["untracked"]) == (
        [A],
        [B],
        [C],
        ["+61400000004"],
    )
    assert [r["status"] for r in outcome["reports"]] == ["delivered", "unsubscribed", "unknown"]


def test_delivery_report_round_trip_and_vocabulary() -> None:
    at = datetime(2030, 1, 1, 9, tzinfo=timezone.utc)
    original = DeliveryReport("clickatell", "x", A, "expired", "20 MESSAGE_EXPIRED", at, {"k": 1})
    assert DeliveryReport.from_dict(original.to_dict()) == original
    assert original.final
    with pytest.raises(ValueError, match="not a delivery status"):
        DeliveryReport("clickatell", "x", A, "lost")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1506607698000, datetime(2017, 9, 28, 14, 8, 18, tzinfo=timezone.utc)),
        (1506607698, datetime(2017, 9, 28, 14, 8, 18, tzinfo=timezone.utc)),
        ("2030-01-01T09:00:00Z", datetime(2030, 1, 1, 9, tzinfo=timezone.utc)),
        (None, None),
        ("", None),
        ("soon", None),
        (True, None),
        (10**30, None),
        (float("nan"), None),
    ],
)
def test_timestamp_or_none(value: object, expected: datetime | None) -> None:
    assert timestamp_or_none(value) == expected
