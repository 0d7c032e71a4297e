"""notebook_code.notebook_namespace sets parameters like papermill does, or says why not."""

import os

import pytest
from notebook_code import notebook_namespace

TAGGED = """# %% tags=["parameters"]
size = 1
name = "photo"

# %%
doubled = size * 2
"""

UNTAGGED = TAGGED.replace(' tags=["parameters"]', "")


def notebook(tmp_path, text):
    path = tmp_path / "tiny.py"
    path.write_text(text)
    return path


def test_overrides_replace_the_parameters_cells_values(tmp_path):
    namespace = notebook_namespace("doubled", notebook(tmp_path, TAGGED), size=5)
    assert (namespace["size"], namespace["doubled"], namespace["name"]) == (5, 10, "photo")


def test_a_notebook_without_a_parameters_cell_is_an_error_not_a_silent_default(tmp_path):
    with pytest.raises(ValueError, match="0 code cells are tagged 'parameters'"):
        notebook_namespace("doubled", notebook(tmp_path, UNTAGGED), size=5)


def test_two_parameters_cells_are_an_error(tmp_path):
    with pytest.raises(ValueError, match="2 code cells are tagged 'parameters'"):
        notebook_namespace("doubled", notebook(tmp_path, TAGGED + TAGGED))


def test_an_unknown_parameter_is_an_error(tmp_path):
    with pytest.raises(KeyError, match="sise"):
        notebook_namespace("doubled", notebook(tmp_path, TAGGED), sise=5)


def test_stopping_before_the_parameters_cell_with_overrides_is_an_error(tmp_path):
    text = "# %%\nfirst = 1\n\n" + TAGGED
    with pytest.raises(ValueError, match="comes before the parameters cell"):
        notebook_namespace("first = 1", notebook(tmp_path, text), size=5)


def test_outside_pytest_the_cells_write_to_a_scratch_folder(monkeypatch, tmp_path):
    """Run from a script (the benchmark, a REPL), the notebook's figures must not land in
    assets/generated."""
    monkeypatch.delenv("NST_OUTPUT_DIR")
    namespace = notebook_namespace("content_name, style_name =", device_name="cpu")
    assert namespace["output_dir"] == namespace["Path"](os.environ["NST_OUTPUT_DIR"])
    assert "nst-notebook-code-" in namespace["output_dir"].name
