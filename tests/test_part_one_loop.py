"""Part I's loop (`stylise`, with its line search) converges on every shipped photo and
painting, and on images it has never seen: the loss falls by a factor and no evaluation,
line-search trials included, rises to 10 times the starting loss.

Before Part I had a line search, the same loop reached 1.9e27 on Tübingen under The Starry
Night (section 11 now shows that run as "what goes wrong without it")."""

import numpy as np
import pytest
import torch
from notebook_code import notebook_namespace
from PIL import Image

import nst_helpers as H

PHOTOS = ["dog", "golden_gate", "soccer", "tubingen"]
PAINTINGS = ["composition_vii", "great_wave", "shipwreck", "starry_night", "the_scream"]
SIZE, STEPS = 64, 25


@pytest.fixture(scope="module")
def nb():
    """Part I's definitions, up to `stylise` (no run)."""
    return notebook_namespace(until="def stylise(", device_name="cpu")


def losses_of_a_run(nb, photo: torch.Tensor, painting: torch.Tensor) -> list[float]:
    weights = {"content": 1.0, "style": 30.0, "tv": 1.6e7, "layers": nb["style_layer_weights"]}
    _, history, _ = nb["stylise"](photo, nb["content_targets_for"](photo, nb["content_layer"]),
                                  nb["style_targets_for"](painting), STEPS, weights)
    return history["total"]


def assert_converges(losses: list[float], factor: float = 3.0):
    assert np.isfinite(losses).all(), losses
    assert max(losses) < 10 * losses[0], f"rose to {max(losses) / losses[0]:.3g}x its start"
    assert losses[-1] < losses[0] / factor, f"fell only {losses[0] / losses[-1]:.3g}x"


@pytest.mark.parametrize("photo", PHOTOS)
def test_part_one_converges_on_every_shipped_photo_and_painting(nb, photo):
    for painting in PAINTINGS:
        losses = losses_of_a_run(nb, H.load_image(f"assets/{photo}.jpg", max_size=SIZE),
                                 H.load_image(f"assets/{painting}.jpg", max_size=SIZE))
        assert_converges(losses)


def unseen_images(tmp_path) -> dict:
    """Photos and paintings unlike the shipped ones, as files: a wide strip, a flat grey
    with one dark square, hard black and white stripes, saturated noise."""
    generator = np.random.default_rng(0)
    strip = np.tile(np.linspace(0, 255, 200, dtype=np.uint8)[None, :, None], (60, 1, 3))
    flat = np.full((80, 60, 3), 128, np.uint8)
    flat[30:50, 20:40] = 20
    stripes = np.zeros((64, 64, 3), np.uint8)
    stripes[:, ::4] = 255
    noise = generator.integers(0, 256, (50, 90, 3), dtype=np.uint8)
    paths = {}
    for name, array in {"strip": strip, "flat": flat, "stripes": stripes, "noise": noise}.items():
        paths[name] = tmp_path / f"{name}.png"
        Image.fromarray(array).save(paths[name])
    return paths


def test_part_one_converges_on_images_it_has_never_seen(nb, tmp_path):
    images = unseen_images(tmp_path)
    pairs = [("strip", "starry_night"), ("flat", "the_scream"), ("dog", "stripes"),
             ("tubingen", "noise"), ("stripes", "flat")]
    for photo, painting in pairs:
        photo_path = images.get(photo, f"assets/{photo}.jpg")
        painting_path = images.get(painting, f"assets/{painting}.jpg")
        losses = losses_of_a_run(nb, H.load_image(photo_path, max_size=2 * SIZE),
                                 H.load_image(painting_path, max_size=2 * SIZE))
        assert_converges(losses, factor=2.0)


def test_the_check_can_fail_on_a_run_that_explodes():
    """assert_converges sees the run section 11 shows: an overshoot, then no progress."""
    with pytest.raises(AssertionError, match="rose to"):
        assert_converges([8.8e6, 1.9e27, 9e6, 8.8e6])
    with pytest.raises(AssertionError, match="fell only"):
        assert_converges([8.8e6, 7e6, 6e6])
