"""The committed notebook and what it produced, read without running it (the session's run
is in tests/test_notebook_run.py): run top to bottom, small, the same as its .py twin, tagged
as papermill and the tests need, its checks tied to its parameters, its GIFs and the
README's pictures in place. And a fresh kernel started elsewhere finds the project."""

import json
import os
import re
from pathlib import Path

import jupytext
import nbformat
import pytest

import nst_helpers as H
from bench import notebook_tools

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = notebook_tools.NOTEBOOK
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


def test_parameters_cell_is_tagged_for_papermill():
    values = notebook_tools.parameter_values(NOTEBOOK)
    for name in ("content_path", "style_path", "image_size", "paint_size", "num_steps",
                 "style_weight", "seed", "device_name", "precision", "memory_layout"):
        assert name in values, name


def cells_with_tags(path: Path) -> list:
    return [(cell.cell_type, cell.source, sorted(cell.metadata.get("tags", [])))
            for cell in jupytext.read(path).cells]


def test_paired_python_script_matches_the_notebook():
    """neural_style_transfer.py is the reviewable twin of the notebook: same cells, with
    the same tags (papermill finds its parameters cell by its tag, the tests and bench/ the
    definitions by theirs)."""
    script = cells_with_tags(notebook_tools.SCRIPT)
    assert script == cells_with_tags(NOTEBOOK), \
        "run: jupytext --sync neural_style_transfer.ipynb"


def test_the_checks_assert_at_exactly_the_shipped_cpu_parameters(nb):
    """`check` asserts when the parameters are `shipped_settings`: those must be the
    parameters cell's own CPU values, or the asserts would never (or always) fire."""
    cpu = notebook_tools.parameter_values(NOTEBOOK, device="cpu")
    shipped = nb["shipped_settings"]
    assert shipped == {name: cpu[name] for name in shipped}
    assert {"content_path", "style_path", "image_size", "num_steps", "style_weight",
            "tv_weight", "content_weight", "paint_size", "paint_steps"} <= set(shipped)
    assert notebook_tools.parameter_values(NOTEBOOK, device="cuda")["image_size"] == 512


def test_a_check_asserts_at_the_shipped_settings_and_reports_under_others(nb, capsys,
                                                                          monkeypatch):
    nb["check"](False, "the dog got bluer", "a weak style")      # quick mode: reports
    assert capsys.readouterr().out == "check not met: the dog got bluer (a weak style)\n"
    for name, value in nb["shipped_settings"].items():           # as the parameters cell ships
        monkeypatch.setitem(nb, name, value)
    with pytest.raises(AssertionError, match="the dog got bluer"):
        nb["check"](False, "the dog got bluer")
    nb["check"](True, "the dog got bluer")
    assert capsys.readouterr().out == "check: the dog got bluer\n"
    monkeypatch.setitem(nb, "style_weight", 2000.0)               # exercise 1
    nb["check"](False, "the dog got bluer")
    assert "check not met: the dog got bluer" in capsys.readouterr().out


def test_every_committed_gif_ends_on_its_saved_picture():
    """A GIF's last frame within 30 dB of the PNG the same run saved (a 64-colour palette
    left the dog a flat navy blob at 23.5 dB), every GIF under 2 MB, and the second photo
    animated too, so that the README does not show the method on the dog alone."""
    pairs = {"dog_starry_night_from_photo.gif": "dog_starry_night_from_photo.png",
             "dog_starry_night_from_noise.gif": "dog_starry_night_from_noise.png",
             "soccer_starry_night.gif": "soccer_starry_night.png"}
    assert set(pairs) <= {gif.name for gif in GENERATED.glob("*.gif")}
    for gif in GENERATED.glob("*.gif"):
        assert gif.stat().st_size < 2e6, gif.name
    for gif, png in pairs.items():
        assert H.last_frame_psnr(GENERATED / gif, GENERATED / png) >= 30, gif
        assert f'<img src="assets/generated/{gif}"' in (ROOT / "README.md").read_text(), gif


def test_readme_pictures_point_at_existing_files():
    readme = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(((?:assets|bench)/[^)\s]+)\)", readme)
    targets += re.findall(r'src="((?:assets|bench)/[^"]+)"', readme)
    assert len(targets) >= 8
    assert [target for target in targets if not (ROOT / target).is_file()] == []


def test_a_fresh_kernel_started_in_another_folder_finds_the_project(tmp_path):
    """The set-up cell walks up to the project folder: started in tests/, the cells up to the
    network's weights find nst_helpers, the images and the weights."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    cells = []
    for cell in notebook.cells:
        tags = notebook_tools.tags(cell)
        if cell.cell_type == "code" and {"parameters", "definitions"} & set(tags):
            cells.append(cell)
            if notebook_tools.CHECK_OUTPUT_TAG in tags:          # the network, with its weights
                break
    notebook.cells = cells + [nbformat.v4.new_code_cell(
        'print("working in", Path.cwd(), "content:", tuple(content_image.shape))')]
    outcome = notebook_tools.execute([notebook], ROOT / "tests",
                                     dict(os.environ, JUPYTER_DATA_DIR=str(tmp_path)))
    assert outcome["failures"] == []
    printed = "".join(notebook_tools.stream_text(cell) for cell in notebook.cells)
    assert f"working in {ROOT} content: (1, 3," in printed
    assert "(conv5_4): Conv2d(512, 512" in printed
