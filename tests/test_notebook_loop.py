"""The notebook's optimisation loop, exercised directly (quick mode, CPU, tiny images)."""

import math

import pytest
import torch
from notebook_code import notebook_namespace


@pytest.fixture(scope="module")
def nb():
    return notebook_namespace(device_name="cpu")


def noise_like(nb, seed):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(nb["content_image"].shape, generator=generator)


def test_same_seed_same_device_gives_identical_pixels(nb):
    runs = [nb["stylise"](noise_like(nb, seed=0), nb["content_target"], nb["style_targets"], 6)[0]
            for _ in range(2)]
    assert torch.equal(runs[0], runs[1])
    other_seed = nb["stylise"](noise_like(nb, seed=1), nb["content_target"],
                               nb["style_targets"], 6)[0]
    assert not torch.equal(runs[0], other_seed)


def test_loss_falls_by_a_factor_from_noise(nb):
    _, history, _ = nb["stylise"](noise_like(nb, seed=0), nb["content_target"],
                                  nb["style_targets"], 20)
    assert min(history["total"]) < history["total"][0] / 20


def test_tubingen_does_not_overshoot_or_get_stuck(nb):
    """Without a line search, L-BFGS overshot on this photo at 256 px (a loss 1500 times the
    start in float32, 1e27 in bfloat16, after which it never moved again). With the line
    search the loss never rises above its start and falls by 10x within 25 steps."""
    load, features = nb["helpers"].load_image, nb["extract_features"]
    content = load("assets/tubingen.jpg", max_size=256)
    style = load("assets/starry_night.jpg", max_size=256)
    with torch.no_grad():
        target = features(content, [nb["content_layer"]])[nb["content_layer"]]
        style_targets = {layer: nb["gram_matrix"](feature) for layer, feature
                         in features(style, nb["style_layers"]).items()}
    _, history, _ = nb["stylise"](content, target, style_targets, 25)
    assert max(history["total"]) <= 1.5 * history["total"][0]
    assert min(history["total"]) < history["total"][0] / 10


def test_non_finite_loss_stops_and_keeps_the_best_image(nb, capsys, monkeypatch):
    calls = {"count": 0}
    real_tv_loss = nb["tv_loss"]

    def tv_loss_that_explodes(image):
        calls["count"] += 1
        value = real_tv_loss(image)
        return value * math.nan if calls["count"] == 4 else value

    monkeypatch.setitem(nb, "tv_loss", tv_loss_that_explodes)
    result, history, _ = nb["stylise"](nb["content_image"], nb["content_target"],
                                       nb["style_targets"], 10)
    assert len(history["total"]) == 3                 # stopped at the bad (4th) evaluation
    assert torch.isfinite(result).all()
    assert 0 <= result.min() and result.max() <= 1
    message = capsys.readouterr().out
    assert "the loss became nan" in message and "Lower style_weight or image_size" in message


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
