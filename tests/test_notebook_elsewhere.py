"""The notebook finds its helper module and assets wherever Jupyter was started."""

from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent


def test_fresh_kernel_in_another_folder_finds_the_assets():
    notebook = nbformat.read(ROOT / "neural_style_transfer.ipynb", as_version=4)
    # Keep the cells up to the first use of the weights: set-up, imports, parameters,
    # image loading and the network. Enough to prove every path resolves.
    cells = []
    for cell in notebook.cells:
        cells.append(cell)
        if "helpers.load_vgg19_weights()" in cell.source:
            break
    notebook.cells = cells + [nbformat.v4.new_code_cell(
        'print("working in", Path.cwd(), "content:", tuple(content_image.shape))')]
    start_in = ROOT / "tests"                     # not the repository root
    client = NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(start_in)}})
    client.execute()
    printed = "".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                      for output in cell.outputs)
    assert f"working in {ROOT} content: (1, 3," in printed
    assert "(conv5_4): Conv2d(512, 512" in printed
