"""bench/notebook_tools.py, on tiny notebooks: the definitions loader (tags, papermill-like
overrides, explicit precision), the cell-by-cell runner of the re-run pass, and the output
comparison of the cells tagged `check-output`. Each check is shown able to fail."""

import os

import nbformat
import pytest
import torch

from bench import notebook_tools

TAGGED = """# %% tags=["parameters"]
size = 1
name = "photo"
precision = None
memory_layout = None
output_dir = "outputs"

# %% tags=["definitions"]
doubled = size * 2

# %%
raise RuntimeError("a long run: not a definition")

# %% tags=["definitions"]
tripled = size * 3
"""


def write(tmp_path, text):
    path = tmp_path / "tiny.py"
    path.write_text(text)
    return path


def load(path, **parameters):
    return notebook_tools.definitions("float32", "contiguous", notebook=path, **parameters)


def test_definitions_run_only_the_tagged_cells_with_the_overrides(tmp_path):
    names = load(write(tmp_path, TAGGED), size=5)
    assert (names["size"], names["doubled"], names["tripled"], names["name"]) == (5, 10, 15,
                                                                                 "photo")
    assert (names["precision"], names["memory_layout"]) == ("float32", "contiguous")


def test_precision_and_layout_must_be_given(tmp_path):
    with pytest.raises(ValueError, match="precision=None: pass one of"):
        notebook_tools.definitions(None, "contiguous", notebook=write(tmp_path, TAGGED))
    with pytest.raises(ValueError, match="memory_layout='fast'"):
        notebook_tools.definitions("float32", "fast", notebook=write(tmp_path, TAGGED))


def test_a_notebook_without_exactly_one_parameters_cell_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="0 code cells are tagged 'parameters'"):
        load(write(tmp_path, TAGGED.replace(' tags=["parameters"]', "")))
    with pytest.raises(ValueError, match="2 code cells are tagged 'parameters'"):
        load(write(tmp_path, TAGGED + TAGGED))


def test_an_unknown_parameter_is_an_error(tmp_path):
    with pytest.raises(KeyError, match="sise"):
        load(write(tmp_path, TAGGED), sise=5)


def test_parameter_values_reads_each_devices_value(tmp_path):
    path = write(tmp_path, TAGGED.replace("size = 1", "size = 512 if on_gpu else 192"))
    assert notebook_tools.parameter_values(path)["size"] == 192
    assert notebook_tools.parameter_values(path, device="cuda")["size"] == 512


def test_the_notebooks_definitions_run_no_picture_and_measure_nothing(monkeypatch):
    """The tagged cells compute the two images' targets and print a few figures; a tagged
    cell that made a picture (dozens of passes through VGG) or timed the loss would make every
    test and `make gallery` wait for it. Counted: VGG19's first convolution's calls."""
    calls = []
    monkeypatch.setattr(torch.nn.Conv2d, "forward",
                        lambda self, x, real=torch.nn.Conv2d.forward: (
                            calls.append(self.in_channels == 3) or real(self, x)))
    names = notebook_tools.definitions("bfloat16", "channels_last", device_name="cpu")
    assert (names["use_bfloat16"], names["chosen_layout"]) == (True, "channels_last")
    assert 0 < sum(calls) <= 6, f"{sum(calls)} passes through VGG19"
    for name in ("stylise", "stylise_fast", "paint", "check", "noise_like", "colour_speckle",
                 "palette_distance", "match_colours", "gram_matrix_fast"):
        assert callable(names[name]), name


# ------------------------------------------------------------------ the re-run pass's runner

def toy_notebook(*sources, tags=None):
    cells = [nbformat.v4.new_markdown_cell("# Run me twice")]
    for number, source in enumerate(sources):
        cell = nbformat.v4.new_code_cell(source)
        if tags and number in tags:
            cell.metadata["tags"] = tags[number]
        cells.append(cell)
    return nbformat.v4.new_notebook(cells=cells)


def run_twice(notebook, tmp_path):
    return notebook_tools.execute([notebook, notebook], tmp_path, dict(os.environ),
                                 timeout=60)["failures"]


def test_a_cell_that_works_only_once_is_reported(tmp_path):
    """Two cells that cannot be re-run, between cells that can. `del x` after `x = 1` is
    fine, since `x = 1` runs again first."""
    notebook = toy_notebook("x = 1", "del x", "import os\nos.mkdir('made_once')",
                            "assert 'ran' not in globals(), 'this cell ran already'\nran = True",
                            "print('fine')")
    failures = run_twice(notebook, tmp_path)
    assert [(item["run"], item["index"], item["code_cell"], item["first_line"], item["ename"])
            for item in failures] == [
        (2, 3, 2, "import os", "FileExistsError"),
        (2, 4, 3, "assert 'ran' not in globals(), 'this cell ran already'", "AssertionError"),
    ]
    assert "made_once" in failures[0]["evalue"]
    assert "pass 2, cell 3 (code cell 2) `import os`: FileExistsError: " in \
        notebook_tools.describe(failures)
    assert (tmp_path / "made_once").is_dir()              # the kernel ran in cwd
    assert [cell.execution_count for cell in notebook.cells if cell.cell_type == "code"] == \
        [6, 7, 8, 9, 10]                                   # the second pass went to the end


def test_a_first_pass_failure_stops_and_is_reported(tmp_path):
    failures = run_twice(toy_notebook("undefined_name", "print('never reached')"), tmp_path)
    assert notebook_tools.describe(failures) == (
        "pass 1, cell 1 (code cell 0) `undefined_name`: "
        "NameError: name 'undefined_name' is not defined")


def test_a_changed_output_of_a_checked_cell_is_reported_and_only_that(tmp_path):
    """The committed outputs of the cells tagged `check-output` against a new run's: a
    checked cell that prints something else is reported, an unchecked one is not."""
    def notebook(*printed):
        return toy_notebook(*[f"print({text!r})" for text in printed],
                            tags={0: ["check-output"], 2: ["check-output"]})

    committed, same, changed = (notebook("net", "0.31 s", "True"),
                                notebook("net", "0.29 s", "True"),
                                notebook("net", "0.29 s", "False"))
    for run in (committed, same, changed):
        notebook_tools.execute([run], tmp_path, dict(os.environ), timeout=60)
    assert notebook_tools.output_mismatches(committed, same) == []
    assert notebook_tools.output_mismatches(committed, changed) == ["code cell 2 `print('True')`"]
