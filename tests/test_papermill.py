"""The README's papermill example runs the notebook headless on other images.

The command is taken from the README as written; only the executed notebook and the output
folder are moved to a scratch folder, and quick mode (NST_QUICK=1) keeps it short. The run
is shared by the tests below.
"""

import hashlib
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import nst_helpers as H

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"


def readme_papermill_command() -> list[str]:
    """The papermill command line of the README (a bash block; may span `\\` lines)."""
    text = (ROOT / "README.md").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()
             if line.strip().startswith(".venv/bin/papermill ")]
    assert len(lines) == 1, "the README shows one papermill command"
    return shlex.split(lines[0])


def parameters_of(command: list[str]) -> dict:
    return {command[i + 1]: command[i + 2] for i, word in enumerate(command) if word == "-p"}


def fingerprint(folder: Path) -> dict:
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture(scope="module")
def papermill_run(tmp_path_factory):
    scratch = tmp_path_factory.mktemp("papermill")
    command = readme_papermill_command()
    parameters = parameters_of(command)
    # The README's run, with its two outputs (executed notebook, output_dir) in scratch
    assert command[:2] == [".venv/bin/papermill", "neural_style_transfer.ipynb"]
    command = [sys.executable, "-m", "papermill", command[1], str(scratch / "executed.ipynb"),
               *command[3:]]
    outputs = scratch / "outputs"
    command[command.index(parameters["output_dir"])] = str(outputs)
    environment = {key: value for key, value in os.environ.items()
                   if key != "NST_OUTPUT_DIR"}     # it would override output_dir
    environment.update(NST_QUICK="1", TQDM_DISABLE="1", MPLBACKEND="Agg",
                       JUPYTER_DATA_DIR=str(scratch / "jupyter-data"))
    before = fingerprint(ASSETS), sorted(path.name for path in ROOT.iterdir())
    # no terminal for the kernel: one started from a background job would be stopped
    # (SIGTTIN) as soon as it touched it
    result = subprocess.run(command, cwd=ROOT, env=environment, stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=900)
    after = fingerprint(ASSETS), sorted(path.name for path in ROOT.iterdir())
    return {"result": result, "parameters": parameters, "outputs": outputs,
            "executed": scratch / "executed.ipynb", "before": before, "after": after}


def printed(notebook: Path) -> str:
    cells = json.loads(notebook.read_text())["cells"]
    return "".join("".join(output.get("text", "")) for cell in cells
                   if cell["cell_type"] == "code" for output in cell["outputs"])


def test_readme_example_uses_two_other_images_and_its_own_output_folder():
    parameters = parameters_of(readme_papermill_command())
    assert parameters["content_path"] == "assets/golden_gate.jpg"
    assert parameters["style_path"] == "assets/shipwreck.jpg"
    assert not parameters["output_dir"].startswith("assets")
    for name in ("content_path", "style_path"):
        assert (ROOT / parameters[name]).is_file()


def test_papermill_runs_the_whole_notebook_with_the_given_images(papermill_run):
    result = papermill_run["result"]
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    parameters = papermill_run["parameters"]
    content = H.load_image(ROOT / parameters["content_path"], max_size=96)
    # the photo actually used is the given one, at quick mode's 96 px
    name = f"{Path(parameters['content_path']).stem}_{Path(parameters['style_path']).stem}"
    result = H.load_image(papermill_run["outputs"] / f"{name}_from_photo.png")
    assert result.shape == content.shape
    assert (result - content).abs().mean() < 0.2          # still that photo, stylised
    cells = json.loads(papermill_run["executed"].read_text())["cells"]
    assert all(cell.get("execution_count") for cell in cells
               if cell["cell_type"] == "code" and cell["source"])


def test_papermill_writes_into_output_dir_and_leaves_assets_alone(papermill_run):
    assert papermill_run["result"].returncode == 0
    written = sorted(path.name for path in papermill_run["outputs"].iterdir())
    assert any(name.endswith("_inputs.jpg") for name in written)
    assert any(name.endswith(".gif") for name in written)
    assets_before, root_before = papermill_run["before"]
    assets_after, root_after = papermill_run["after"]
    assert assets_after == assets_before              # no file under assets/ added or changed
    assert root_after == root_before                  # nor anything new in the project


def test_papermill_outputs_are_named_after_the_inputs(papermill_run):
    """Needs the notebook to name its results after content_path and style_path (their file
    stems) instead of the default images' names."""
    assert papermill_run["result"].returncode == 0
    content = Path(papermill_run["parameters"]["content_path"]).stem
    style = Path(papermill_run["parameters"]["style_path"]).stem
    written = sorted(path.name for path in papermill_run["outputs"].iterdir())
    for name in (f"{content}_{style}_from_photo.png", f"{content}_{style}_result.jpg",
                 f"{content}_{style}_from_noise.gif", f"{content}_feature_maps.jpg"):
        assert name in written, name
    named_after_the_defaults = [name for name in written
                                if name.startswith("dog") or "starry_night" in name]
    assert named_after_the_defaults == []
