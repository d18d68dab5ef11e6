"""Helpers for the SMS worker tests: messages in the database, a worker against the simulator."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, insert, select

from gateway.queue import publish_messages
from gateway.queue.flows import FlowPlanner
from gateway.queue.schedule import Scheduler
from gateway.sms.binds import load_sms_config
from gateway.sms.worker import SmsWorker
from gateway.storage.models import (
    Action,
    ActionStatus,
    ActionType,
    Bulletin,
    BulletinKind,
    Centralist,
    Message,
    MessageStatus,
)

FINAL = {MessageStatus.delivered, MessageStatus.failed, MessageStatus.cancelled}


def phone(i: int) -> str:
    return f"+316{10_000_000 + i:08d}"


def open_action(
    sessions, text: str = "Gezocht: man met rode jas. Bel 0800-0011, actiecode 4821.", code: str = "4821"
) -> tuple[int, int]:
    """An open action with its alert bulletin; returns (action id, bulletin id)."""
    now = datetime.now(UTC)
    with sessions() as s:
        c = Centralist(name="C", meldkamer="MN", dial_string="PJSIP/4021@mk")
        s.add(c)
        s.flush()
        a = Action(
            type=ActionType.robbery,
            description="Man met rode jas",
            lat=52.09,
            lon=5.12,
            radius_m=1000,
            centralist_id=c.id,
            action_code=code,
            status=ActionStatus.open,
            launched_at=now,
            expires_at=now + timedelta(hours=2),
        )
        s.add(a)
        s.flush()
        b = Bulletin(action_id=a.id, kind=BulletinKind.alert, sms_text=text, spoken_text=text)
        s.add(b)
        s.commit()
        return a.id, b.id


def add_bulletin(sessions, action_id: int, text: str, seq: int) -> int:
    with sessions() as s:
        b = Bulletin(action_id=action_id, kind=BulletinKind.update, seq=seq, sms_text=text, spoken_text=text)
        s.add(b)
        s.commit()
        return b.id


def queue_messages(sessions, queue, action_id: int, bulletin_id: int, phones: list[str]) -> list[int]:
    """Messages to `phones`, committed then published (as the lifecycle does)."""
    with sessions() as s, s.begin():
        s.execute(
            insert(Message),
            [
                {
                    "bulletin_id": bulletin_id,
                    "action_id": action_id,
                    "phone": p,
                    "channel": "sms",
                    "status": MessageStatus.queued,
                }
                for p in phones
            ],
        )
        ids = list(
            s.execute(
                select(Message.id).where(Message.bulletin_id == bulletin_id).order_by(Message.id)
            ).scalars()
        )
    publish_messages(sessions, queue, {"sms": ids})
    return ids


def statuses(sessions) -> Counter:
    with sessions() as s:
        return Counter(dict(s.execute(select(Message.status, func.count()).group_by(Message.status)).all()))


def bind_json(sim, **extra) -> str:
    bind = {
        "name": "sim1",
        "operator": "sim",
        "host": "127.0.0.1",
        "port": sim.port,
        "system_id": sim.system_id,
        "password": sim.password,
    } | extra
    return json.dumps([bind])


def make_worker(
    sessions, queue, sim, *, worker_id="sms-test", rate_limits=None, health=None, **options
) -> SmsWorker:
    bind_extra = options.pop("bind", {})
    config = load_sms_config(bind_json(sim, **bind_extra), "", "")
    options.setdefault("lease_seconds", 30)
    options.setdefault("flush_seconds", 0.05)
    options.setdefault("plan", FlowPlanner(sessions, Scheduler()))
    return SmsWorker(
        sessions, queue, config, worker_id=worker_id, rate_limits=rate_limits, health=health, **options
    )


@asynccontextmanager
async def running(worker: SmsWorker):
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop, drain_seconds=5))
    try:
        yield worker
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def all_final(sessions, count: int):
    def check():
        st = statuses(sessions)
        return st if sum(st[s] for s in FINAL) >= count else None

    return check
