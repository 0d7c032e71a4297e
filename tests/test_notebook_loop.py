"""The notebook's optimisation loops, exercised directly (quick mode, CPU, tiny images):
mostly Part II's `stylise_fast`, the loop every run of Part III goes through."""

import math

import pytest
import torch
from notebook_code import notebook_namespace


@pytest.fixture(scope="module")
def nb():
    """The notebook up to the cell that defines `stylise_fast` (Part I's runs and Part II's
    measurements included, so `use_bfloat16` and VGG's layout are the notebook's choices)."""
    return notebook_namespace(device_name="cpu")


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


def test_non_finite_loss_stops_and_keeps_the_best_image(nb, capsys, monkeypatch):
    real_tv_loss = nb["tv_loss"]
    monkeypatch.setitem(nb, "tv_loss", tv_loss_that_misbehaves(nb, HUGE_THEN_NAN))
    monkeypatch.setitem(nb, "use_bfloat16", False)
    result, history, _ = run(nb, 10)
    assert len(history["total"]) == 3                 # stopped at the bad (4th) evaluation
    best = min(history["total"])
    assert best == history["total"][1] < history["total"][0]
    # the picture returned is the 2nd evaluation's (the last one's loss was not the best)
    monkeypatch.setitem(nb, "tv_loss", real_tv_loss)
    assert float32_loss(nb, result) == pytest.approx(best, rel=0.01)
    assert 0 <= result.min() and result.max() <= 1
    message = capsys.readouterr().out
    assert "the loss became nan; stopping with the best image" in message
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
    loss) made bfloat16 L-BFGS produce a NaN image after 3 steps."""
    monkeypatch.setitem(nb, "use_bfloat16", True)
    content, content_targets, style_targets = problem(nb, "assets/dog.jpg",
                                                      "assets/starry_night.jpg", 128)
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


def test_section_14_keeps_the_layout_it_measured_faster(nb):
    """With memory_layout=None: channels_last unless it measured more than 5% slower."""
    faster = ("channels_last" if nb["channels_last_seconds"] < 1.05 * nb["contiguous_seconds"]
              else "contiguous")
    assert nb["chosen_layout"] == faster


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
