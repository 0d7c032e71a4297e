"""What the pictures must show, measured with the notebook's own functions (CPU, small
images): no colour speckle, the painting's palette, a legible photo."""

import pytest
from notebook_code import notebook_namespace

SIZE = 128
STEPS = 60


@pytest.fixture(scope="module")
def nb():
    return notebook_namespace(device_name="cpu", also=("def match_colours(", "def paint(",
                                                       "def colour_speckle(",
                                                       "def palette_distance("))


@pytest.fixture(scope="module")
def footballers(nb):
    """The footballers under The Starry Night: the first version's settings and `paint`."""
    helpers = nb["helpers"]
    photo = helpers.load_image("assets/soccer.jpg", max_size=SIZE)
    painting = helpers.load_image("assets/starry_night.jpg", max_size=SIZE)
    target, style_targets = nb["targets_for"](photo, painting)
    first_version, _, _ = nb["stylise"](photo, target, style_targets, STEPS,
                                        style_weight=1e-3,
                                        layer_weights=nb["equal_layer_weights"])
    painted, _ = nb["paint"]("assets/soccer.jpg", "assets/starry_night.jpg", SIZE,
                             (STEPS, STEPS // 2))
    return {"photo": photo, "painting": painting, "first version": first_version,
            "paint": painted}


def test_paint_leaves_no_colour_speckle_where_the_first_version_did(nb, footballers):
    """Speckle = pixel-to-pixel colour change. The photo sets the bound: a clean picture
    has at most 1.5 times the photo's (painted strokes add some); the first version's
    settings left about twice the photo's."""
    speckle = {name: nb["colour_speckle"](image) for name, image in footballers.items()}
    bound = BOUND_FACTOR * speckle["photo"]
    assert speckle["first version"] > bound, speckle   # the measure sees the old speckle
    assert speckle["paint"] < bound, speckle


def test_paint_takes_on_the_palette_and_keeps_the_photo(nb, footballers):
    palette = {name: nb["palette_distance"](image, footballers["painting"])
               for name, image in footballers.items()}
    assert palette["paint"] < 0.6 * palette["photo"], palette
    assert palette["paint"] < palette["first version"], palette


BOUND_FACTOR = 1.5
