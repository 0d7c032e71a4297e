"""Every image a learner brings either loads as the right RGB tensor or gets a clear
message: modes, transparency, colour profiles, orientation, sizes, damaged files.

The cases are made here with Pillow and numpy; each checks an exact outcome: the size, a
mean colour, or the exception and the words of its message.
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


def save(image: Image.Image, path: Path, **options) -> Path:
    image.save(path, **options)
    return path


def test_load_image_returns_rgb_float_tensor_in_unit_range():
    image = H.load_image(ASSETS / "dog.jpg")
    assert image.shape == (1, 3, 625, 872)
    assert image.dtype == torch.float32
    assert 0.0 <= image.min() and image.max() <= 1.0
    assert image.is_contiguous()


def test_max_size_bounds_longest_side_and_keeps_aspect():
    image = H.load_image(ASSETS / "dog.jpg", max_size=256)
    assert image.shape == (1, 3, 183, 256)  # 625/872*256 = 183.5 -> 183
    portrait = H.load_image(ASSETS / "the_scream.jpg", max_size=200)
    assert portrait.shape[2] == 200 and portrait.shape[3] == round(804 / 1024 * 200)


def test_max_size_never_upscales_unless_asked(tmp_path, gradient_rgb):
    path = save(gradient_rgb, tmp_path / "small.png")
    assert H.load_image(path, max_size=512).shape == (1, 3, 48, 64)
    assert H.load_image(path, max_size=128, upscale=True).shape == (1, 3, 96, 128)


def test_greyscale_L_becomes_three_equal_channels(tmp_path):
    grey = Image.fromarray(np.full((40, 50), 77, np.uint8), "L")
    image = H.load_image(save(grey, tmp_path / "grey.png"))
    assert image.shape == (1, 3, 40, 50)
    assert torch.allclose(image, torch.full_like(image, 77 / 255))


def test_LA_transparent_pixels_become_background(tmp_path):
    array = np.zeros((40, 40, 2), np.uint8)  # black, ...
    array[:, :20, 1] = 255                    # left half opaque, right half transparent
    image = H.load_image(save(Image.fromarray(array, "LA"), tmp_path / "la.png"))
    assert torch.all(image[..., :20] == 0.0)  # opaque black stays black
    assert torch.all(image[..., 20:] == 1.0)  # transparent black becomes white, not black


def test_rgba_hidden_colour_under_transparency_never_shows(tmp_path):
    array = np.zeros((40, 40, 4), np.uint8)
    array[..., 0] = 255
    array[..., 2] = 255                       # magenta everywhere ...
    array[:, 20:, 3] = 255                    # ... but only the right half is visible
    array[:, :20, 3] = 0
    image = H.load_image(save(Image.fromarray(array, "RGBA"), tmp_path / "rgba.png"))
    left, right = image[..., :20], image[..., 20:]
    assert torch.all(left == 1.0)             # white background, no magenta
    assert torch.allclose(right[0, :, 0, 0], torch.tensor([1.0, 0.0, 1.0]))


def test_rgba_half_transparent_is_blended_with_background(tmp_path):
    array = np.zeros((32, 32, 4), np.uint8)
    array[..., 3] = 128                       # black at ~50 % opacity over white
    image = H.load_image(save(Image.fromarray(array, "RGBA"), tmp_path / "half.png"))
    assert abs(image.mean().item() - 127 / 255) < 0.01


def test_palette_with_transparent_index_has_no_magenta(tmp_path):
    image = Image.new("P", (40, 40), 0)
    palette = [255, 0, 255, 0, 128, 0] + [0] * (256 * 3 - 6)   # 0 magenta, 1 green
    image.putpalette(palette)
    image.paste(1, (0, 0, 20, 40))            # left half green
    path = save(image, tmp_path / "p.png", transparency=0)     # magenta is transparent
    loaded = H.load_image(path)
    magenta = (loaded[0, 0] > 0.9) & (loaded[0, 1] < 0.1) & (loaded[0, 2] > 0.9)
    assert not magenta.any()
    assert torch.allclose(loaded[0, :, 5, 5], torch.tensor([0.0, 128 / 255, 0.0]))
    assert torch.all(loaded[..., 20:] == 1.0)


def test_palette_without_transparency_keeps_its_colours(tmp_path, gradient_rgb):
    path = save(gradient_rgb.quantize(64), tmp_path / "p.png")
    loaded = H.load_image(path)
    reference = H._pil_to_tensor(gradient_rgb)
    assert (loaded - reference).abs().mean() < 0.03


def test_cmyk_jpeg_loads_as_rgb(tmp_path, gradient_rgb):
    path = save(gradient_rgb.convert("CMYK"), tmp_path / "cmyk.jpg", quality=95)
    loaded = H.load_image(path)
    reference = H._pil_to_tensor(gradient_rgb)
    assert loaded.shape == reference.shape
    assert (loaded - reference).abs().mean() < 0.05


def test_16_bit_grey_ramp_keeps_its_mean(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 64), (32, 1)).astype(np.uint16)
    path = tmp_path / "ramp16.png"
    Image.fromarray(ramp).save(path)          # a 16-bit PNG (mode I;16 or I)
    loaded = H.load_image(path)
    assert abs(loaded.mean().item() - 0.5) < 0.01   # Pillow's convert() would give ~1.0
    assert loaded[0, 0, 0, 0] == 0.0 and loaded[0, 0, 0, -1] == 1.0


def test_float_image_in_unit_range_is_not_clipped(tmp_path):
    array = np.tile(np.linspace(0, 1, 40, dtype=np.float32), (40, 1))
    path = tmp_path / "float.tiff"
    Image.fromarray(array, "F").save(path)
    loaded = H.load_image(path)
    assert abs(loaded.mean().item() - 0.5) < 0.01


@pytest.mark.parametrize("orientation, expected_size", [(1, (48, 64)), (3, (48, 64)),
                                                        (6, (64, 48)), (8, (64, 48))])
def test_exif_orientation_is_applied(tmp_path, gradient_rgb, orientation, expected_size):
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = save(gradient_rgb, tmp_path / f"o{orientation}.jpg", exif=exif, quality=95)
    loaded = H.load_image(path)
    assert loaded.shape[2:] == expected_size
    # The top-left corner of the stored picture (dark red/green, blue 100) ends up in the
    # corner that the orientation says; check where the darkest red+green corner went.
    corners = {"tl": loaded[0, :2, 0, 0], "tr": loaded[0, :2, 0, -1],
               "bl": loaded[0, :2, -1, 0], "br": loaded[0, :2, -1, -1]}
    darkest = min(corners, key=lambda k: corners[k].sum().item())
    assert darkest == {1: "tl", 3: "br", 6: "tr", 8: "bl"}[orientation]


def test_missing_file_error_names_the_file(tmp_path):
    with pytest.raises(H.ImageLoadError, match="nope.jpg: no such file"):
        H.load_image(tmp_path / "nope.jpg")


def test_text_file_named_jpg_gets_clear_error(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("this is not a picture")
    with pytest.raises(H.ImageLoadError, match="not an image Pillow can read"):
        H.load_image(path)


def test_truncated_jpeg_fails_at_load_time(tmp_path):
    from PIL import ImageFile
    data = (ASSETS / "dog.jpg").read_bytes()
    path = tmp_path / "truncated.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(H.ImageLoadError, match="damaged or truncated"):
        H.load_image(path)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False   # tolerance is never switched on globally


def test_too_small_image_is_refused_with_advice(tmp_path):
    path = save(Image.new("RGB", (20, 20)), tmp_path / "tiny.png")
    with pytest.raises(H.ImageLoadError, match="at least 32 pixels"):
        H.load_image(path)


def test_alpha_survives_a_round_trip_exactly(tmp_path):
    rgb, alpha = H.load_image_with_alpha(ASSETS / "matplotlib_logo.png", max_size=256)
    assert rgb.shape == (1, 3, 61, 256) and alpha.shape == (1, 1, 61, 256)
    assert 0.5 < (alpha == 0).float().mean() < 0.9            # mostly transparent logo
    assert rgb[0, :, alpha[0, 0] == 0].mean() > 0.99            # composited onto white
    path = H.save_image(rgb * 0.5, tmp_path / "logo.png", alpha=alpha)
    saved = np.asarray(Image.open(path))
    assert saved.shape == (61, 256, 4)
    expected = (alpha[0, 0] * 255).round().byte().numpy()
    assert np.array_equal(saved[..., 3], expected)


def test_opaque_file_gets_an_all_ones_alpha_and_jpeg_refuses_alpha(tmp_path):
    rgb, alpha = H.load_image_with_alpha(ASSETS / "dog.jpg", max_size=64)
    assert torch.all(alpha == 1.0) and alpha.shape[-2:] == rgb.shape[-2:]
    with pytest.raises(ValueError, match="transparency needs a .png"):
        H.save_image(rgb, tmp_path / "x.jpg", alpha=alpha)


def test_PA_transparent_palette_pixels_become_background():
    """No common format stores PA (Pillow makes it in memory, e.g. from P + alpha), so the
    conversion is tested directly."""
    image = Image.new("PA", (40, 40))
    image.putpalette([255, 0, 255, 0, 0, 200] + [0] * 762)   # 0 magenta, 1 blue
    pixels = image.load()
    for x in range(40):
        for y in range(40):
            pixels[x, y] = (1, 255) if x < 20 else (0, 0)      # left opaque blue, right hidden
    loaded = H._pil_to_tensor(H._flatten_to_rgb(image))
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


def test_huge_jpeg_is_reduced_while_decoding_without_a_memory_spike(tmp_path):
    """6000x4000 decoded in full is 72 MB of RGB; the draft decode stays far below that."""
    path = tmp_path / "huge.jpg"
    Image.open(ASSETS / "tubingen.jpg").resize((6000, 4000)).save(path, quality=80)
    script = textwrap.dedent(f"""
        import resource
        import nst_helpers as H                                   # (run in the project folder)
        H.load_image({str(ASSETS / 'dog.jpg')!r}, max_size=64)      # warm up the imports
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        image = H.load_image({str(path)!r}, max_size=512)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(tuple(image.shape), (after - before) // 1024)
    """)
    output = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True, cwd=ROOT).stdout.split(")")
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
