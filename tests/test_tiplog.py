"""The tip writer: in order, batched, and one bad write does not cost the others their record."""

from datetime import UTC, datetime

from sqlalchemy import select

from gateway.storage.models import Tip, TipChannel
from ivr.tiplog import TipWriter

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def add_tip(call_id):
    return lambda session: session.add(Tip(channel=TipChannel.call, call_id=call_id, received_at=NOW))


def fail(session):
    raise RuntimeError("a broken write")


def test_writes_are_applied_in_order_and_a_failing_one_is_isolated(sessions):
    writer = TipWriter(sessions, max_batch=50)
    for n in range(120):
        writer.submit(add_tip(f"w{n}"))
        if n == 60:
            writer.submit(fail)
    # A later write that depends on an earlier one in the same batch sees it.
    writer.submit(
        lambda s: setattr(s.scalars(select(Tip).where(Tip.call_id == "w119")).one(), "dial_status", "ANSWER")
    )
    writer.flush()
    with sessions() as s:
        rows = s.scalars(select(Tip).order_by(Tip.id)).all()
    assert [t.call_id for t in rows] == [f"w{n}" for n in range(120)]
    assert rows[-1].dial_status == "ANSWER"
    writer.close()


def test_close_writes_what_is_queued(sessions):
    writer = TipWriter(sessions)
    for n in range(30):
        writer.submit(add_tip(f"c{n}"))
    writer.close()
    with sessions() as s:
        assert len(s.scalars(select(Tip)).all()) == 30
