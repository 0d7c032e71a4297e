"""Run All survives a class: the notebook, headless, with the settings its exercises name,
other images of odd sizes, and a GPU's arithmetic. Quick mode here; `bench/variants.py`
runs the same at full size and records the results in bench/results.json.

The variants are combined two by two to keep the suite short: each run must finish, and a
check that fails under the variant's settings must be reported, not raised."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import variants  # noqa: E402

COMBINED = {
    "exercises 1 and 4: style_weight 0.2, tv_weight 0": {"style_weight": 0.2, "tv_weight": 0.0},
    "exercise 1 on a GPU's arithmetic: style_weight 2000, float32, default layout":
        {"style_weight": 2000.0, "precision": "float32", "memory_layout": "contiguous"},
    "other images of odd sizes": variants.VARIANTS["other images of odd sizes"],
}


def test_the_combined_variants_cover_every_variant_of_the_benchmark():
    covered = {(name, value) for parameters in COMBINED.values()
               for name, value in parameters.items()}
    for name, parameters in variants.VARIANTS.items():
        assert set(parameters.items()) <= covered, name


@pytest.mark.parametrize("name", COMBINED)
def test_run_all_finishes_in_quick_mode(name, tmp_path):
    outcome = variants.run_variant(COMBINED[name], tmp_path, quick=True)
    assert outcome["finished"], outcome["error"]
    assert outcome["checks_met"] > 0
    assert any(output.endswith(".gif") for output in outcome["outputs"])
    executed = json.loads((tmp_path / "executed.ipynb").read_text())
    errors = [output for cell in executed["cells"] if cell["cell_type"] == "code"
              for output in cell.get("outputs", []) if output["output_type"] == "error"]
    assert errors == []


def test_a_failing_assert_would_be_reported(tmp_path):
    """The runner can fail: a notebook that stops on an assert is not 'finished'."""
    notebook = {"cells": [{"cell_type": "code", "metadata": {"tags": ["parameters"]},
                           "source": "x = 1", "outputs": [], "execution_count": None},
                          {"cell_type": "code", "metadata": {}, "source": "assert x == 2, 'x'",
                           "outputs": [], "execution_count": None}],
                "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                            "language": "python"}},
                "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "tiny.ipynb"
    path.write_text(json.dumps(notebook))
    outcome = variants.run_variant({"x": 1}, tmp_path, quick=True, notebook=path)
    assert not outcome["finished"] and "AssertionError" in outcome["error"]
