"""Test-run settings for the whole session (tests/conftest.py holds the shared fixtures).

NST_QUICK=1 puts anything that runs the notebook's cells in quick mode (small images, few
steps); NST_OUTPUT_DIR sends the figures and GIFs they draw to a temporary folder, so a test
run never overwrites the full-quality ones committed under assets/generated/. That folder is
removed when the session ends (unless NST_OUTPUT_DIR was given from outside). No progress
bars (TQDM_DISABLE) and no windows (MPLBACKEND) in a headless run.

Hypothesis: where CI=true is set (as CI services set it), the examples are derandomised, so
a run that fails there fails again, with the same example, on every re-run.
"""

import os
import shutil
import tempfile

from hypothesis import settings

os.environ.setdefault("NST_QUICK", "1")
if "NST_OUTPUT_DIR" not in os.environ:
    SCRATCH_OUTPUT_DIR = tempfile.mkdtemp(prefix="nst-test-output-")
    os.environ["NST_OUTPUT_DIR"] = SCRATCH_OUTPUT_DIR
else:
    SCRATCH_OUTPUT_DIR = None
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

settings.register_profile("nst-ci", derandomize=True, database=None, print_blob=True,
                          deadline=None)
if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
    settings.load_profile("nst-ci")


def pytest_sessionfinish(session, exitstatus):
    if SCRATCH_OUTPUT_DIR is not None:
        shutil.rmtree(SCRATCH_OUTPUT_DIR, ignore_errors=True)
