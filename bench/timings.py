"""How long the notebook and its tests take, as a class and a maintainer wait for them.

    .venv/bin/python -m bench.timings                  # 1 s: the classroom timings, read from
                                                       # the committed notebook's cell timestamps
    .venv/bin/python -m bench.timings --floor          # ... and the whole run in bare VGG19
                                                       # passes, measured here (run it just
                                                       # after `make notebook`, on its machine)
    .venv/bin/python -m bench.timings --test-session   # `make test`, then the notebook at its
                                                       # defaults and in quick mode, one after
                                                       # the other (about 8 minutes on a
                                                       # machine with bfloat16 units)

Writes bench/results.json: the classroom timings (`notebook_default_seconds`, the first
picture, Part I, the slowest cell: `make notebook`'s own run); with --floor
`notebook_default_floor_passes_256`, the whole run divided by one bare VGG19 forward and
backward pass at 256 px in float32 (`vgg_floor_pass_256_s`), a figure that compares machines
whose speeds differ; and with --test-session
`notebook_quick_seconds` and `test_session` (the test suite's seconds against one full
notebook run at the defaults timed just after it, their ratio, and how many times the
suite executed the notebook). `python -m bench.readme` renders them into the README.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from bench import notebook_tools
from bench.variants import floor_pass_seconds

ROOT = notebook_tools.ROOT
RESULTS = ROOT / "bench" / "results.json"
FIRST_PICTURE_TAG = "first-picture"
PART_TWO = "Part II"
PART_TWO_HEADING = re.compile(r"#{1,6}\s.*\bPart II\b")      # not "Part III"


def cell_start_and_end(cell: dict) -> tuple[datetime, datetime] | None:
    """When a code cell started and ended, from the timestamps nbclient stores in its
    metadata["execution"] (iopub.status.busy ... iopub.status.idle); None if it has none."""
    stamps = [datetime.fromisoformat(value) for key, value in
              cell.get("metadata", {}).get("execution", {}).items()
              if key.startswith(("iopub.", "shell.")) and isinstance(value, str)]
    return (min(stamps), max(stamps)) if stamps else None


def classroom_timings(notebook_path: Path) -> dict:
    """What a class waits for, read from the cell timestamps of an executed notebook (as
    `make notebook` leaves it), and the arithmetic its fast loop chose there (sections 13 and
    14 print it; a CPU without bfloat16 units is much slower): the whole run (first code
    cell's start to last code cell's end; kernel start-up not included), the slowest cell,
    the first picture (to the end of the first code cell tagged `first-picture`) and Part I
    (to the end of the last code cell before the first markdown cell whose heading names
    "Part II"). Seconds, to 0.1 s."""
    cells = json.loads(Path(notebook_path).read_text())["cells"]
    timed, code_number = [], 0
    for index, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        times = cell_start_and_end(cell)
        if times is None and source.strip():
            raise ValueError(f"{notebook_path}: cell {index} "
                             f"(`{notebook_tools.first_line(source)}`) has no execution "
                             "timestamps: execute the notebook first (make notebook)")
        if times is not None:
            timed.append({"index": index, "code_cell": code_number, "source": source,
                          "tags": cell.get("metadata", {}).get("tags", []),
                          "start": times[0], "end": times[1]})
        code_number += 1
    if not timed:
        raise ValueError(f"{notebook_path}: no executed code cell")
    part_two = next((index for index, cell in enumerate(cells) if cell["cell_type"] == "markdown"
                     and PART_TWO_HEADING.match("".join(cell["source"]).lstrip())), None)
    picture = next((cell for cell in timed if FIRST_PICTURE_TAG in cell["tags"]), None)
    part_one = [cell for cell in timed if part_two is not None and cell["index"] < part_two]
    missing = []
    if picture is None:
        missing.append(f"no code cell tagged `{FIRST_PICTURE_TAG}`")
    if part_two is None:
        missing.append(f'no markdown cell starting with a heading that names "{PART_TWO}" '
                       '(e.g. "# Part II")')
    elif not part_one:
        missing.append(f'no executed code cell before the "{PART_TWO}" heading')
    if missing:
        raise ValueError(f"{notebook_path}: " + "; ".join(missing))
    began = timed[0]["start"]

    def seconds(start, end):
        return round((end - start).total_seconds(), 1)

    slowest = max(timed, key=lambda cell: cell["end"] - cell["start"])
    printed = "".join(notebook_tools.stream_text(cell) for cell in cells)
    chosen = re.findall(r"^the fast loop will use (\w+)", printed, re.MULTILINE)
    return {"fast_loop_arithmetic": ", ".join(chosen) or "not printed",
            "notebook_default_seconds": seconds(began, timed[-1]["end"]),
            "max_cell_seconds": seconds(slowest["start"], slowest["end"]),
            "slowest_cell": {"index": slowest["index"], "code_cell": slowest["code_cell"],
                             "first_line": notebook_tools.first_line(slowest["source"])},
            "first_picture_seconds": seconds(began, picture["end"]),
            "part1_seconds": seconds(began, part_one[-1]["end"])}



def time_notebook(quick: bool) -> float:
    """Execute the notebook as `make notebook` does (wall seconds, kernel start included),
    but save the executed copy in a scratch folder: nothing is written inside the project,
    so a run killed half-way leaves no notebook behind."""
    environment = dict(os.environ, TQDM_DISABLE="1", NST_QUICK="1" if quick else "0")
    with tempfile.TemporaryDirectory(prefix="nst_bench_notebook_") as scratch:
        environment["NST_OUTPUT_DIR"] = scratch
        began = time.perf_counter()
        subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook",
                        "--execute", "--output-dir", scratch, "--output", "executed",
                        "--ExecutePreprocessor.timeout=-1",
                        "--ExecutePreprocessor.kernel_name=python3", str(notebook_tools.NOTEBOOK)],
                       env=environment, check=True, capture_output=True, cwd=ROOT)
        seconds = time.perf_counter() - began
    print(f"  whole notebook ({'quick mode' if quick else 'defaults'}): {seconds:.0f} s")
    return round(seconds, 1)


EXECUTIONS_LINE = re.compile(r"^notebook executions this session: (\d+)", re.MULTILINE)


def time_test_session() -> dict:
    """`make test`'s command (pytest, as configured), timed, with the number of times it
    executed the notebook (tests/conftest.py prints it at the end)."""
    began = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                            cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    seconds = time.perf_counter() - began
    if result.returncode != 0:
        raise RuntimeError("the tests failed; time them once they pass:\n"
                           + result.stdout[-3000:])
    executions = int(EXECUTIONS_LINE.search(result.stdout).group(1))
    print(f"  make test: {seconds:.0f} s, {executions} notebook executions")
    return {"seconds": round(seconds, 1), "notebook_executions": executions}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--test-session", action="store_true",
                        help="also time the notebook at its defaults, in quick mode, and the tests")
    parser.add_argument("--floor", action="store_true",
                        help="also measure a bare VGG19 pass at 256 px and count the run in them")
    arguments = parser.parse_args()
    try:
        timings = classroom_timings(notebook_tools.NOTEBOOK)
    except ValueError as error:
        parser.error(str(error))
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results.update(timings)
    print(f"first picture {timings['first_picture_seconds']} s, Part I "
          f"{timings['part1_seconds']} s, whole notebook {timings['notebook_default_seconds']} s, "
          f"slowest cell {timings['max_cell_seconds']} s ({timings['slowest_cell']})")
    if arguments.floor:
        floor = floor_pass_seconds()
        results["vgg_floor_pass_256_s"] = round(floor, 4)
        passes = round(timings["notebook_default_seconds"] / floor)
        results["notebook_default_floor_passes_256"] = passes
        print(f"= {results['notebook_default_floor_passes_256']} bare 256 px VGG19 passes "
              f"({floor:.3f} s each, float32)")
    if arguments.test_session:             # the tests first: they may fail
        tests = time_test_session()
        full_run = time_notebook(quick=False)
        results["notebook_quick_seconds"] = time_notebook(quick=True)
        results["test_session"] = {
            "pytest_seconds": tests["seconds"], "notebook_full_run_seconds": full_run,
            "ratio": round(tests["seconds"] / full_run, 2),
            "notebook_executions": tests["notebook_executions"]}
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
