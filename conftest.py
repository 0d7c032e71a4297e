"""Test-run settings, inherited by the notebook kernel that nbval starts.

NST_QUICK=1 shrinks images and step counts so the whole notebook runs in about a minute;
NST_OUTPUT_DIR sends its figures and GIFs to a temporary folder, so a test run never
overwrites the full-quality ones committed under assets/generated/.
"""

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("NST_QUICK", "1")
os.environ.setdefault("NST_OUTPUT_DIR", tempfile.mkdtemp(prefix="nst-test-output-"))
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

sys.path.insert(0, str(Path(__file__).resolve().parent))
