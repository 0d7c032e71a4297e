"""Run the notebook's own code cells in this process, so tests (and the benchmark) use the
very functions the notebook defines instead of a copy of them."""

import os
from contextlib import contextmanager
from pathlib import Path

import jupytext

ROOT = Path(__file__).resolve().parent.parent
# The paired script has the same cells as the notebook (tests/test_notebook.py checks it).
NOTEBOOK = ROOT / "neural_style_transfer.py"


@contextmanager
def _inside(folder: Path):
    previous = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


def notebook_namespace(until: str = "def stylise(", also: tuple[str, ...] = (),
                       **parameters) -> dict:
    """Execute code cells in order up to (and including) the first one containing `until`,
    then the later cells that contain one of the strings in `also` (cells that only define
    functions, so that no long run is repeated).

    Keyword arguments override the values of the parameters cell, like papermill does.
    Runs in quick mode unless NST_QUICK is set otherwise.
    """
    os.environ.setdefault("NST_QUICK", "1")
    os.environ.setdefault("MPLBACKEND", "Agg")
    namespace: dict = {"__name__": "__notebook__"}
    notebook = jupytext.read(NOTEBOOK)
    with _inside(ROOT):
        for cell in notebook.cells:
            if cell.cell_type != "code":
                continue
            exec(compile(cell.source, f"<{NOTEBOOK.name} cell>", "exec"), namespace)
            if "parameters" in cell.metadata.get("tags", []):
                unknown = set(parameters) - set(namespace)
                if unknown:
                    raise KeyError(f"not in the parameters cell: {sorted(unknown)}")
                namespace.update(parameters)
            if until in cell.source:
                break
        else:
            raise ValueError(f"no code cell contains {until!r}")
        later = [cell for cell in notebook.cells[notebook.cells.index(cell) + 1:]
                 if cell.cell_type == "code" and any(text in cell.source for text in also)]
        missing = [text for text in also if not any(text in cell.source for cell in later)]
        if missing:
            raise ValueError(f"no later code cell contains {missing}")
        for cell in later:
            exec(compile(cell.source, f"<{NOTEBOOK.name} cell>", "exec"), namespace)
    return namespace
