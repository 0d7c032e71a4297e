"""Test-run settings, inherited by the notebook kernel that nbval starts.

NST_QUICK=1 shrinks images and step counts so the whole notebook runs in about a minute;
NST_OUTPUT_DIR sends its figures and GIFs to a temporary folder, so a test run never
overwrites the full-quality ones committed under assets/generated/. That folder is removed
when the session ends (unless NST_OUTPUT_DIR was given from outside).

Hypothesis: under CI (CI=true, as CI machines set it) the examples are derandomised, so a
run that fails in CI fails again, with the same example, on every re-run.
"""

import os
import shutil
import sys
import tempfile
from pathlib import Path

from hypothesis import settings

os.environ.setdefault("NST_QUICK", "1")
if "NST_OUTPUT_DIR" not in os.environ:
    SCRATCH_OUTPUT_DIR = tempfile.mkdtemp(prefix="nst-test-output-")
    os.environ["NST_OUTPUT_DIR"] = SCRATCH_OUTPUT_DIR
else:
    SCRATCH_OUTPUT_DIR = None
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

sys.path.insert(0, str(Path(__file__).resolve().parent))

settings.register_profile("nst-ci", derandomize=True, database=None, print_blob=True,
                          deadline=None)
if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
    settings.load_profile("nst-ci")


def pytest_sessionfinish(session, exitstatus):
    if SCRATCH_OUTPUT_DIR is not None:
        shutil.rmtree(SCRATCH_OUTPUT_DIR, ignore_errors=True)
