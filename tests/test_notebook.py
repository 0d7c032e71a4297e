"""Static checks of the committed notebook and what it produced.

The notebook itself is re-executed by nbval (see pytest.ini); these tests check the
committed artefacts: that the stored notebook was run top to bottom, stays small, matches
its paired .py file, and that the README's gallery points at files the notebook wrote.
"""

import json
import re
from pathlib import Path

import jupytext
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "neural_style_transfer.ipynb"
GENERATED = ROOT / "assets" / "generated"


@pytest.fixture(scope="module")
def notebook() -> dict:
    return json.loads(NOTEBOOK.read_text())


def code_cells(notebook):
    return [cell for cell in notebook["cells"]
            if cell["cell_type"] == "code" and "".join(cell["source"]).strip()]


def test_committed_notebook_was_run_top_to_bottom_without_errors(notebook):
    counts = [cell["execution_count"] for cell in code_cells(notebook)]
    assert None not in counts, "commit the notebook executed (make notebook)"
    assert counts == list(range(1, len(counts) + 1)), "restart the kernel and run all"
    errors = [output for cell in code_cells(notebook) for output in cell["outputs"]
              if output["output_type"] == "error"]
    assert errors == []


def test_committed_notebook_is_small():
    assert NOTEBOOK.stat().st_size < 3 * 2**20


def test_parameters_cell_is_tagged_for_papermill(notebook):
    tagged = [cell for cell in code_cells(notebook)
              if "parameters" in cell.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1
    source = "".join(tagged[0]["source"])
    for name in ("content_path", "style_path", "image_size", "num_steps", "style_weight",
                 "seed", "device_name"):
        assert re.search(rf"^{name} = ", source, re.MULTILINE), name


def test_device_independent_cells_are_checked_by_nbval(notebook):
    checked = [cell for cell in code_cells(notebook)
               if "# NBVAL_CHECK_OUTPUT" in "".join(cell["source"])]
    assert len(checked) >= 4
    text = " ".join("".join(output.get("text", "")) for cell in checked
                    for output in cell["outputs"])
    assert "relu5_1" in text and "True" in text


def test_paired_python_script_matches_the_notebook():
    """neural_style_transfer.py is the reviewable twin of the notebook: same cells."""
    script = jupytext.read(ROOT / "neural_style_transfer.py")
    stored = jupytext.read(NOTEBOOK)
    assert [(c.cell_type, c.source) for c in script.cells] == \
           [(c.cell_type, c.source) for c in stored.cells], \
        "run: jupytext --sync neural_style_transfer.ipynb"


def test_generated_gifs_exist_and_are_under_2_mb():
    gifs = sorted(GENERATED.glob("*.gif"))
    names = {gif.name for gif in gifs}
    assert {"dog_from_photo.gif", "dog_from_noise.gif"} <= names
    for gif in gifs:
        assert gif.stat().st_size < 2e6, gif.name


def test_readme_gallery_points_at_existing_files():
    readme = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\((assets/[^)\s]+)\)", readme)
    targets += re.findall(r'src="(assets/[^"]+)"', readme)
    assert len(targets) >= 8
    missing = [target for target in targets if not (ROOT / target).is_file()]
    assert missing == []
