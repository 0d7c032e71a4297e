"""What several test modules share: a small test picture, the notebook's definitions, and
the test session's one run of the notebook.

`nb` is the notebook's set-up and definition cells run in this process (bench.notebook_tools),
in quick mode, on the CPU, with a GPU's arithmetic: float32 and the default memory layout.
Tests that change a name in it do so with monkeypatch.setitem, which puts it back.

`notebook_run` executes the notebook once for the whole session, in quick mode, in one
kernel (tests/test_notebook_run.py checks what it did):
  1. as the README's papermill example runs it: other images, their own output folder
     (papermill's own code injects the parameters);
  2. every cell once more, as committed: the re-run pass, after a change of parameters;
  3. single cells after a change, as a learner runs them (RERUN_CELLS below).
"""

import copy
import hashlib
import os
import shlex
from pathlib import Path

import nbformat
import numpy as np
import pytest
from papermill.iorw import load_notebook_node
from papermill.parameterize import parameterize_notebook
from PIL import Image

from bench import notebook_tools

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"


@pytest.fixture
def gradient_rgb() -> Image.Image:
    """A 64x48 RGB image with distinct colours in each corner (so flips are visible)."""
    y, x = np.mgrid[0:48, 0:64]
    array = np.stack([x * 4, y * 5, np.full_like(x, 100)], axis=-1).astype(np.uint8)
    return Image.fromarray(array, "RGB")


@pytest.fixture(scope="session")
def nb(tmp_path_factory) -> dict:
    return notebook_tools.definitions(precision="float32", memory_layout="contiguous",
                                     device_name="cpu",
                                     output_dir=tmp_path_factory.mktemp("definitions"))


@pytest.fixture(scope="session")
def readme_papermill_command() -> list[str]:
    """The papermill command line of the README (a bash block; may span `\\` lines)."""
    text = (ROOT / "README.md").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()
             if line.strip().startswith(".venv/bin/papermill ")]
    assert len(lines) == 1, "the README shows one papermill command"
    return shlex.split(lines[0])


def papermill_parameters(command: list[str]) -> dict:
    return {command[i + 1]: command[i + 2] for i, word in enumerate(command) if word == "-p"}


def fingerprint(folder: Path) -> dict:
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def tagged_source(notebook, tag: str) -> str:
    (source,) = [cell.source for cell in notebook.cells
                 if tag in cell.get("metadata", {}).get("tags", [])]
    return source


def cell_after(notebook, source: str) -> str:
    code = [cell.source for cell in notebook.cells if cell.cell_type == "code"]
    return code[code.index(source) + 1]


def rerun_cells(notebook) -> tuple[str, ...]:
    """Step 3: a learner changes a weight or the photo in the parameters cell, re-runs it
    and then single later cells. `probe` prints the first style loss of Part I's loop and of
    the fast loop (both start from the photo, so it is style_weight times the same value)."""
    parameters = tagged_source(notebook, "parameters")
    settings = cell_after(notebook, parameters)           # device, quick mode, output folder
    first_picture = tagged_source(notebook, "first-picture")
    (race,) = [cell.source for cell in notebook.cells if cell.cell_type == "code"
               and "fast_result, fast_history, _ = stylise_fast(" in cell.source]
    probe = 'print(dog_history["style"][0], fast_history["style"][0])'
    weaker = parameters.replace("style_weight = 30.0", "style_weight = 3.0")
    other_photo = parameters.replace('content_path = "assets/dog.jpg"',
                                     'content_path = "assets/tubingen.jpg"')
    assert weaker != parameters and other_photo != parameters
    return (probe,                                          # 0
            weaker, settings, first_picture, race, probe,   # 1-5: a weight, used at once
            other_photo, settings, first_picture,           # 6-8: a photo: says what to run
            parameters, race)                               # 9-10: quick mode's sizes gone


@pytest.fixture(scope="session")
def notebook_run(tmp_path_factory, readme_papermill_command, notebook_executions) -> dict:
    scratch = tmp_path_factory.mktemp("notebook-run")
    committed = nbformat.read(notebook_tools.NOTEBOOK, as_version=4)
    as_committed = copy.deepcopy(committed)
    parameters = papermill_parameters(readme_papermill_command)
    parameters["output_dir"] = str(scratch / "papermill-outputs")   # not the README's folder
    with_parameters = parameterize_notebook(load_notebook_node(str(notebook_tools.NOTEBOOK)),
                                            parameters)     # papermill's own loader and code
    environment = dict(os.environ, NST_QUICK="1", TQDM_DISABLE="1", MPLBACKEND="Agg",
                       NST_OUTPUT_DIR=str(scratch / "outputs"),
                       JUPYTER_DATA_DIR=str(scratch / "jupyter-data"))
    before = fingerprint(ASSETS), sorted(path.name for path in ROOT.iterdir())
    outcome = notebook_tools.execute([with_parameters, as_committed], ROOT, environment,
                                    then=rerun_cells(committed))
    after = fingerprint(ASSETS), sorted(path.name for path in ROOT.iterdir())
    notebook_executions += ["quick mode, README's papermill parameters",
                            "quick mode, the re-run pass"]
    return {**outcome, "committed": committed, "passes": [with_parameters, as_committed],
            "parameters": parameters, "papermill_outputs": Path(parameters["output_dir"]),
            "outputs": scratch / "outputs", "before": before, "after": after}


# Each full execution of the notebook in this session (a pass of `notebook_run`, a papermill
# run), counted for bench/timings.py, which times the suite against one notebook run.
NOTEBOOK_EXECUTIONS: list[str] = []


@pytest.fixture(scope="session")
def notebook_executions() -> list[str]:
    return NOTEBOOK_EXECUTIONS


def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line(f"notebook executions this session: {len(NOTEBOOK_EXECUTIONS)}"
                                + (f" ({', '.join(NOTEBOOK_EXECUTIONS)})"
                                   if NOTEBOOK_EXECUTIONS else ""))
