"""The notebook's optimisation loops and what their pictures must show, exercised directly
with the notebook's own functions (the `nb` fixture: quick mode, CPU, float32, the default
memory layout; small images):

- Part I's `stylise` converges on every shipped photo and painting, and on images it has
  never seen: the loss falls by a factor and no evaluation, line-search trials included,
  rises to 10 times the start. (Before Part I had a line search, the same loop reached
  1.9e27 on Tübingen under The Starry Night; section 11 shows that run.)
- Part II's `stylise_fast`, the loop every picture of Part III goes through: seeds, the
  best image kept, bfloat16 trouble, out of memory, layouts, the Gram gradient.
- `paint`: no colour speckle, the painting's palette, the photo kept.
"""

import math

import numpy as np
import pytest
import torch
from PIL import Image

import nst_helpers as H

PHOTOS = ["dog", "golden_gate", "soccer", "tubingen"]
PAINTINGS = ["composition_vii", "great_wave", "shipwreck", "starry_night", "the_scream"]
SIZE, STEPS = 64, 25


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


# ------------------------------------------------------------ Part II's fast loop

def noise(nb, monkeypatch, seed):
    """The notebook's own noise_like(), which draws from the parameters cell's `seed`."""
    monkeypatch.setitem(nb, "seed", seed)
    return nb["noise_like"](nb["content_image"])


def problem(nb, content_path, style_path, size):
    """The content and style targets of a photo and a painting, both at `size`."""
    content = nb["helpers"].load_image(content_path, max_size=size)
    style = nb["helpers"].load_image(style_path, max_size=size)
    return (content, nb["content_targets_for"](content, nb["content_layer"]),
            nb["style_targets_for"](style))


def run(nb, steps, start=None, **options):
    """stylise_fast on the notebook's photo, painting and weights."""
    start = nb["content_image"] if start is None else start
    return nb["stylise_fast"](start, nb["content_targets"], nb["style_targets"], steps,
                              nb["current_weights"](), **options)


@pytest.mark.parametrize("loop", ["stylise", "stylise_fast"])
def test_same_seed_same_device_gives_identical_pixels(nb, monkeypatch, loop):
    starts = [noise(nb, monkeypatch, seed) for seed in (0, 0, 1)]
    assert torch.equal(starts[0], starts[1]) and not torch.equal(starts[0], starts[2])
    runs = [nb[loop](start, nb["content_targets"], nb["style_targets"], 6,
                     nb["current_weights"]())[0] for start in starts]
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])


def test_loss_falls_by_a_factor_from_noise(nb, monkeypatch):
    """At the quick size, 20 steps from noise cut the loss about 18x with the default
    weights (noise's large TV term goes first); a loop that barely moves fails."""
    _, history, _ = run(nb, 20, start=noise(nb, monkeypatch, seed=0))
    assert min(history["total"]) < history["total"][0] / 10


def test_tubingen_does_not_overshoot_or_get_stuck(nb):
    """Without a line search, L-BFGS overshot on this photo at 256 px (a loss 1500 times the
    start in float32, 1e27 in bfloat16, after which it never moved again; section 11 shows
    it). With the line search no evaluation, line-search trials included, rises above the
    start, and the loss falls by 10x within 25 steps."""
    content, content_targets, style_targets = problem(nb, "assets/tubingen.jpg",
                                                      "assets/starry_night.jpg", 256)
    _, history, _ = nb["stylise_fast"](content, content_targets, style_targets, 25,
                                       nb["current_weights"]())
    assert max(history["total"]) == history["total"][0]
    assert min(history["total"]) < history["total"][0] / 10


def tv_loss_that_misbehaves(nb, bad_calls):
    """The notebook's tv_loss, except that call number n returns its value times
    bad_calls[n] (math.nan, or a huge factor)."""
    calls = {"count": 0}
    real_tv_loss = nb["tv_loss"]

    def tv_loss(image):
        calls["count"] += 1
        return real_tv_loss(image) * bad_calls.get(calls["count"], 1.0)

    return tv_loss


# The 3rd evaluation reports a huge loss (so the best image is the 2nd one, not the last),
# the 4th a NaN.
HUGE_THEN_NAN = {3: 1e12, 4: math.nan}


def float32_loss(nb, image):
    return nb["total_loss"](image, nb["content_targets"], nb["style_targets"],
                            nb["current_weights"](), nb["gram_matrix"])["total"].item()


def test_a_non_finite_loss_in_float32_goes_on_from_the_best_image(nb, capsys, monkeypatch):
    monkeypatch.setitem(nb, "tv_loss", tv_loss_that_misbehaves(nb, HUGE_THEN_NAN))
    monkeypatch.setitem(nb, "use_bfloat16", False)
    result, history, _ = run(nb, 10)
    assert len(history["total"]) >= 10                # one NaN does not end the run
    # the fresh L-BFGS starts from the 2nd evaluation's image (the best), not the last one
    assert history["total"][3] == pytest.approx(history["total"][1], rel=0.01)
    assert min(history["total"][3:]) < history["total"][1]    # and it improves on it
    assert torch.isfinite(result).all()
    assert ("the loss became nan; going on in float32 from the best image, with a fresh L-BFGS"
            in capsys.readouterr().out)


def test_a_loss_that_stays_non_finite_stops_and_keeps_the_best_image(nb, capsys, monkeypatch):
    real_tv_loss = nb["tv_loss"]
    # huge at the 3rd evaluation, NaN at the 4th and at the first evaluation of each fresh start
    bad_calls = {**HUGE_THEN_NAN, 5: math.nan, 6: math.nan}
    monkeypatch.setitem(nb, "tv_loss", tv_loss_that_misbehaves(nb, bad_calls))
    monkeypatch.setitem(nb, "use_bfloat16", False)
    result, history, _ = run(nb, 10)
    assert len(history["total"]) == 3                 # every evaluation after the 3rd failed
    best = min(history["total"])
    assert best == history["total"][1] < history["total"][0]
    # the picture returned is the 2nd evaluation's (the last one's loss was not the best)
    monkeypatch.setitem(nb, "tv_loss", real_tv_loss)
    assert float32_loss(nb, result) == pytest.approx(best, rel=0.01)
    assert 0 <= result.min() and result.max() <= 1
    message = capsys.readouterr().out
    assert message.count("going on in float32 from the best image, with a fresh L-BFGS") == 2
    assert "the loss became nan again; stopping with the best image" in message
    assert f"(loss {best:.4g}). Lower style_weight or the image size." in message


def test_bfloat16_trouble_goes_on_in_float32_from_the_best_image(nb, capsys, monkeypatch):
    monkeypatch.setitem(nb, "tv_loss", tv_loss_that_misbehaves(nb, HUGE_THEN_NAN))
    monkeypatch.setitem(nb, "use_bfloat16", True)
    result, history, _ = run(nb, 10)
    assert len(history["total"]) >= 10                # the run went on to the end
    assert torch.isfinite(result).all()
    # the 4th recorded evaluation is the float32 run's first: the best image (the 2nd's),
    # not the last one tried (whose true loss was lower than the 2nd's) nor the start
    assert history["total"][3] == pytest.approx(history["total"][1], rel=0.02)
    assert "the loss became nan in bfloat16; going on in float32 from the best image" \
        in capsys.readouterr().out


def test_a_very_strong_style_weight_does_not_derail_the_run(nb, monkeypatch):
    """style/content = 0.1 with the style layers weighted equally (the first version's
    loss) made bfloat16 L-BFGS produce a NaN image after 3 steps. (At 64 px: on a CPU without
    bfloat16 units, bfloat16 is some 30 times slower than float32.)"""
    monkeypatch.setitem(nb, "use_bfloat16", True)
    content, content_targets, style_targets = problem(nb, "assets/dog.jpg",
                                                      "assets/starry_night.jpg", 64)
    weights = {**nb["current_weights"](), "content": 1.0, "style": 0.1,
               "layers": {layer: 1 / 5 for layer in nb["style_layers"]}}
    result, history, _ = nb["stylise_fast"](content, content_targets, style_targets, 30, weights)
    assert len(history["total"]) >= 30
    assert min(history["total"]) < history["total"][0] / 10
    assert torch.isfinite(result).all()


def test_out_of_memory_gets_a_message_with_a_size_that_fits(nb, monkeypatch):
    def no_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setitem(nb, "extract_features", no_memory)
    height, width = nb["content_image"].shape[-2:]
    fits = int(max(height, width) * 0.7)
    with pytest.raises(RuntimeError, match=rf"out of memory at {width}x{height} pixels: "
                                           rf"make this picture {fits} px on its long side"):
        run(nb, 3)


def test_result_is_an_image_of_the_content_size(nb):
    result, history, frames = run(nb, 4, frame_every=2)
    assert result.shape == nb["content_image"].shape
    evaluations = len(history["total"])
    assert 4 <= evaluations <= 6                      # a line search may finish its last try
    assert len(history["seconds"]) == evaluations
    assert len(frames) == len(range(0, evaluations, 2)) + 1   # every 2nd step, plus the result
    assert all(frame.shape == result.shape for frame in frames)
    assert torch.equal(frames[-1], result)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("bfloat16", [False, True])
def test_hand_written_gram_gradient_equals_autograds(nb, layout, bfloat16):
    """GramProduct's backward (one product) must give autograd's gradient (two products),
    whatever the memory layout, under autocast too, and for a loss whose dL/dG is not
    symmetric (the formula uses dL/dG + its transpose)."""
    features = torch.randn(1, 8, 5, 7).contiguous(memory_format=layout)
    weights = torch.randn(8, 8)                       # not symmetric
    gradients = []
    for gram in (nb["gram_matrix"], nb["gram_matrix_fast"]):
        leaf = features.clone(memory_format=torch.preserve_format).requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bfloat16):
            loss = (gram(leaf).float() * weights).sum()
        loss.backward()
        gradients.append(leaf.grad)
    tolerance = 2e-2 if bfloat16 else 1e-5
    assert torch.allclose(gradients[0], gradients[1], rtol=tolerance,
                          atol=tolerance * gradients[0].abs().max())
    assert not torch.allclose(gradients[1], torch.zeros_like(gradients[1]))


def gram_table(features):
    """The (positions x channels) table that gram_matrix builds."""
    _, channels, height, width = features.shape
    return features.permute(0, 2, 3, 1).reshape(height * width, channels)


def test_the_fast_loop_runs_in_the_chosen_layout_and_leaves_vgg_as_built(nb, monkeypatch):
    """Part I's loop always runs VGG as built (contiguous), so that re-running it gives the
    same picture and timing basis; the fast loop switches VGG for the length of each run."""
    seen = []
    extract = nb["extract_features"]

    def spy(image, layers):
        features = extract(image, layers)
        seen.append({feature.is_contiguous(memory_format=torch.channels_last)
                     for feature in features.values() if feature.shape[1] > 3})
        return features

    monkeypatch.setitem(nb, "extract_features", spy)
    for name in ("channels_last", "contiguous"):
        monkeypatch.setitem(nb, "chosen_layout", name)
        seen.clear()
        run(nb, 2)
        assert seen and all(layouts == {name == "channels_last"} for layouts in seen), name
        assert vgg_layout_of_weights(nb) == torch.contiguous_format


def vgg_layout_of_weights(nb):
    layouts = {layer.weight.is_contiguous(memory_format=torch.channels_last)
               for layer in nb["vgg"] if isinstance(layer, torch.nn.Conv2d)}
    assert len(layouts) == 1
    return torch.channels_last if layouts.pop() else torch.contiguous_format


@pytest.mark.parametrize("layout", [torch.channels_last, torch.contiguous_format])
def test_channels_last_weights_make_the_gram_table_row_major(nb, layout):
    """Converting VGG's weights is enough (section 14): the features follow. Then the
    (positions x channels) table of section 5 is stored a row per position, as the Gram
    matrix's product reads it. In the default layout the table is a transposed view of the
    same memory (column-major), so the check can tell the two apart."""
    kept = vgg_layout_of_weights(nb)
    try:
        nb["vgg"].to(memory_format=layout)
        features = nb["extract_features"](nb["content_image"], ["relu2_1"])["relu2_1"]
        assert features.is_contiguous(memory_format=layout)
        table = gram_table(features)
        assert table.data_ptr() == features.data_ptr()      # a view either way, no copy
        assert table.is_contiguous() == (layout == torch.channels_last)
    finally:
        nb["vgg"].to(memory_format=kept)


def test_time_estimate_is_printed_after_the_second_step(nb, capsys):
    run(nb, 5, description="estimate")
    lines = [line for line in capsys.readouterr().out.splitlines()
             if line.startswith("estimate:")]
    assert len(lines) == 1 and "s per step on cpu, about" in lines[0]
    assert lines[0].endswith("for 5 steps")


def test_timing_a_pass_stops_repeating_once_one_is_far_too_slow(nb, monkeypatch):
    """Section 13 times bfloat16 once, not three times, where one pass already shows it far
    slower (on a CPU without bfloat16 units one pass took 15 s at 192 px)."""
    passes = []
    total_loss = nb["total_loss"]
    monkeypatch.setitem(nb, "total_loss", lambda *args: passes.append(1) or total_loss(*args))
    photo = H.load_image("assets/dog.jpg", max_size=SIZE)
    targets = (nb["content_targets_for"](photo, nb["content_layer"]),
               nb["style_targets_for"](H.load_image("assets/starry_night.jpg", max_size=SIZE)))
    counted = {}
    for enough_after in (0.0, float("inf")):
        passes.clear()
        nb["seconds_per_evaluation"](photo, targets, nb["current_weights"](), nb["gram_matrix"],
                                     bfloat16=False, enough_after=enough_after)
        counted[enough_after] = len(passes)
    assert counted == {0.0: 1, float("inf"): 3}


# ------------------------------------------------------------ paint's pictures

PICTURE_SIZE, PICTURE_STEPS = 128, 60
@pytest.fixture(scope="module")
def footballers(nb):
    """The footballers under The Starry Night: the first version's settings (one run from
    the photo, style layers weighted equally, style/content 1e-3) and `paint`."""
    helpers = nb["helpers"]
    photo = helpers.load_image("assets/soccer.jpg", max_size=PICTURE_SIZE)
    painting = helpers.load_image("assets/starry_night.jpg", max_size=PICTURE_SIZE)
    first_version_weights = {"content": 1.0, "style": 1e-3, "tv": 1e6,
                             "layers": {layer: 1 / 5 for layer in nb["style_layers"]}}
    first_version, _, _ = nb["stylise_fast"](
        photo, nb["content_targets_for"](photo, nb["content_layer"]),
        nb["style_targets_for"](painting), PICTURE_STEPS, first_version_weights)
    painted, _, _ = nb["paint"]("assets/soccer.jpg", "assets/starry_night.jpg", PICTURE_SIZE,
                                (PICTURE_STEPS, PICTURE_STEPS // 2), nb["current_weights"](),
                                nb["paint_content_boost"])
    return {"photo": photo, "painting": painting, "first version": first_version,
            "paint": painted}


def test_paint_leaves_no_colour_speckle_where_the_first_version_did(nb, footballers):
    """Speckle = pixel-to-pixel colour change per unit of pixel-to-pixel brightness change.
    The photo sets the bound: the first version's settings go above it, paint stays below."""
    speckle = {name: nb["colour_speckle"](image) for name, image in footballers.items()}
    assert speckle["first version"] > speckle["photo"] > speckle["paint"], speckle


def test_blurring_does_not_pass_for_clean(nb, footballers):
    painted = footballers["paint"]
    blurred = nb["blur"](painted, sigma=1.0)
    assert nb["colour_speckle"](blurred) > 0.8 * nb["colour_speckle"](painted)
    photo = footballers["photo"]
    assert nb["detail"](blurred, photo) < 0.5 * nb["detail"](painted, photo)


def test_the_palette_step_gives_the_painting_s_colour_distribution(nb, footballers):
    photo, painting = footballers["photo"], footballers["painting"]
    moved = nb["transfer_palette"](photo, painting)
    assert nb["palette_distance"](moved, painting) < 0.2 * nb["palette_distance"](photo, painting)
    assert nb["chroma_tail"](nb["take_palette"](photo, painting)) == pytest.approx(
        nb["chroma_tail"](painting), rel=0.15)


def test_repeated_palette_rounds_give_a_thin_stroke_its_colour(nb):
    """One blurred palette step leaves a one-pixel line of grey-blue short of the deep blue
    a large patch of the same colour takes on (the blur spreads most of the line's change
    onto its cream neighbours); `paint`'s last step repeats it, and the line gets well over
    half the patch's colour change (0.24, then 0.71, when written)."""
    cream, grey_blue, deep_blue = (torch.tensor(rgb).view(1, 3, 1, 1) for rgb in
                                   [(0.92, 0.86, 0.74), (0.55, 0.62, 0.72), (0.10, 0.20, 0.55)])
    image = cream.repeat(1, 1, 64, 64)
    image[..., 4] = grey_blue[..., 0]                           # a line, one pixel wide
    image[..., 30:60, 30:60] = grey_blue                        # a patch of the same colour
    painting = cream.repeat(1, 1, 64, 64)
    painting[..., 40:, :] = deep_blue                           # a quarter of it deep blue
    noise = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    painting = (painting + 0.02 * noise).clamp(0, 1)

    def colour_change(result, column):
        return nb["to_yiq"](result - image)[0, 1:, 45, column].norm().item()

    share = {}
    for rounds in (1, 5):
        result = nb["take_palette"](image, painting, rounds=rounds)
        share[rounds] = colour_change(result, 4) / colour_change(result, 45)
    assert share[1] < 0.4 and share[5] > 0.6, share


def test_the_palette_rounds_close_the_colour_tail_without_speckle(nb, footballers):
    """On a painted picture, five rounds bring the colour tail closer to the painting's than
    one, and add (almost) no colour speckle: each round's change is smooth."""
    image, painting = footballers["first version"], footballers["painting"]
    results = {rounds: nb["take_palette"](image, painting, rounds=rounds) for rounds in (1, 5)}
    gap = {rounds: abs(nb["chroma_tail"](result) - nb["chroma_tail"](painting))
           for rounds, result in results.items()}
    assert gap[5] < 0.7 * gap[1], gap
    speckle = {rounds: nb["colour_speckle"](result) for rounds, result in results.items()}
    assert speckle[5] < 1.1 * speckle[1], speckle


def test_paints_gif_frames_end_on_the_picture_it_returns(nb):
    """The last palette step comes after the last level's frames: the GIF must still end on
    the saved picture, not on the picture before that step."""
    picture, _, frames = nb["paint"]("assets/soccer.jpg", "assets/starry_night.jpg", 128, (4, 4),
                                     nb["current_weights"](), nb["paint_content_boost"],
                                     frame_every=2)
    assert len(frames) > 1
    assert torch.equal(frames[-1], picture.cpu())


def test_paint_takes_on_the_palette_and_keeps_the_photo(nb, footballers):
    palette = {name: nb["palette_distance"](image, footballers["painting"])
               for name, image in footballers.items()}
    assert palette["paint"] < 0.6 * palette["photo"], palette
    assert palette["paint"] < palette["first version"], palette


def test_paints_content_boost_keeps_the_photo_after_the_first_level(nb):
    """The levels after the first weigh the photo `content_boost` times more: the picture
    strays less from the photo (content loss at 128 px) than with the boost off."""
    photo = H.load_image("assets/tubingen.jpg", max_size=128)
    layer = nb["content_layer"]
    target = nb["content_targets_for"](photo, layer)[layer]
    losses = {}
    for boost in (1.0, 4.0):
        picture, _, _ = nb["paint"]("assets/tubingen.jpg", "assets/the_scream.jpg", 128, (30, 20),
                                    nb["current_weights"](), boost, palette_step=False)
        losses[boost] = torch.nn.functional.mse_loss(
            nb["content_targets_for"](picture, layer)[layer], target).item()
    assert losses[4.0] < 0.9 * losses[1.0], losses     # 0.73 when written
