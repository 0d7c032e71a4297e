"""Saving pictures and figures: round trips, atomic writes that never leave a broken or
half-written file, permissions, and an output folder that cannot hold the inputs."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import nst_helpers as H

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"


def test_png_round_trip_is_exact(tmp_path, gradient_rgb):
    tensor = H._pil_to_tensor(gradient_rgb)
    path = H.save_image(tensor, tmp_path / "out.png")
    assert torch.equal(H.load_image(path), tensor)


def test_jpeg_round_trip_is_close(tmp_path, gradient_rgb):
    tensor = H._pil_to_tensor(gradient_rgb)
    path = H.save_image(tensor, tmp_path / "out.jpg")
    assert (H.load_image(path) - tensor).abs().mean() < 0.02


def test_save_clamps_out_of_range_values(tmp_path):
    tensor = torch.tensor([-0.5, 0.5, 1.5]).view(1, 3, 1, 1).expand(1, 3, 40, 40)
    path = H.save_image(tensor, tmp_path / "clamped.png")
    pixel = np.asarray(Image.open(path))[0, 0]
    assert pixel.tolist() == [0, 128, 255]


def test_save_rejects_unknown_suffix_and_leaves_no_temp_files(tmp_path):
    with pytest.raises(ValueError, match=r"\.png or \.jpg"):
        H.save_image(torch.zeros(1, 3, 8, 8), tmp_path / "out.bmp")
    assert list(tmp_path.iterdir()) == []


def test_a_saved_file_can_be_read_back_and_replaced(tmp_path):
    """Re-running a cell replaces its own picture: nothing refuses a second save."""
    ours = H.save_image(torch.zeros(1, 3, 40, 40), tmp_path / "result.png")
    assert H.load_image(ours).max() == 0.0
    H.save_image(torch.ones(1, 3, 40, 40), ours)
    assert H.load_image(ours).min() == 1.0


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_saved_files_get_the_permissions_the_umask_gives(tmp_path, monkeypatch, umask):
    """Like any new file (mkstemp alone would give 0o600), and without the helper touching
    the umask: changing it, even for a moment, changes it for every thread."""
    import os
    previous = os.umask(umask)
    try:
        def no_umask(mask):
            raise AssertionError("nst_helpers must not set the umask")

        monkeypatch.setattr(os, "umask", no_umask)
        png = H.save_image(torch.zeros(1, 3, 40, 40), tmp_path / "black.png")
        gif = H.save_gif([torch.zeros(1, 3, 40, 40), torch.ones(1, 3, 40, 40)],
                         tmp_path / "two.gif")
        monkeypatch.undo()
    finally:
        os.umask(previous)
    assert png.stat().st_mode & 0o777 == 0o666 & ~umask
    assert gif.stat().st_mode & 0o777 == 0o666 & ~umask


def test_show_figure_saves_full_figure_and_shows_small_jpeg(tmp_path, monkeypatch):
    import matplotlib
    matplotlib.use("Agg")
    import IPython.display
    import matplotlib.pyplot as plt

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj: shown.append(obj))
    dog = H.load_image(ASSETS / "dog.jpg", max_size=256)
    H.show_images([dog, dog], ["a", "b"], path=tmp_path / "pair.jpg")
    assert len(shown) == 1 and shown[0].format == "jpeg"
    assert len(shown[0].data) < 150_000
    with Image.open(tmp_path / "pair.jpg") as saved:
        assert saved.format == "JPEG" and saved.width > 500
    assert plt.get_fignums() == []   # closed, so it is not shown a second time


def test_an_output_folder_that_holds_an_input_is_refused_with_advice(tmp_path):
    """The notebook's settings cell passes output_dir and the input paths through
    output_folder: a folder holding the photo or the painting is refused before anything is
    written, so no result is ever saved over them."""
    photo = tmp_path / "my_photo.png"
    Image.new("RGB", (40, 40), (1, 2, 3)).save(photo)
    painting = ROOT / "assets" / "starry_night.jpg"
    with pytest.raises(FileExistsError, match=r"holds the input image .*my_photo\.png.*"
                                              r"Set output_dir \(parameters cell\)"):
        H.output_folder(str(tmp_path), inputs=[painting, photo])
    with pytest.raises(FileExistsError, match="starry_night.jpg"):
        H.output_folder(ROOT / "assets", inputs=["assets/starry_night.jpg"])
    assert H.output_folder(str(tmp_path / "outputs"), [painting, photo]) == tmp_path / "outputs"
    assert H.output_folder(ROOT / "assets" / "generated", ["assets/dog.jpg"]) == \
        ROOT / "assets" / "generated"      # `make notebook`'s: a folder below the inputs
    assert sorted(path.name for path in tmp_path.iterdir()) == ["my_photo.png"]


def test_a_failed_write_leaves_the_old_file_intact(tmp_path, monkeypatch):
    """The disk fills up half-way through writing the new PNG: the error reaches the caller,
    the old file is untouched and the half-written temporary file is gone."""
    target = tmp_path / "result.png"
    H.save_image(torch.ones(1, 3, 40, 40), target)
    before = target.read_bytes()
    written_to = []

    def save_half_then_fail(image, file, *args, **kwargs):
        Path(file).write_bytes(before[: len(before) // 2])
        written_to.append(Path(file))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", save_half_then_fail)
    with pytest.raises(OSError, match="No space left"):
        H.save_image(torch.zeros(1, 3, 40, 40), target)
    assert written_to and written_to[0] != target and written_to[0].parent == tmp_path
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.png"]
