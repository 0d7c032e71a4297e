"""The notebook seen from Python, for the tests and the other jobs in bench/.

- `definitions(...)` runs the notebook's set-up and definition cells (the code cells tagged
  `parameters` or `definitions`) in this process and returns their names: the tests and
  bench/ call the very functions the lesson defines, not a copy of them. No optimisation
  runs and nothing is timed on the way, so precision and memory layout are passed in.
- `parameter_values(...)` reads the parameters cell's values without running anything.
- `execute(...)` runs notebooks cell by cell in one kernel, pass after pass (the test suite's
  one run of the notebook, and its re-run pass).
- `overriding(nb, ...)` changes names of a definitions namespace for the length of a block.
"""

import ast
import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import ipykernel.kernelspec
import jupytext
import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "neural_style_transfer.ipynb"
SCRIPT = ROOT / "neural_style_transfer.py"      # its twin: the same cells and tags
DEFINITIONS_TAG, PARAMETERS_TAG = "definitions", "parameters"


def code_cells(notebook: Path | None = None) -> list:
    """The code cells of a notebook (.ipynb or its jupytext .py twin) that hold code."""
    cells = jupytext.read(notebook or SCRIPT).cells
    return [cell for cell in cells if cell.cell_type == "code" and cell.source.strip()]


def tags(cell) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def parameters_cell(notebook: Path | None = None) -> str:
    tagged = [cell.source for cell in code_cells(notebook) if PARAMETERS_TAG in tags(cell)]
    if len(tagged) != 1:
        raise ValueError(f"{Path(notebook or SCRIPT).name}: {len(tagged)} code cells are tagged "
                         f"'{PARAMETERS_TAG}'; exactly one must be (papermill and the tests "
                         "set its values)")
    return tagged[0]


def parameter_values(notebook: Path | None = None, device: str = "cpu") -> dict:
    """name -> value of the parameters cell's literal assignments. For `GPU if on_gpu else
    CPU`, the value for `device` ("cpu" or "cuda"). Non-literal values (Path(...)) are left
    out."""
    values = {}
    for node in ast.parse(parameters_cell(notebook)).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            value = node.value
            if isinstance(value, ast.IfExp):
                value = value.body if device == "cuda" else value.orelse
            with contextlib.suppress(ValueError):
                values[node.targets[0].id] = ast.literal_eval(value)
    return values


@contextlib.contextmanager
def _environment(**values):
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def definitions(precision: str, memory_layout: str, quick: bool = True,
                notebook: Path | None = None, **parameters) -> dict:
    """Run the code cells tagged `parameters` or `definitions`, in order, in the project
    folder, and return the namespace they made.

    `precision` ("float32" / "bfloat16") and `memory_layout` ("contiguous" /
    "channels_last") replace the notebook's measurements of sections 13 and 14. Keyword
    arguments override other values of the parameters cell, as papermill does. `quick`
    sets the notebook's quick mode (small images, few steps). Unless `output_dir` is given,
    the figures the cells draw go to a scratch folder that is removed afterwards.
    """
    for name, value, choices in [("precision", precision, ("float32", "bfloat16")),
                                 ("memory_layout", memory_layout, ("contiguous",
                                                                   "channels_last"))]:
        if value not in choices:
            raise ValueError(f"{name}={value!r}: pass one of {choices} (the definitions do not "
                             "measure which is faster)")
    parameters.update(precision=precision, memory_layout=memory_layout)
    notebook = notebook or SCRIPT
    cells = [cell for cell in code_cells(notebook)
             if {DEFINITIONS_TAG, PARAMETERS_TAG} & set(tags(cell))]
    parameters_cell(notebook)                       # exactly one
    scratch = None
    if "output_dir" not in parameters:
        scratch = tempfile.mkdtemp(prefix="nst-definitions-")
        parameters["output_dir"] = Path(scratch)
    namespace: dict = {"__name__": "__notebook__"}
    try:
        with contextlib.chdir(ROOT), _environment(NST_QUICK="1" if quick else "0",
                                                  MPLBACKEND=os.environ.get("MPLBACKEND", "Agg")):
            for cell in cells:
                exec(compile(cell.source, f"<{Path(notebook).name} cell>", "exec"), namespace)
                if PARAMETERS_TAG in tags(cell):
                    unknown = set(parameters) - set(namespace)
                    if unknown:
                        raise KeyError(f"not in the parameters cell: {sorted(unknown)}")
                    namespace.update(parameters)
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    return namespace


@contextlib.contextmanager
def overriding(namespace: dict, **names):
    """`namespace` with `names` set inside the `with` block, and as they were afterwards,
    even after an error: `with overriding(nb, use_bfloat16=True): ...`."""
    saved = {name: namespace[name] for name in names}
    namespace.update(names)
    try:
        yield namespace
    finally:
        namespace.update(saved)


def first_line(source: str) -> str:
    """A cell's first line that is not blank."""
    return next((line.strip() for line in source.splitlines() if line.strip()), "")


# ------------------------------------------------------------ running notebooks in a kernel

class _CurrentEnvironmentKernelSpecs(KernelSpecManager):
    """`python3` is ipykernel under this very interpreter, whatever kernel specs a Jupyter
    data folder holds."""

    def get_kernel_spec(self, kernel_name):
        if kernel_name == "python3":
            return self.kernel_spec_class(resource_dir=ipykernel.kernelspec.RESOURCES,
                                          **ipykernel.kernelspec.get_kernel_dict())
        return super().get_kernel_spec(kernel_name)


def execute(passes: list, cwd: Path, env: dict, timeout: int = 600, then: tuple = ()) -> dict:
    """Execute the code cells of each notebook in `passes` in order, one notebook after the
    other, in one kernel (python3 of this environment, started in `cwd` with `env` as its
    whole environment); the outputs are stored in the cells. Then run the sources in `then`
    one by one, as a learner runs single cells after a change.

    Returns {"failures": [...], "then": [...]}. A failure is a dict with `run` (1-based pass),
    `index` (in that notebook's cells), `code_cell` (counting code cells, as Jupyter's "Cell
    N"), `first_line`, `ename` and `evalue`. The first pass stops at its first failure (what
    follows would fail with it), as does any pass at a timeout or a dead kernel; later passes
    go on past a failure, so that every cell that cannot be run again is found. `then` holds
    each source's printed text, or its error as "ename: evalue"; it is skipped after a failure.
    """
    kernel = AsyncKernelManager(kernel_name="python3",
                                kernel_spec_manager=_CurrentEnvironmentKernelSpecs())
    client = NotebookClient(passes[0], km=kernel, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(cwd)}})
    failures, printed = [], []

    def failure(run, index, cell, numbering, ename, evalue):
        return {"run": run, "index": index, "code_cell": numbering[index],
                "first_line": first_line(cell.source), "ename": ename, "evalue": evalue}

    with client.setup_kernel(env=env, cleanup_kc=True):
        for run, notebook in enumerate(passes, start=1):
            client.nb = notebook                  # nbclient stores each executed cell there
            code_indices = [index for index, cell in enumerate(notebook.cells)
                            if cell.cell_type == "code"]
            numbering = {index: number for number, index in enumerate(code_indices)}
            for index in code_indices:
                cell = notebook.cells[index]
                if not cell.source.strip():
                    continue
                try:
                    client.execute_cell(cell, index,
                                        execution_count=client.code_cells_executed + 1)
                except CellExecutionError as error:
                    failures.append(failure(run, index, cell, numbering, error.ename,
                                            error.evalue))
                    if run == 1:
                        return {"failures": failures, "then": printed}
                except (CellTimeoutError, DeadKernelError) as error:
                    failures.append(failure(run, index, cell, numbering, type(error).__name__,
                                            str(error).strip().splitlines()[0]))
                    return {"failures": failures, "then": printed}
        scratch = nbformat.v4.new_notebook()
        client.nb = scratch
        for source in then if not failures else ():
            cell = nbformat.v4.new_code_cell(source)
            scratch.cells.append(cell)
            try:
                client.execute_cell(cell, len(scratch.cells) - 1,
                                    execution_count=client.code_cells_executed + 1)
                printed.append(stream_text(cell))
            except CellExecutionError as error:
                printed.append(f"{error.ename}: {error.evalue}")
    return {"failures": failures, "then": printed}


def stream_text(cell) -> str:
    """What a code cell printed (its stream outputs, joined)."""
    return "".join("".join(output.get("text", "")) for output in cell.get("outputs", [])
                   if output.get("output_type") == "stream")


def describe(failures: list[dict]) -> str:
    return "\n".join(f"pass {item['run']}, cell {item['index']} (code cell {item['code_cell']}) "
                     f"`{item['first_line']}`: {item['ename']}: {item['evalue']}"
                     for item in failures)


CHECK_OUTPUT_TAG = "check-output"


def output_mismatches(committed, executed) -> list[str]:
    """The code cells tagged `check-output` whose printed text in `executed` differs from
    the committed notebook's, as "code cell N `first line`". The two notebooks must have the
    same cells; the others' outputs depend on the device and on quick mode and are not
    compared."""
    def checked(notebook):
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        return [(number, cell) for number, cell in enumerate(code)
                if CHECK_OUTPUT_TAG in tags(cell)]

    pairs = list(zip(checked(committed), checked(executed)))
    if len(pairs) != len(checked(committed)) or len(pairs) != len(checked(executed)):
        raise ValueError("the notebooks tag different cells `check-output`")
    return [f"code cell {number} `{first_line(cell.source)}`"
            for (number, cell), (_, run) in pairs if stream_text(cell) != stream_text(run)]
