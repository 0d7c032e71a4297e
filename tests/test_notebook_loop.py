"""The notebook's optimisation loop, exercised directly (quick mode, CPU, tiny images)."""

import math

import pytest
import torch
from notebook_code import notebook_namespace


@pytest.fixture(scope="module")
def nb():
    return notebook_namespace(device_name="cpu")


def noise(nb, monkeypatch, seed):
    """The notebook's own noise_like(), which draws from the parameters cell's `seed`."""
    monkeypatch.setitem(nb, "seed", seed)
    return nb["noise_like"](nb["content_image"])


def test_same_seed_same_device_gives_identical_pixels(nb, monkeypatch):
    starts = [noise(nb, monkeypatch, seed) for seed in (0, 0, 1)]
    assert torch.equal(starts[0], starts[1]) and not torch.equal(starts[0], starts[2])
    runs = [nb["stylise"](start, nb["content_target"], nb["style_targets"], 6)[0]
            for start in starts]
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])


def test_loss_falls_by_a_factor_from_noise(nb, monkeypatch):
    _, history, _ = nb["stylise"](noise(nb, monkeypatch, seed=0), nb["content_target"],
                                  nb["style_targets"], 20)
    assert min(history["total"]) < history["total"][0] / 20


def test_tubingen_does_not_overshoot_or_get_stuck(nb):
    """Without a line search, L-BFGS overshot on this photo at 256 px (a loss 1500 times the
    start in float32, 1e27 in bfloat16, after which it never moved again). With the line
    search no evaluation, line-search trials included, rises above the start, and the loss
    falls by 10x within 25 steps."""
    content = nb["helpers"].load_image("assets/tubingen.jpg", max_size=256)
    style = nb["helpers"].load_image("assets/starry_night.jpg", max_size=256)
    target, style_targets = nb["targets_for"](content, style)
    _, history, _ = nb["stylise"](content, target, style_targets, 25)
    assert max(history["total"]) == history["total"][0]
    assert min(history["total"]) < history["total"][0] / 10


def tv_loss_that_explodes_at_call(nb, bad_call):
    """The notebook's tv_loss, except that call number `bad_call` returns NaN."""
    calls = {"count": 0}
    real_tv_loss = nb["tv_loss"]

    def tv_loss(image):
        calls["count"] += 1
        value = real_tv_loss(image)
        return value * math.nan if calls["count"] == bad_call else value

    return tv_loss


def test_non_finite_loss_stops_and_keeps_the_best_image(nb, capsys, monkeypatch):
    monkeypatch.setitem(nb, "tv_loss", tv_loss_that_explodes_at_call(nb, 4))
    monkeypatch.setitem(nb, "use_bfloat16", False)
    result, history, _ = nb["stylise"](nb["content_image"], nb["content_target"],
                                       nb["style_targets"], 10)
    assert len(history["total"]) == 3                 # stopped at the bad (4th) evaluation
    assert torch.isfinite(result).all()
    assert 0 <= result.min() and result.max() <= 1
    message = capsys.readouterr().out
    assert "the loss became nan" in message and "Lower style_weight or image_size" in message


def test_bfloat16_trouble_continues_in_float32_from_the_best_image(nb, capsys, monkeypatch):
    monkeypatch.setitem(nb, "tv_loss", tv_loss_that_explodes_at_call(nb, 4))
    monkeypatch.setitem(nb, "use_bfloat16", True)
    result, history, _ = nb["stylise"](nb["content_image"], nb["content_target"],
                                       nb["style_targets"], 10)
    assert len(history["total"]) >= 10                # the run went on to the end
    assert torch.isfinite(result).all()
    assert "in bfloat16; continuing in float32 from the best image" in capsys.readouterr().out


def test_a_very_strong_style_weight_does_not_derail_the_run(nb):
    """style/content = 0.1 with the style layers weighted equally (the first version's
    loss) made bfloat16 L-BFGS produce a NaN image after 3 steps."""
    content = nb["helpers"].load_image("assets/dog.jpg", max_size=128)
    style = nb["helpers"].load_image("assets/starry_night.jpg", max_size=128)
    target, style_targets = nb["targets_for"](content, style)
    _, history, _ = nb["stylise"](content, target, style_targets, 30, style_weight=0.1,
                                  layer_weights=nb["equal_layer_weights"])
    assert len(history["total"]) >= 30
    assert min(history["total"]) < history["total"][0] / 10


def test_out_of_memory_gets_a_message_with_a_size_that_fits(nb, monkeypatch):
    def no_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setitem(nb, "extract_features", no_memory)
    height, width = nb["content_image"].shape[-2:]
    with pytest.raises(RuntimeError, match=rf"out of memory at {width}x{height} pixels: "
                                           rf"set image_size to {int(max(height, width) * 0.7)}"):
        nb["stylise"](nb["content_image"], nb["content_target"], nb["style_targets"], 3)


def test_result_is_an_image_of_the_content_size(nb):
    result, history, frames = nb["stylise"](nb["content_image"], nb["content_target"],
                                            nb["style_targets"], 4, frame_every=2)
    assert result.shape == nb["content_image"].shape
    evaluations = len(history["total"])
    assert 4 <= evaluations <= 6                      # a line search may finish its last try
    assert len(frames) == len(range(0, evaluations, 2)) + 1   # every 2nd step, plus the result
    assert all(frame.shape == result.shape for frame in frames)


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


def test_feature_maps_are_channels_last_so_the_gram_table_is_a_view(nb):
    """The speed choice of section 3: on CPU the features come out channels_last, so the
    (positions x channels) table of section 5 shares their memory instead of copying."""
    assert nb["memory_format"] == torch.channels_last
    features = nb["extract_features"](nb["content_image"], ["relu2_1"])["relu2_1"]
    assert features.is_contiguous(memory_format=torch.channels_last)
    _, channels, height, width = features.shape
    table = features.permute(0, 2, 3, 1).reshape(height * width, channels)
    assert table.data_ptr() == features.data_ptr() and table.is_contiguous()


def test_time_estimate_is_printed_after_the_second_step(nb, capsys):
    nb["stylise"](nb["content_image"], nb["content_target"], nb["style_targets"], 5,
                  description="estimate")
    lines = [line for line in capsys.readouterr().out.splitlines()
             if line.startswith("estimate:")]
    assert len(lines) == 1 and "s per step on cpu, about" in lines[0]
    assert lines[0].endswith("for 5 steps")
