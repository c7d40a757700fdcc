# Callback for bench/measure.py: writes each task's wall time (task start to the next task's
# start, or to the end of the play) as JSON to the file named by $DFWBENCH_TIMES.
import json
import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "dfwbench_timer"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.starts = []

    def v2_playbook_on_task_start(self, task, is_conditional):
        self.starts.append((task.get_name(), time.perf_counter()))

    def v2_playbook_on_stats(self, stats):
        end = time.perf_counter()
        times = []
        for i, (name, t0) in enumerate(self.starts):
            t1 = self.starts[i + 1][1] if i + 1 < len(self.starts) else end
            times.append({"task": name, "ms": (t1 - t0) * 1000})
        path = os.environ.get("DFWBENCH_TIMES")
        if path:
            with open(path, "w") as f:
                json.dump(times, f)
