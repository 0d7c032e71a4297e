"""Static checks of the committed notebook and what it produced.

The notebook itself is re-executed by nbval (see pytest.ini); these tests check the
committed artefacts: that the stored notebook was run top to bottom, stays small, matches
its paired .py file, and that the README's gallery points at files the notebook wrote.
"""

import contextlib
import json
import re
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

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
    for name in ("content_path", "style_path", "image_size", "paint_size", "num_steps",
                 "style_weight", "seed", "device_name"):
        assert re.search(rf"^{name} = ", source, re.MULTILINE), name


CHECK_MARKER = "# NBVAL_CHECK_OUTPUT"


def checked_cells(notebook):
    """Indices among the code cells (nbval's "Cell N") of the cells nbval must compare."""
    code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    return [index for index, cell in enumerate(code)
            if CHECK_MARKER in "".join(cell["source"]).splitlines()]


def test_device_independent_cells_have_outputs_for_nbval_to_compare(notebook):
    checked = checked_cells(notebook)
    assert len(checked) >= 4
    code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    for index in checked:
        text = "".join("".join(output.get("text", "")) for output in
                       code[index]["outputs"] if output["output_type"] == "stream")
        assert text.strip(), f"cell {index} is checked but has no stored output"


def test_nbval_fails_a_checked_cell_whose_stored_output_is_wrong(notebook, tmp_path):
    """Run nbval, with this project's pytest.ini, on the notebook up to its last checked cell,
    twice: as committed (every cell passes) and with one character changed in the stored
    output of each checked cell (exactly those cells fail). So nbval really compares them."""
    code = [index for index, cell in enumerate(notebook["cells"]) if cell["cell_type"] == "code"]
    last = code[checked_cells(notebook)[-1]]
    for name in ("nst_helpers.py", "assets"):        # the set-up cell looks for these
        (tmp_path / name).symlink_to(ROOT / name)
    committed = {**notebook, "cells": notebook["cells"][:last + 1]}
    tampered = json.loads(json.dumps(committed))
    for index in checked_cells(tampered):
        output = next(output for output in tampered["cells"][code[index]]["outputs"]
                      if output["output_type"] == "stream")
        text = "".join(output["text"])
        position = next(i for i, character in enumerate(text) if character.isalnum())
        output["text"] = text[:position] + ("X" if text[position] != "X" else "Y") \
            + text[position + 1:]
    (tmp_path / "committed.ipynb").write_text(json.dumps(committed))
    (tmp_path / "tampered.ipynb").write_text(json.dumps(tampered))
    report = tmp_path / "report.xml"
    result = subprocess.run([sys.executable, "-m", "pytest", "-c", str(ROOT / "pytest.ini"),
                             "--rootdir", str(tmp_path), f"--junitxml={report}",
                             "committed.ipynb", "tampered.ipynb"],
                            cwd=tmp_path, stdin=subprocess.DEVNULL, capture_output=True,
                            text=True, timeout=600)
    outcomes = {}
    for case in ElementTree.parse(report).iter("testcase"):
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        failed = problem is not None
        assert not failed or "mismatch" in (problem.text or "").lower(), problem.text
        outcomes.setdefault(case.get("classname"), []).append(
            (int(case.get("name").split()[-1]), failed))
    code_cells_run = sum(cell["cell_type"] == "code" for cell in committed["cells"])
    assert len(outcomes["committed.ipynb"]) == code_cells_run, result.stdout[-3000:]
    assert [cell for cell, failed in outcomes["committed.ipynb"] if failed] == []
    assert [cell for cell, failed in outcomes["tampered.ipynb"] if failed] == \
        checked_cells(tampered), result.stdout[-3000:]
    assert result.returncode == 1


def cells_with_tags(path: Path) -> list:
    return [(cell.cell_type, cell.source, sorted(cell.metadata.get("tags", [])))
            for cell in jupytext.read(path).cells]


def test_paired_python_script_matches_the_notebook():
    """neural_style_transfer.py is the reviewable twin of the notebook: same cells, with
    the same tags (papermill finds its parameters cell by its tag)."""
    script = cells_with_tags(ROOT / "neural_style_transfer.py")
    assert script == cells_with_tags(NOTEBOOK), \
        "run: jupytext --sync neural_style_transfer.ipynb"
    assert ("code", "parameters") in {(kind, tag) for kind, _, tags in script for tag in tags}


def test_generated_gifs_exist_and_are_under_2_mb():
    gifs = sorted(GENERATED.glob("*.gif"))
    names = {gif.name for gif in gifs}
    assert {"dog_starry_night_from_photo.gif", "dog_starry_night_from_noise.gif"} <= names
    for gif in gifs:
        assert gif.stat().st_size < 2e6, gif.name


def test_readme_gallery_points_at_existing_files():
    readme = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\((assets/[^)\s]+)\)", readme)
    targets += re.findall(r'src="(assets/[^"]+)"', readme)
    assert len(targets) >= 8
    missing = [target for target in targets if not (ROOT / target).is_file()]
    assert missing == []


def parameter_values(source: str, branch: str = "orelse") -> dict:
    """name -> value of the parameters cell's literal assignments; for `GPU if on_gpu else
    CPU`, the CPU value (branch "orelse") or the GPU one ("body")."""
    import ast
    values = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            value = getattr(node.value, branch) if isinstance(node.value, ast.IfExp) else node.value
            with contextlib.suppress(ValueError):     # torch.cuda.is_available(), Path(...)
                values[node.targets[0].id] = ast.literal_eval(value)
    return values


def test_the_checks_assert_at_exactly_the_shipped_cpu_parameters(notebook):
    """`check` asserts when the parameters are `shipped_settings`: those must be the
    parameters cell's own CPU values, or the asserts would never (or always) fire."""
    import ast
    sources = ["".join(cell["source"]) for cell in code_cells(notebook)]
    parameters = next("".join(cell["source"]) for cell in code_cells(notebook)
                      if "parameters" in cell.get("metadata", {}).get("tags", []))
    check_cell = next(source for source in sources if "def check(" in source)
    shipped = next(ast.literal_eval(node.value) for node in ast.parse(check_cell).body
                   if isinstance(node, ast.Assign) and node.targets[0].id == "shipped_settings")
    cpu = parameter_values(parameters)
    assert shipped == {name: cpu[name] for name in shipped}
    assert {"content_path", "style_path", "image_size", "num_steps", "style_weight",
            "tv_weight", "content_weight", "paint_size", "paint_steps"} <= set(shipped)
    assert parameter_values(parameters, "body")["image_size"] == 512     # the GPU's


def test_a_check_asserts_at_the_shipped_settings_and_reports_under_others(capsys):
    from notebook_code import notebook_namespace
    nb = notebook_namespace(until="def check(", device_name="cpu")   # quick mode: reports
    capsys.readouterr()
    nb["check"](False, "the dog got bluer", "a weak style")
    assert capsys.readouterr().out == "check not met: the dog got bluer (a weak style)\n"
    nb.update(nb["shipped_settings"])                  # as the parameters cell ships them
    with pytest.raises(AssertionError, match="the dog got bluer"):
        nb["check"](False, "the dog got bluer")
    nb["check"](True, "the dog got bluer")
    assert capsys.readouterr().out == "check: the dog got bluer\n"
    nb["style_weight"] = 2000.0                        # exercise 1
    nb["check"](False, "the dog got bluer")
    assert "check not met: the dog got bluer" in capsys.readouterr().out


def test_every_committed_gif_ends_on_its_saved_picture():
    """A GIF's last frame within 30 dB of the PNG the same run saved (a 64-colour palette
    left the dog a flat navy blob at 23.5 dB), every GIF under 2 MB, and the second photo
    animated too, so that the README does not show the method on the dog alone."""
    import nst_helpers as H
    pairs = {"dog_starry_night_from_photo.gif": "dog_starry_night_from_photo.png",
             "dog_starry_night_from_noise.gif": "dog_starry_night_from_noise.png",
             "soccer_starry_night.gif": "soccer_starry_night.png"}
    assert set(pairs) <= {gif.name for gif in GENERATED.glob("*.gif")}
    for gif, png in pairs.items():
        assert H.last_frame_psnr(GENERATED / gif, GENERATED / png) >= 30, gif
        assert (GENERATED / gif).stat().st_size < 2e6, gif
        assert f'<img src="assets/generated/{gif}"' in (ROOT / "README.md").read_text(), gif
