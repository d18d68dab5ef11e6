"""SIGTERM drains `burgernet worker sms` (gateway/cli.py → gateway/sms/worker.py): a real process
stopped with a full window in flight finishes it, writes every status and exits 0."""

from __future__ import annotations

import signal

import pytest
from polling import until
from sms_world import bind_json, open_action, phone, queue_messages
from sqlalchemy import func, select
from test_sms_processes import REDIS_DB, processes_world, start_worker

from gateway.storage.models import Message, MessageStatus


@pytest.fixture
def world(pg_url, redis_url):
    yield from processes_world(pg_url, redis_url, REDIS_DB)


def test_sms_worker_sigterm_finishes_its_window_and_writes_every_status(world, pg_url, smsc, tmp_path):
    sessions, queue, url = world
    n = 3000
    action, bulletin = open_action(sessions)
    queue_messages(sessions, queue, action, bulletin, [phone(i) for i in range(n)])
    smsc.configure(resp_delay_ms=40)  # answers 40 ms late: a window is always in flight
    log = tmp_path / "worker.log"
    worker = start_worker(pg_url, url, bind_json(smsc), "sms-drain", log)
    try:
        smsc.wait_for(lambda s: s["submits_accepted"] >= 500, 120, "500 accepted submits")
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
    finally:
        if worker.poll() is None:
            worker.kill()
            pytest.fail(f"no exit 30 s after SIGTERM:\n{log.read_text()[-2000:]}")
    assert worker.returncode == 0, log.read_text()[-2000:]
    accepted = smsc.stats()["submits_accepted"]
    assert accepted < n, "everything was sent before the signal: nothing tested"
    with sessions() as s:
        by_status = dict(s.execute(select(Message.status, func.count()).group_by(Message.status)).all())
        dispatched_open = s.scalar(
            select(func.count()).where(
                Message.status == MessageStatus.sending, Message.dispatched_at.is_not(None)
            )
        )
    reached = by_status.get(MessageStatus.submitted, 0) + by_status.get(MessageStatus.delivered, 0)
    # Every submit the SMSC accepted has its status in the database: the window was answered and
    # flushed before the exit, not left to a lease running out.
    assert reached == accepted, (by_status, accepted)
    assert dispatched_open == 0
    assert "stopping with" not in log.read_text()  # drained within its 15 s, nothing left unfinished


def test_sms_worker_sigterm_while_binding_exits_0(world, pg_url, tmp_path):
    _, _, url = world
    log = tmp_path / "worker.log"
    # A bind nobody answers: the worker keeps trying to bind when the signal comes.
    binds = (
        '[{"name": "x", "operator": "x", "host": "127.0.0.1", "port": 9, "system_id": "a", "password": "b"}]'
    )
    worker = start_worker(pg_url, url, binds, "sms-unbound", log)
    try:
        until(lambda: "SMS bind x" in log.read_text(), 60, "the bind's first failure", every=0.2)
        assert worker.poll() is None
        worker.send_signal(signal.SIGTERM)
        worker.wait(20)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, log.read_text()[-2000:]
