"""The scheduling of concurrent actions (gateway/queue/schedule.py): pure, no sockets."""

from collections import Counter

import pytest

from gateway.queue.schedule import (
    DEFAULT_WEIGHTS,
    Flow,
    Scheduler,
    UrgencyClass,
    completion_estimates,
    parse_weights,
    urgency_class,
)
from gateway.storage.models import BulletinKind, Urgency

C, H, F, R = UrgencyClass.critical, UrgencyClass.high, UrgencyClass.follow_up, UrgencyClass.routine


def alert(bulletin_id: int, urgency: UrgencyClass = H, action_id: int | None = None) -> Flow:
    return Flow(bulletin_id, action_id or bulletin_id, BulletinKind.alert, 0, urgency)


def test_a_new_action_goes_first_behind_any_backlog():
    scheduler = Scheduler()
    shop_theft = alert(1)
    for _ in range(100):  # a long-running action, served for a while
        scheduler.plan({shop_theft: 100_000}, 50)
    child = alert(2, C)
    assert scheduler.plan({shop_theft: 95_000, child: 200}, 1) == [child]


def test_a_new_action_of_the_same_class_is_not_behind_either():
    scheduler = Scheduler()
    first = alert(1)
    for _ in range(100):
        scheduler.plan({first: 100_000}, 50)
    second = alert(2)
    order = scheduler.plan({first: 95_000, second: 200}, 4)
    assert order.count(second) == 2 and order[0] == second  # from the first take on, half each


def test_shares_follow_the_weights_and_nobody_starves():
    scheduler = Scheduler()
    flows = {alert(1, C): 10**6, alert(2, H): 10**6, alert(3, R): 10**6}
    taken = Counter()
    for _ in range(200):
        taken.update(scheduler.plan(flows, 13))
    total = sum(taken.values())
    for flow in flows:
        share = DEFAULT_WEIGHTS[flow.urgency] / 13
        assert taken[flow] / total == pytest.approx(share, rel=0.02)
    assert taken[alert(3, R)] >= 199  # the lowest class progresses at every take


def test_shares_hold_when_each_take_is_small():
    """A worker takes a few entries at a time; a flow that waits through many takes keeps its
    place between them (the routine flow once starved at two a take)."""
    scheduler = Scheduler()
    flows = {alert(1, C): 10**6, alert(2, H): 10**6, alert(3, R): 10**6}
    taken = Counter()
    for _ in range(650):
        taken.update(scheduler.plan(flows, 2))
    for flow in flows:
        assert taken[flow] / 1300 == pytest.approx(DEFAULT_WEIGHTS[flow.urgency] / 13, rel=0.02)


def test_what_a_flow_does_not_need_goes_to_the_others():
    scheduler = Scheduler()
    small, big = alert(1, C), alert(2, R)
    order = scheduler.plan({small: 3, big: 100}, 20)
    assert order.count(small) == 3 and order.count(big) == 17
    assert scheduler.plan({small: 0}, 5) == []


def test_within_an_action_its_alert_goes_before_its_updates():
    scheduler = Scheduler()
    first = Flow(10, 7, BulletinKind.alert, 0, H)
    update1 = Flow(11, 7, BulletinKind.update, 1, F)
    update2 = Flow(12, 7, BulletinKind.update, 2, F)
    closing = Flow(13, 7, BulletinKind.closing, 0, F)
    order = scheduler.plan({first: 2, update1: 2, update2: 2, closing: 1}, 7)
    assert order.index(update1) > order.index(first) and order.count(first) == 2
    assert min(i for i, f in enumerate(order) if f == update2) > max(
        i for i, f in enumerate(order) if f == update1
    )
    assert closing in order
    # A close cancels what had not gone out: its message waits for nothing.
    assert closing in scheduler.plan({first: 100, closing: 1}, 5)
    # Another action's update does not wait for this alert.
    other = Flow(20, 8, BulletinKind.update, 1, F)
    assert scheduler.plan({first: 5, other: 5}, 10).count(other) == 5


def test_a_flow_that_waits_again_gets_no_credit_for_the_pause():
    scheduler = Scheduler()
    busy, idle = alert(1), alert(2)
    for _ in range(50):
        scheduler.plan({busy: 1000, idle: 1}, 2)
        scheduler.plan({busy: 1000}, 20)
    order = scheduler.plan({busy: 1000, idle: 1000}, 100)
    assert order.count(idle) == 50  # its share, not a catch-up burst


def test_urgency_classes():
    assert urgency_class(Urgency.critical, BulletinKind.alert) == C
    assert urgency_class(Urgency.high, BulletinKind.alert) == H
    assert urgency_class(Urgency.critical, BulletinKind.update) == F
    assert urgency_class(Urgency.high, BulletinKind.closing) == F
    assert urgency_class(Urgency.routine, BulletinKind.closing) == R
    assert Urgency.for_type("missing_person") == Urgency.critical


def test_weights_parse_with_clear_errors():
    assert parse_weights("") == DEFAULT_WEIGHTS
    assert parse_weights("critical=10, routine=0.5")[C] == 10
    for bad, says in (
        ("urgent=3", "unknown urgency class 'urgent'"),
        ("high=fast", "not a number"),
        ("routine=0", "positive"),
        ("high=inf", "positive"),
        ("high=nan", "positive"),
    ):
        with pytest.raises(ValueError, match=says):
            parse_weights(bad)
    with pytest.raises(ValueError, match="positive weight"):
        Scheduler({C: 1, H: 1, F: 1})


def test_completion_estimates_share_the_rate_by_weight():
    assert completion_estimates({"a": (4, 1000)}, 100) == {"a": pytest.approx(10)}
    # Equal weights: both at 50/s until the small one is done (4 s), then the big one alone.
    eta = completion_estimates({"small": (1, 200), "big": (1, 1000)}, 100)
    assert eta["small"] == pytest.approx(4) and eta["big"] == pytest.approx(12)
    # 8 against 2: the critical one gets 80/s.
    eta = completion_estimates({"child": (8, 800), "theft": (2, 10_000)}, 100)
    assert eta["child"] == pytest.approx(10) and eta["theft"] == pytest.approx(108)
    assert completion_estimates({"done": (1, 0), "a": (1, 5)}, 0) == {"done": 0, "a": float("inf")}
