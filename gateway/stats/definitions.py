"""What every statistic means: the one home of each rate's numerator and denominator.

The SQL in `gateway.stats.query` only counts; the rates are made here from those counts, so that
a definition is read (and changed) in one place. Every rate is a share between 0 and 1, and None
when its denominator is 0 (no actions, nothing sent): "no data" is not "0 %".

Which actions a figure is about
- RULE: an action belongs to the period in which it was **launched** (drafts never count). A period
  is a range of whole UTC calendar days, both ends inclusive: `from=2026-01-01&to=2026-01-31` is
  every launch from 2026-01-01 00:00 UTC up to, not including, 2026-02-01 00:00 UTC.
- RULE: an action belongs to a municipality when its **alert reached at least one of that
  municipality's participants** (a message of the alert bulletin to a participant registered by
  that municipality). One action can so belong to several municipalities and counts in each. An
  action belongs to a region when it belongs to one of the region's municipalities; the region of a
  municipality is `Municipality.region` (the police unit / meldkamer area). An action that reached
  nobody belongs to no municipality and counts only in the national figures.
- Per municipality, recipients and messages are those to its own participants; tips and the
  outcome are the action's (an action is a success for every municipality it reached).

The figures
- `actions`: actions launched in the period (open or closed).
- `recipients.sms|voice`: phone numbers the alert was sent to, per channel (one per number: the
  alert bulletin's messages, whatever became of them).
- `messages`: every message of those actions (alert, updates, closing message) by status.
- `delivery_rate` = SMS delivered / SMS that left us (submitted + delivered + failed). Messages
  cancelled before sending or still pending are not in the denominator.
- `answer_rate` = voice calls answered / voice calls that were placed (answered + failed).
- `tips`: tips counted for these actions. RULE: a tip counts for its action when it came in while
  the action was open: from its launch up to and including its close. A tip after the close is
  kept and shown to the centralist, but could not have helped, so it is not counted.
- `actions_with_tip` / `actions_with_tip_share` = actions with at least one counted tip / actions.
- `direct_success_rate` = closed actions with outcome direct / closed actions;
  `indirect_success_rate` likewise for indirect. RULE: the denominator is every **closed** action
  of the period, including those closed with outcome none and those that expired without an
  outcome (an expired action is a closed action without success); actions still open are left out
  until they are closed. The outcome may be set or corrected after the close, and the figures
  follow it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta


def rate(numerator: int, denominator: int) -> float | None:
    """A share in 0..1, or None when there is nothing to divide by."""
    return None if not denominator else numerator / denominator


@dataclass(frozen=True, slots=True)
class Period:
    """Whole UTC days, both ends inclusive."""

    start: date
    end: date

    @property
    def lower(self) -> datetime:
        return datetime.combine(self.start, time(0), UTC)

    @property
    def upper(self) -> datetime:
        """The first instant after the period."""
        return datetime.combine(self.end + timedelta(days=1), time(0), UTC)


@dataclass(frozen=True, slots=True)
class Area:
    """Municipality ids an area filter resolves to; None means national (no filter)."""

    municipality_ids: tuple[int, ...] | None = None


@dataclass(frozen=True, slots=True)
class ActionCounts:
    """Action-level counts, as SQL returns them."""

    actions: int = 0
    closed: int = 0
    direct: int = 0
    indirect: int = 0
    expired_without_outcome: int = 0
    with_tip: int = 0
    tips: int = 0


@dataclass(frozen=True, slots=True)
class MessageCounts:
    """Message counts per channel and status, as SQL returns them."""

    recipients_sms: int = 0
    recipients_voice: int = 0
    sms_submitted: int = 0
    sms_delivered: int = 0
    sms_failed: int = 0
    voice_answered: int = 0
    voice_failed: int = 0
    cancelled: int = 0
    pending: int = 0


def success_rates(c: ActionCounts) -> dict[str, float | None]:
    """The rates that compare municipalities, regions and action types."""
    return {
        "actions_with_tip_share": rate(c.with_tip, c.actions),
        "direct_success_rate": rate(c.direct, c.closed),
        "indirect_success_rate": rate(c.indirect, c.closed),
    }


def summary(c: ActionCounts, m: MessageCounts) -> dict[str, object]:
    """Every figure of the summary, from the counts."""
    sms_sent = m.sms_submitted + m.sms_delivered + m.sms_failed
    calls_placed = m.voice_answered + m.voice_failed
    return {
        "actions": c.actions,
        "closed_actions": c.closed,
        "expired_without_outcome": c.expired_without_outcome,
        "recipients": {"sms": m.recipients_sms, "voice": m.recipients_voice},
        "messages": {
            "submitted": m.sms_submitted,
            "delivered": m.sms_delivered,
            "answered": m.voice_answered,
            "failed": m.sms_failed + m.voice_failed,
            "cancelled": m.cancelled,
            "pending": m.pending,
        },
        "delivery_rate": rate(m.sms_delivered, sms_sent),
        "answer_rate": rate(m.voice_answered, calls_placed),
        "actions_with_tip": c.with_tip,
        "tips": c.tips,
        "direct_success": c.direct,
        "indirect_success": c.indirect,
        **success_rates(c),
    }


# --- the sign-up trend -----------------------------------------------------------------------


def bucket_of(day: date, bucket: str) -> str:
    """The label of the period a day falls in: 2026-01 for a month, the Monday 2026-01-05 for a week."""
    if bucket == "month":
        return f"{day.year:04d}-{day.month:02d}"
    return (day - timedelta(days=day.weekday())).isoformat()


def buckets(period: Period, bucket: str) -> list[str]:
    """Every bucket label the period touches, in order (empty ones included)."""
    labels: list[str] = []
    day = period.start
    while day <= period.end:
        label = bucket_of(day, bucket)
        if not labels or labels[-1] != label:
            labels.append(label)
        day += timedelta(days=1)
    return labels


def signup_series(
    period: Period, bucket: str, before: int, registered: dict[date, int], left: dict[date, int]
) -> list[dict[str, str | int]]:
    """Per bucket: participants registered, unsubscribed, and active at its end, from per-day counts.

    `before` is the number active when the period starts; `total` runs on from it. A deleted
    participant is gone from every figure (the municipality removed her records).
    """
    new: dict[str, int] = {}
    gone: dict[str, int] = {}
    for per_day, into in ((registered, new), (left, gone)):
        for day, n in per_day.items():
            label = bucket_of(day, bucket)
            into[label] = into.get(label, 0) + n
    total = before
    series: list[dict[str, str | int]] = []
    for label in buckets(period, bucket):
        n, u = new.get(label, 0), gone.get(label, 0)
        total += n - u
        series.append({"period": label, "new": n, "unsubscribed": u, "total": total})
    return series
