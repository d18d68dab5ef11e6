"""The garbage collector's settings for the SMS worker's long run.

CPython's cyclic collector runs after every 700 net allocations of container objects and walks
every young object still alive. Reference counting frees what this code makes (it builds no
cycles that matter); the collector only finds what is still in use, so where thousands of
objects stay alive on purpose each collection is work for nothing.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 20_000


def settle_after_start_up() -> None:
    """For a long-running worker, once start-up is done. What start-up built (modules, the ORM's
    mappings, the binds) lives as long as the process: frozen, the collector no longer walks it on
    every full collection, each such walk a pause of the event loop while the window's submits
    wait. And the youngest generation is collected after 20,000 net allocations instead of 700:
    an SMS's objects mostly live until its receipt, so at 700 the collector ran every ~130
    messages and walked them again and again (bench.sms_hotpath: 127,667 → 122,715 instructions a
    message)."""
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
