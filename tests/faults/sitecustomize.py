"""Fault injection for tests/test_faults.py, loaded by every Python process whose PYTHONPATH
starts with this folder (DVC and the stage processes it starts).

In the process running `python -m src.stages.<FAULT_STAGE>`, the moment a temporary output is about to
be renamed to FAULT_PUBLISH (a file or folder name: "raw", "model.keras", ...), the process writes
its pid to FAULT_MARKER and sleeps: the test kills it there, the worst moment, with everything
written and nothing published. Every other process is untouched.
"""

import os
import sys
import time

_stage = os.environ.get("FAULT_STAGE")
if _stage and f"src.stages.{_stage}" in sys.orig_argv:
    _publish = os.environ["FAULT_PUBLISH"]
    _marker = os.environ["FAULT_MARKER"]
    _real_replace = os.replace

    def _pause_before(rename):
        def paused(src, dst, *args, **kwargs):
            if os.path.basename(os.fspath(dst)) == _publish and ".tmp-" in os.fspath(src):
                with open(_marker + ".tmp", "w") as marker:
                    marker.write(str(os.getpid()))
                _real_replace(_marker + ".tmp", _marker)
                time.sleep(600)  # killed here by the test
            return rename(src, dst, *args, **kwargs)

        return paused

    os.replace = _pause_before(os.replace)
    os.rename = _pause_before(os.rename)
