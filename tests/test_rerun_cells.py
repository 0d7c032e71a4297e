"""Every cell can be re-run.

A class runs the notebook top to bottom, then goes back and runs cells again: after
changing a parameter, or just to watch a loop once more. So, in one kernel, the notebook
is executed once in quick mode and then every code cell again, in order; none may raise.
A cell that overwrites its own input, deletes a name or creates a folder without
`exist_ok` works the first time only, and is caught here.
"""

import hashlib
import os
from pathlib import Path

import ipykernel.kernelspec
import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
from notebook_code import first_line

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "neural_style_transfer.ipynb"
ASSETS = ROOT / "assets"
CELL_TIMEOUT_SECONDS = 600


class CurrentEnvironmentKernelSpecs(KernelSpecManager):
    """`python3` is ipykernel under this very interpreter (as nbval's --nbval-current-env),
    whatever kernel specs a Jupyter data folder holds."""

    def get_kernel_spec(self, kernel_name):
        if kernel_name == "python3":
            return self.kernel_spec_class(resource_dir=ipykernel.kernelspec.RESOURCES,
                                          **ipykernel.kernelspec.get_kernel_dict())
        return super().get_kernel_spec(kernel_name)


def run_then_rerun(notebook: nbformat.NotebookNode, cwd: Path, env: dict,
                   timeout: int = CELL_TIMEOUT_SECONDS, then: tuple[str, ...] = (),
                   results: list | None = None) -> list[dict]:
    """Execute every code cell of `notebook` in order, then every code cell a second time, in
    order, in the same kernel (python3 of this environment, started in `cwd` with `env` as
    its whole environment). Returns the failures, in order, as dicts with `run` (1 or 2),
    `index` (in notebook.cells), `code_cell` (counting code cells only, as nbval does),
    `first_line`, `ename` and `evalue`. The first run stops at its first failure (what
    follows would fail with it); so does either run at a timeout or a dead kernel. Otherwise
    the second run goes on past a failure, so that every cell that cannot be re-run is found.

    Then, in the same kernel, the sources in `then` run one by one (as a learner runs single
    cells after a change); each one's printed text, or its error as "ename: evalue", is
    appended to `results`.
    """
    kernel = AsyncKernelManager(kernel_name="python3",
                                kernel_spec_manager=CurrentEnvironmentKernelSpecs())
    client = NotebookClient(notebook, km=kernel, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(cwd)}})
    code = [(index, cell) for index, cell in enumerate(notebook.cells)
            if cell.cell_type == "code" and cell.source.strip()]
    numbering = {index: number for number, index in
                 enumerate(index for index, cell in enumerate(notebook.cells)
                           if cell.cell_type == "code")}
    failures = []

    def failure(run, index, cell, ename, evalue):
        return {"run": run, "index": index, "code_cell": numbering[index],
                "first_line": first_line(cell.source), "ename": ename, "evalue": evalue}

    # cleanup_kc: the kernel manager is ours, not the client's, so ask it to shut down
    with client.setup_kernel(env=env, cleanup_kc=True):
        for run in (1, 2):
            for index, cell in code:
                try:
                    client.execute_cell(cell, index,
                                        execution_count=client.code_cells_executed + 1)
                except CellExecutionError as error:
                    failures.append(failure(run, index, cell, error.ename, error.evalue))
                    if run == 1:
                        return failures
                except (CellTimeoutError, DeadKernelError) as error:
                    failures.append(failure(run, index, cell, type(error).__name__,
                                            str(error).strip().splitlines()[0]))
                    return failures
        original = len(notebook.cells)
        for source in then if not failures else ():
            cell = nbformat.v4.new_code_cell(source)
            notebook.cells.append(cell)          # (nbclient stores the executed cell there)
            try:
                client.execute_cell(cell, len(notebook.cells) - 1,
                                    execution_count=client.code_cells_executed + 1)
                results.append("".join(output.get("text", "") for output in cell.outputs
                                       if output.output_type == "stream"))
            except CellExecutionError as error:
                results.append(f"{error.ename}: {error.evalue}")
        del notebook.cells[original:]
    return failures


def describe(failures: list[dict]) -> str:
    return "\n".join(f"{'first' if item['run'] == 1 else 'second'} run, cell {item['index']} "
                     f"(code cell {item['code_cell']}) `{item['first_line']}`: "
                     f"{item['ename']}: {item['evalue']}" for item in failures)


def quick_mode_environment(output_dir: Path) -> dict:
    """As conftest.py sets for nbval: quick mode, no progress bars, no windows, and the
    figures and GIFs in a scratch folder instead of assets/generated/."""
    return dict(os.environ, NST_QUICK="1", TQDM_DISABLE="1", MPLBACKEND="Agg",
                NST_OUTPUT_DIR=str(output_dir))


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


def cell_with(notebook, text: str) -> str:
    (source,) = [cell.source for cell in notebook.cells
                 if cell.cell_type == "code" and text in cell.source]
    return source


def test_every_cell_of_the_notebook_can_be_run_a_second_time(tmp_path):
    """... and after a change in the parameters cell, a later cell run on its own uses the
    new value (a weight) or says which cell to run first (an image, its size): no TypeError
    from a `None` that only the set-up cell filled in, no weight captured in Part I."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)      # as on disk now
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    assets_before = fingerprint(ASSETS)
    parameters = tagged_source(notebook, "parameters")
    settings = cell_after(notebook, parameters)           # device, quick mode
    first_picture = tagged_source(notebook, "first-picture")
    race = cell_with(notebook, "fast_result, fast_history, _ = stylise_fast(")
    probe = 'print(dog_history["style"][0], fast_history["style"][0])'
    weaker = parameters.replace("style_weight = 30.0", "style_weight = 3.0")
    other_photo = parameters.replace('content_path = "assets/dog.jpg"',
                                     'content_path = "assets/tubingen.jpg"')
    assert weaker != parameters and other_photo != parameters
    results = []
    failures = run_then_rerun(notebook, ROOT, quick_mode_environment(outputs), then=(
        probe,
        weaker, settings, first_picture, race, probe,     # a weight: used at once
        other_photo, settings, first_picture,             # another photo: says what to run
        parameters, race,                                 # quick mode's sizes are gone
    ), results=results)
    assert failures == [], "cells that fail when run again:\n" + describe(failures)
    counts = [cell.execution_count for cell in notebook.cells
              if cell.cell_type == "code" and cell.source.strip()]
    assert counts == list(range(len(counts) + 1, 2 * len(counts) + 1))   # each ran twice
    assert fingerprint(ASSETS) == assets_before, "a run wrote under assets/"
    before = [float(value) for value in results[0].split()]
    after = [float(value) for value in results[5].split()]
    # both loops start from the photo: their first style loss is style_weight x the same value
    assert after == pytest.approx([value * 3.0 / 30.0 for value in before], rel=1e-3)
    guard = "RuntimeError: The images or their size changed since their targets were made: " \
            "run the cells from 'The two images' (section 2) on first."
    assert results[8] == guard
    assert results[10] == guard


def test_a_cell_that_works_only_once_is_reported(tmp_path):
    """The check can fail: a tiny notebook with two cells that cannot be re-run, between
    cells that can. `del x` after `x = 1` is fine, since `x = 1` runs again first."""
    cells = ["x = 1",
             "del x",
             "import os\nos.mkdir('made_once')",
             "assert 'ran' not in globals(), 'this cell ran already'\nran = True",
             "print('fine')"]
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_markdown_cell("# Run me twice")]
        + [nbformat.v4.new_code_cell(source) for source in cells])
    failures = run_then_rerun(notebook, tmp_path, quick_mode_environment(tmp_path), timeout=60)
    assert [(item["run"], item["index"], item["code_cell"], item["first_line"], item["ename"])
            for item in failures] == [
        (2, 3, 2, "import os", "FileExistsError"),
        (2, 4, 3, "assert 'ran' not in globals(), 'this cell ran already'", "AssertionError"),
    ]
    assert "made_once" in failures[0]["evalue"]
    assert failures[1]["evalue"] == "this cell ran already"
    message = describe(failures)
    assert "second run, cell 3 (code cell 2) `import os`: FileExistsError: " in message
    assert (tmp_path / "made_once").is_dir()              # the kernel ran in cwd
    assert [cell.execution_count for cell in notebook.cells if cell.cell_type == "code"] == \
        [6, 7, 8, 9, 10]                                   # the second run went to the end


def test_a_first_run_failure_stops_and_is_reported(tmp_path):
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("# NBVAL_CHECK_OUTPUT\nundefined_name"),
        nbformat.v4.new_code_cell("print('never reached')")])
    failures = run_then_rerun(notebook, tmp_path, quick_mode_environment(tmp_path), timeout=60)
    assert describe(failures) == ("first run, cell 0 (code cell 0) `undefined_name`: "
                                  "NameError: name 'undefined_name' is not defined")
