"""The test session's one run of the notebook (the `notebook_run` fixture, tests/conftest.py),
in quick mode: first with the README's papermill parameters, then every cell again as
committed, then single cells after a change of parameters, all in one kernel.

What it must show: every cell runs, and runs again; the device-independent outputs are the
committed ones; a headless run with other images names its pictures after them and writes
only to its output folder; after a change in the parameters cell a later cell uses the new
value or says which cell to run first.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import nst_helpers as H
from bench import notebook_tools

ROOT = Path(__file__).resolve().parent.parent


def test_every_cell_runs_with_other_images_then_again_as_committed(notebook_run):
    assert notebook_run["failures"] == [], \
        "cells that fail:\n" + notebook_tools.describe(notebook_run["failures"])
    for notebook in notebook_run["passes"]:
        counts = [cell.execution_count for cell in notebook.cells
                  if cell.cell_type == "code" and cell.source.strip()]
        assert None not in counts
    code = [cell for cell in notebook_run["passes"][1].cells
            if cell.cell_type == "code" and cell.source.strip()]
    first_pass = len(code) + 1                  # papermill's injected cell
    assert [cell.execution_count for cell in code] == \
        list(range(first_pass + 1, first_pass + len(code) + 1))      # each ran a second time


def test_the_device_independent_outputs_are_the_committed_ones(notebook_run):
    """The cells tagged `check-output` (the network, the Gram matrix by hand, gradcheck,
    the Gram matrix of a tiled map) print the same in quick mode as in the committed run."""
    assert notebook_run["failures"] == []
    committed, executed = notebook_run["committed"], notebook_run["passes"][1]
    assert len([cell for cell in committed.cells
                if notebook_tools.CHECK_OUTPUT_TAG in notebook_tools.tags(cell)]) >= 4
    assert notebook_tools.output_mismatches(committed, executed) == []


def test_a_headless_run_uses_the_given_images_and_names_its_pictures_after_them(notebook_run):
    assert notebook_run["failures"] == []
    parameters, outputs = notebook_run["parameters"], notebook_run["papermill_outputs"]
    content, style = Path(parameters["content_path"]).stem, Path(parameters["style_path"]).stem
    assert (content, style) == ("golden_gate", "shipwreck")
    written = sorted(path.name for path in outputs.iterdir())
    for name in (f"{content}_{style}_from_photo.png", f"{content}_{style}_result.jpg",
                 f"{content}_{style}_from_noise.gif", f"{content}_feature_maps.jpg"):
        assert name in written, name
    assert [name for name in written if name.startswith("dog") or "starry_night" in name] == []
    photo = H.load_image(ROOT / parameters["content_path"], max_size=96)   # quick mode's size
    result = H.load_image(outputs / f"{content}_{style}_from_photo.png")
    assert result.shape == photo.shape
    assert (result - photo).abs().mean() < 0.2                            # that photo, stylised


def test_runs_write_only_to_their_output_folders(notebook_run):
    assets_before, root_before = notebook_run["before"]
    assets_after, root_after = notebook_run["after"]
    assert assets_after == assets_before        # nothing under assets/ added or changed
    assert root_after == root_before            # nor anything new in the project
    assert any(path.suffix == ".gif" for path in notebook_run["outputs"].iterdir())


def test_after_a_change_a_later_cell_uses_it_or_says_what_to_run(notebook_run):
    """A weight is used at once by the next cell run; a changed photo (or image size) makes
    the cells that use its targets say which cell to run first."""
    assert notebook_run["failures"] == []
    results = notebook_run["then"]
    before = [float(value) for value in results[0].split()]
    after = [float(value) for value in results[5].split()]
    assert after == pytest.approx([value * 3.0 / 30.0 for value in before], rel=1e-3)
    guard = "RuntimeError: The images or their size changed since their targets were made: " \
            "run the cells from 'The two images' (section 2) on first."
    assert results[8] == guard
    assert results[10] == guard


def printed(notebook) -> str:
    return "".join(notebook_tools.stream_text(cell) for cell in notebook.cells
                   if cell.cell_type == "code")


def test_precision_and_layout_follow_the_measurements_when_not_given(notebook_run):
    """With precision and memory_layout None (as shipped) sections 13 and 14 measure: bfloat16
    when it is more than 20% faster, channels_last unless it is more than 5% slower."""
    text = printed(notebook_run["passes"][1])
    float32, bfloat16 = map(float, re.search(
        r"one evaluation: float32 ([\d.]+) s, bfloat16 ([\d.]+) s", text).groups())
    contiguous, channels_last = map(float, re.search(
        r"default layout ([\d.]+) s, channels_last ([\d.]+) s", text).groups())
    precision = "bfloat16" if bfloat16 < 0.8 * float32 else "float32"
    layout = "channels_last" if channels_last < 1.05 * contiguous else "contiguous"
    assert f"the fast loop will use {precision} (measured here)" in text
    assert f"the fast loop will use {layout} (measured here)" in text


@pytest.mark.slow
def test_the_readmes_papermill_command_runs_as_written(tmp_path, readme_papermill_command,
                                                      notebook_executions):
    """The README's command itself, through papermill's command line (the session run uses
    papermill's own code to inject the parameters, not its command line): only the executed
    notebook and the output folder are moved to a scratch folder."""
    command = readme_papermill_command
    assert command[:2] == [".venv/bin/papermill", "neural_style_transfer.ipynb"]
    outputs = tmp_path / "outputs"
    output_dir = command[command.index("output_dir") + 1]
    command = [sys.executable, "-m", "papermill", command[1], str(tmp_path / "executed.ipynb"),
               *[str(outputs) if word == output_dir else word for word in command[3:]]]
    environment = {key: value for key, value in os.environ.items()
                   if key != "NST_OUTPUT_DIR"}       # it would override output_dir
    result = subprocess.run(command, cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True,
                            text=True, timeout=900,
                            env=dict(environment, NST_QUICK="1",
                                     JUPYTER_DATA_DIR=str(tmp_path / "jupyter-data")))
    notebook_executions.append("quick mode, the README's papermill command")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "golden_gate_shipwreck_from_photo.png" in [path.name for path in outputs.iterdir()]
