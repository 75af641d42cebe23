"""The long-running processes' interpreter settings (checked in a child: they are global)."""

from __future__ import annotations

import json
import subprocess
import sys

from ordtool.interpreter import SWITCH_INTERVAL_S, YOUNG_THRESHOLD

PROBE = """
import gc, json, sys
from ordtool.interpreter import tune_for_serving
before = gc.get_threshold()
tune_for_serving()
print(json.dumps({"before": before, "after": gc.get_threshold(),
                  "frozen": gc.get_freeze_count(), "switch": sys.getswitchinterval()}))
"""


def test_serving_processes_collect_less_often_and_freeze_their_start_up_heap() -> None:
    shown = json.loads(subprocess.run([sys.executable, "-c", PROBE], capture_output=True,
                                      text=True, check=True).stdout)
    assert shown["after"] == [YOUNG_THRESHOLD, *shown["before"][1:]]
    assert shown["after"][0] > shown["before"][0]
    assert shown["frozen"] > 1000  # the imported modules' objects
    assert shown["switch"] == SWITCH_INTERVAL_S
