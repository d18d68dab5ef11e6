"""gateway.collector: the SMS worker's collector settings, once its start-up is done."""

import subprocess
import sys


def test_settle_after_start_up_freezes_start_up_and_collects_the_young_less_often():
    # In a process of its own: the settings are the whole process's.
    script = (
        "import gc; from gateway import collector\n"
        "older = gc.get_threshold()[1:]\n"
        "collector.settle_after_start_up()\n"
        "assert gc.get_freeze_count() > 0\n"
        "assert gc.get_threshold() == (collector.YOUNG_THRESHOLD, *older)\n"
        "assert gc.isenabled()\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)
