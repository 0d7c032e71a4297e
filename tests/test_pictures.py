"""What the pictures must show, measured with the notebook's own functions (CPU, small
images): no colour speckle, the painting's palette, a legible photo."""

import pytest
from notebook_code import notebook_namespace

SIZE = 128
STEPS = 60
BOUND_FACTOR = 1.5
# The cells that only define what `paint` and the measures need (the `to_yiq` cell also
# loads section 20's two small images).
DEFINITIONS = ("def match_colours(", "def palette_distance(", "def to_yiq(", "def paint(",
               "def colour_speckle(")


@pytest.fixture(scope="module")
def nb():
    return notebook_namespace(device_name="cpu", also=DEFINITIONS)


@pytest.fixture(scope="module")
def footballers(nb):
    """The footballers under The Starry Night: the first version's settings (one run from
    the photo, style layers weighted equally, style/content 1e-3) and `paint`."""
    helpers = nb["helpers"]
    photo = helpers.load_image("assets/soccer.jpg", max_size=SIZE)
    painting = helpers.load_image("assets/starry_night.jpg", max_size=SIZE)
    first_version_weights = {"content": 1.0, "style": 1e-3, "tv": 1e6,
                             "layers": {layer: 1 / 5 for layer in nb["style_layers"]}}
    first_version, _, _ = nb["stylise_fast"](
        photo, nb["content_targets_for"](photo, nb["content_layer"]),
        nb["style_targets_for"](painting), STEPS, first_version_weights)
    painted, _, _ = nb["paint"]("assets/soccer.jpg", "assets/starry_night.jpg", SIZE,
                             (STEPS, STEPS // 2), nb["current_weights"]())
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
