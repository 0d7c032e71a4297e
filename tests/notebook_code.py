"""Run the notebook's own code cells in this process, so tests (and the benchmark) use the
very functions the notebook defines instead of a copy of them."""

import atexit
import os
import shutil
import tempfile
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


def _scratch_output_dir() -> None:
    """Figures the cells draw on the way go to a folder removed at exit, never to
    assets/generated (pytest's conftest.py and the benchmark set their own)."""
    if "NST_OUTPUT_DIR" not in os.environ:
        folder = tempfile.mkdtemp(prefix="nst-notebook-code-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        os.environ["NST_OUTPUT_DIR"] = folder


def notebook_namespace(until: str = "def stylise_fast(", notebook: Path = NOTEBOOK,
                       also: tuple[str, ...] = (), **parameters) -> dict:
    """Execute code cells in order up to (and including) the first one containing `until`
    (by default the one that defines `stylise_fast`, the loop Part III runs: Part I's runs
    and Part II's measurements, which decide `use_bfloat16` and `chosen_layout`, come on the
    way), then the later cells that contain one of the strings in `also` (cells
    that only define functions, so that no long run is repeated).

    Keyword arguments override the values of the parameters cell (the code cell tagged
    `parameters`), like papermill does. Runs in quick mode unless NST_QUICK is set otherwise.
    """
    os.environ.setdefault("NST_QUICK", "1")
    os.environ.setdefault("MPLBACKEND", "Agg")
    _scratch_output_dir()
    namespace: dict = {"__name__": "__notebook__"}
    cells = [cell for cell in jupytext.read(notebook).cells if cell.cell_type == "code"]
    tagged = [index for index, cell in enumerate(cells)
              if "parameters" in cell.metadata.get("tags", [])]
    if len(tagged) != 1:
        raise ValueError(f"{notebook.name}: {len(tagged)} code cells are tagged 'parameters'; "
                         "exactly one must be (papermill and these tests set its values)")
    with _inside(ROOT):
        for index, cell in enumerate(cells):
            exec(compile(cell.source, f"<{notebook.name} cell>", "exec"), namespace)
            if index == tagged[0]:
                unknown = set(parameters) - set(namespace)
                if unknown:
                    raise KeyError(f"not in the parameters cell: {sorted(unknown)}")
                namespace.update(parameters)
            if until in cell.source:
                if parameters and index < tagged[0]:
                    raise ValueError(f"{until!r} comes before the parameters cell: "
                                     f"{sorted(parameters)} would not be applied")
                break
        else:
            raise ValueError(f"no code cell contains {until!r}")
        later = [cell for cell in cells[index + 1:]
                 if any(text in cell.source for text in also)]
        missing = [text for text in also if not any(text in cell.source for cell in later)]
        if missing:
            raise ValueError(f"no later code cell contains {missing}")
        for cell in later:
            exec(compile(cell.source, f"<{notebook.name} cell>", "exec"), namespace)
    return namespace


# ------------------------------------------- what a namespace's measurements chose, and cells

def vgg_layout(nb: dict):
    """The memory layout section 14 chose for the fast loop (measured, or as the parameters
    cell says)."""
    return nb["layouts"][nb["chosen_layout"]]


def precision_of(nb: dict) -> str:
    """The arithmetic section 13 chose (by measuring)."""
    return "bfloat16" if nb["use_bfloat16"] else "float32"


def first_line(source: str) -> str:
    """A cell's first line that says something (nbval's markers say nothing)."""
    lines = [line.strip() for line in source.splitlines() if line.strip()]
    telling = [line for line in lines if not line.startswith("# NBVAL_")]
    return (telling or lines or [""])[0]
