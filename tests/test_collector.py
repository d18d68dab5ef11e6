"""gateway.collector: the collector paused around bulk work, and put back as it was."""

import gc
import threading

from gateway import collector


def test_paused_resumes_when_the_last_bulk_job_ends():
    assert gc.isenabled()
    with collector.paused():
        assert not gc.isenabled()
        with collector.paused():  # a fan-out's chunk inside a launch
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_paused_overlapping_in_two_threads():
    """Two launches at once in the API's threads: collection resumes only after both."""
    inside, release = threading.Event(), threading.Event()

    def other_launch():
        with collector.paused():
            inside.set()
            release.wait(5)

    thread = threading.Thread(target=other_launch)
    thread.start()
    inside.wait(5)
    with collector.paused():
        pass
    assert not gc.isenabled()  # the other one still runs
    release.set()
    thread.join(5)
    assert gc.isenabled()


def test_paused_leaves_a_disabled_collector_disabled():
    gc.disable()
    try:
        with collector.paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_paused_resumes_after_an_error():
    try:
        with collector.paused():
            raise RuntimeError("the database went away")
    except RuntimeError:
        pass
    assert gc.isenabled()
