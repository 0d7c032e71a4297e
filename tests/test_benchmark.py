"""The benchmark (bench/benchmark.py) is not run by CI (it takes 19 minutes), so these
checks keep it from drifting away from the notebook's code and from the README."""

import importlib.util
import json
import os
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nbformat
import pytest
import torch
from notebook_code import notebook_namespace, precision_of

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("benchmark", ROOT / "bench" / "benchmark.py")
benchmark = importlib.util.module_from_spec(spec)
spec.loader.exec_module(benchmark)


@pytest.fixture(scope="module")
def nb():
    return notebook_namespace(device_name="cpu")


def test_readme_shows_the_committed_results():
    results = json.loads((ROOT / "bench" / "results.json").read_text())
    table = benchmark.summary_table(results)
    overhead = results["floor_and_step"]["512"]["step_overhead_ratio"]
    assert f"| step_overhead_ratio (512 px) | {overhead} | <= 1.10 |" in table
    assert table in (ROOT / "README.md").read_text(), "paste bench/results.md into the README"


def test_floor_and_step_run_the_notebooks_code(nb):
    problem = benchmark.Problem(nb, 64)
    assert max(problem.content.shape[-2:]) == 64
    floor = benchmark.floor_seconds(nb, problem.content, repeats=1)
    step = benchmark.step_seconds(problem, steps=3)
    assert floor > 0 and step > 0


def test_half_size_style_loss_resizes_to_the_problem(nb):
    """style_loss_of brings a bigger picture down to the problem's size first: a picture
    made of 2x2 blocks of the photo must score exactly like the photo."""
    problem = benchmark.Problem(nb, 64)
    doubled = torch.nn.functional.interpolate(problem.content, scale_factor=2, mode="nearest")
    photo_loss = problem.style_loss_of(problem.content)
    assert photo_loss > 0
    assert problem.style_loss_of(doubled) == pytest.approx(photo_loss, rel=1e-5)


def test_running_best_never_rises():
    assert benchmark.running_best([5.0, 3.0, 4.0, 1.0, 2.0]) == [5.0, 3.0, 3.0, 1.0, 1.0]


def test_device_run_measures_both_precisions_and_renders(nb, tmp_path):
    """The GPU part runs on whatever device the namespace has; here the CPU, tiny."""
    chosen = precision_of(nb)
    gpu = benchmark.measure_device_run(nb, size=64, steps=3, figure_dir=tmp_path)
    assert gpu["float32"]["evaluations"] >= 3 and gpu["bfloat16"]["evaluations"] >= 3
    assert 0.5 < gpu["bfloat16_vs_float32_loss_ratio"] < 2
    assert (tmp_path / "cpu_float32_vs_bfloat16.jpg").exists()
    assert precision_of(nb) == chosen                      # put back as it was
    results = json.loads((ROOT / "bench" / "results.json").read_text())
    table = benchmark.summary_table({**results, "gpu": gpu})
    assert f"| GPU (cpu), 64 px x 3 steps, float32 / bfloat16 seconds | " \
           f"{gpu['float32']['seconds']} / {gpu['bfloat16']['seconds']} | <= 3 (H100) |" in table


def notebooks_in_the_project() -> set:
    """Every .ipynb under the project (what pytest's testpaths could collect), .venv aside."""
    found = set()
    for folder, subfolders, files in os.walk(ROOT):
        subfolders[:] = [name for name in subfolders if name not in (".venv", ".git")]
        found |= {Path(folder) / name for name in files if name.endswith(".ipynb")}
    return found


def test_timing_the_notebook_leaves_nothing_in_the_project_even_when_killed(monkeypatch):
    """While nbconvert runs (where a kill would stop the benchmark) no extra notebook exists
    in the project, and the executed copy goes to a scratch folder that is then removed."""
    before = notebooks_in_the_project()
    seen = {}

    def fake_nbconvert(command, env, **kwargs):
        seen.update(command=command, env=env, notebooks=notebooks_in_the_project())
        output_dir = Path(command[command.index("--output-dir") + 1])
        seen["output_dir_existed"] = output_dir.is_dir()
        (output_dir / "executed.ipynb").write_text("{}")
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(benchmark.subprocess, "run", fake_nbconvert)
    assert benchmark.time_notebook(quick=True) >= 0
    assert seen["notebooks"] == before
    command = seen["command"]
    assert command[1:5] == ["-m", "jupyter", "nbconvert", "--to"] and "--execute" in command
    assert Path(command[-1]) == ROOT / "neural_style_transfer.ipynb"
    output_dir = Path(command[command.index("--output-dir") + 1])
    assert seen["output_dir_existed"] and not output_dir.is_relative_to(ROOT)
    assert seen["env"]["NST_OUTPUT_DIR"] == str(output_dir) and seen["env"]["NST_QUICK"] == "1"
    assert not output_dir.exists()
    assert notebooks_in_the_project() == before


def test_benchmark_environment_is_removed_and_restored_afterwards():
    saved = {key: os.environ.get(key) for key in ("NST_QUICK", "NST_OUTPUT_DIR", "TQDM_DISABLE")}
    with benchmark.benchmark_environment() as scratch:
        assert os.environ["NST_QUICK"] == "0" and os.environ["NST_OUTPUT_DIR"] == str(scratch)
        assert scratch.is_dir() and not scratch.is_relative_to(ROOT)
        (scratch / "inputs.jpg").write_bytes(b"a figure drawn on the way")
    assert not scratch.exists()
    assert {key: os.environ.get(key) for key in saved} == saved


# ---------------------------------------------------------------- numbers quoted by the README

README = (ROOT / "README.md").read_text()
RESULTS = json.loads((ROOT / "bench" / "results.json").read_text())


def prose(markdown: str) -> str:
    """The README without code blocks and inline code (example commands and messages)."""
    return re.sub(r"`[^`\n]*`", "", re.sub(r"```.*?```", "", markdown, flags=re.DOTALL))


DURATION = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?) ?(?:(min|minutes?)(?: (\d+) ?s\b)?\b"
                      r"|(s|seconds?)\b)")


def durations(markdown: str) -> list[tuple[str, float, int]]:
    """(text, seconds, decimals shown) of every duration in the prose: "0.20 s", "432 s",
    "7 min 12 s", "19 minutes"."""
    found = []
    for match in DURATION.finditer(prose(markdown)):
        number, minutes, extra_seconds, _ = match.groups()
        if minutes:
            found.append((match.group(0), float(number) * 60 + float(extra_seconds or 0), 0))
        else:
            decimals = len(number.split(".")[1]) if "." in number else 0
            found.append((match.group(0), float(number), decimals))
    return found


def test_readme_how_long_section_shows_the_committed_results():
    assert benchmark.how_long(RESULTS) in README, "paste bench/results.md into the README"


def test_every_duration_in_the_readme_comes_from_the_benchmark():
    quotable = benchmark.quotable_seconds(RESULTS)
    found = durations(README)
    assert len(found) >= 8
    hand_typed = [text for text, seconds, decimals in found
                  if not any(round(value, decimals) == seconds for value in quotable)]
    assert hand_typed == []


def test_duration_finder_reads_every_way_the_readme_writes_them():
    text = "took 0.20 s, 432 s (7 min 12 s); about 19 minutes; `900 s` is code; 2 steps"
    assert durations(text) == [("0.20 s", 0.2, 2), ("432 s", 432, 0), ("7 min 12 s", 432, 0),
                               ("19 minutes", 1140, 0)]


def test_readme_quotes_no_test_count():
    """A count of tests is out of date with the next test; the README does not give one."""
    assert re.findall(r"\b\d+ (?:tests|passed)\b", prose(README)) == []


def test_readme_quotes_the_measured_reasons_for_leaving_out_torchvision_and_pygifsicle():
    spec = importlib.util.spec_from_file_location("dependencies",
                                                  ROOT / "bench" / "dependencies.py")
    dependencies = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dependencies)
    measured = json.loads((ROOT / "bench" / "dependencies.json").read_text())
    assert measured["pygifsicle"]["pygifsicle_colors_in_options_mb"] > \
        measured["pygifsicle"]["direct_call_mb"]
    for fact in dependencies.facts(measured):
        assert fact in README


# ------------------------------------------------- classroom timings, from the cells' timestamps

def timed_cell(source: str, start: float, end: float, tags=()):
    """A code cell that ran from `start` to `end` seconds past 10:00, stamped as nbclient
    stamps them (busy, then the input, ..., the reply, then idle)."""
    def stamp(seconds):
        return (datetime(2026, 1, 5, 10, tzinfo=UTC) + timedelta(seconds=seconds)
                ).isoformat().replace("+00:00", "Z")
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": list(tags)} if tags else {})
    cell.metadata["execution"] = {"iopub.status.busy": stamp(start),
                                  "iopub.execute_input": stamp(start + 0.001),
                                  "shell.execute_reply": stamp(end - 0.002),
                                  "iopub.status.idle": stamp(end)}
    return cell


def lesson(tmp_path, tag="first-picture", part_two="## Part II: variations") -> Path:
    """A small executed notebook: 3 s of set-up, the first picture at 31.5 s, a 70 s cell,
    Part II from 103 s; the whole run 124 s. Markdown that mentions Part II outside a
    heading, or a heading naming Part III, does not end Part I."""
    cells = [nbformat.v4.new_markdown_cell("# Part I: one picture"),
             timed_cell("import time", 0, 3),
             nbformat.v4.new_markdown_cell("In Part II we vary it.\n\n# Part III (later)"),
             timed_cell("# NBVAL_CHECK_OUTPUT\npicture = paint()", 3.5, 31.5, tags=[tag]),
             nbformat.v4.new_markdown_cell("### Part III, not II"),
             timed_cell("slow()", 32, 102),
             nbformat.v4.new_code_cell(""),          # empty: not run, no timestamps
             nbformat.v4.new_markdown_cell(part_two),
             timed_cell("more()", 103, 123),
             timed_cell("also_tagged()", 123.5, 124, tags=[tag])]       # not the first one
    path = tmp_path / "lesson.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    return path


def test_classroom_timings_reads_the_cells_timestamps(tmp_path):
    assert benchmark.classroom_timings(lesson(tmp_path)) == {
        "notebook_default_seconds": 124.0,
        "max_cell_seconds": 70.0,
        "slowest_cell": {"index": 5, "code_cell": 2, "first_line": "slow()"},
        "first_picture_seconds": 31.5,
        "part1_seconds": 102.0,
    }


@pytest.mark.parametrize("change, missing", [
    ({"tag": "parameters"}, "no code cell tagged `first-picture`"),
    ({"part_two": "Part II, without a heading"}, '"Part II"'),
    ({"part_two": "## Part III"}, '"Part II"'),
])
def test_classroom_timings_names_a_missing_marker(tmp_path, change, missing):
    with pytest.raises(ValueError, match=re.escape(missing)) as raised:
        benchmark.classroom_timings(lesson(tmp_path, **change))
    assert ("first-picture" in str(raised.value)) == ("tag" in change)


def test_classroom_timings_names_both_markers_and_an_unexecuted_notebook(tmp_path):
    with pytest.raises(ValueError, match="first-picture.*Part II"):
        benchmark.classroom_timings(lesson(tmp_path, tag="other", part_two="## More"))
    unexecuted = tmp_path / "unexecuted.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]),
                   unexecuted)
    with pytest.raises(ValueError, match="no execution timestamps"):
        benchmark.classroom_timings(unexecuted)


def test_only_timings_merges_them_into_results_and_renders_them(tmp_path, monkeypatch):
    """`--only timings` reads the notebook, runs none of its code, keeps every other result
    and renders the timings, against their targets, into results.md's "how long" section;
    every duration there may then be quoted by the README."""
    (tmp_path / "results.json").write_text(json.dumps({**RESULTS, "kept": "yes"}))
    monkeypatch.setattr(benchmark, "BENCH", tmp_path)
    monkeypatch.setattr(benchmark, "NOTEBOOK", lesson(tmp_path))
    monkeypatch.setattr(benchmark, "notebook_namespace", lambda **kwargs: pytest.fail("ran"))
    monkeypatch.setattr(benchmark.sys, "argv", ["benchmark.py", "--only", "timings"])
    benchmark.main()
    results = json.loads((tmp_path / "results.json").read_text())
    assert results == {**RESULTS, "kept": "yes", **benchmark.classroom_timings(
        tmp_path / "lesson.ipynb")}
    rendered = (tmp_path / "results.md").read_text()
    assert benchmark.how_long(results) in rendered
    for row in ["| first picture on screen (end of the cell tagged `first-picture`) | 32 s | "
                f"<= {benchmark.FIRST_PICTURE_TARGET_SECONDS} s |",
                '| Part I (up to the "Part II" heading) | 102 s | |',
                "| slowest cell (cell 5: `slow()`) | 70 s | "
                f"<= {benchmark.CELL_TARGET_SECONDS} s |",
                "| whole notebook (first cell's start to last cell's end) | 124 s (2 min 4 s) | "
                f"<= {benchmark.CLASSROOM_NOTEBOOK_TARGET_SECONDS} s |"]:
        assert row in rendered
    quotable = benchmark.quotable_seconds(results)
    assert [text for text, seconds, decimals in durations(benchmark.how_long(results))
            if not any(round(value, decimals) == seconds for value in quotable)] == []


def test_only_timings_stops_with_the_missing_marker(tmp_path, monkeypatch, capsys):
    (tmp_path / "results.json").write_text(json.dumps(RESULTS))
    monkeypatch.setattr(benchmark, "BENCH", tmp_path)
    monkeypatch.setattr(benchmark, "NOTEBOOK", lesson(tmp_path, tag="other"))
    monkeypatch.setattr(benchmark.sys, "argv", ["benchmark.py", "--only", "timings"])
    with pytest.raises(SystemExit):
        benchmark.main()
    assert "no code cell tagged `first-picture`" in capsys.readouterr().err
    assert json.loads((tmp_path / "results.json").read_text()) == RESULTS
    assert not (tmp_path / "results.md").exists()
