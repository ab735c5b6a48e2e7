"""Pretrained starts from local weight files: torchvision ResNet-18, a grey-scale stem, C3D by position."""

from __future__ import annotations

import pytest
import torch
import torchvision

from mmfer.errors import MmferError
from mmfer.models.pretrained import backbone_of, load_backbone
from mmfer.models.registry import build_model


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory):
    """A torchvision ResNet-18 state dict saved the way torchvision ships one (random, nothing downloaded)."""
    torch.manual_seed(3)
    net = torchvision.models.resnet18(weights=None)
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save(net.state_dict(), path)
    return path, net.state_dict()


def test_resnet18_state_dict_into_the_cnn_lstm_encoder(resnet18_file):
    path, source = resnet18_file
    model = build_model("cnn_lstm", encoder="resnet18", in_channels=3)
    report = load_backbone(model, path)
    enc = model.encoder.state_dict()
    for k in ("conv1.weight", "layer4.1.bn2.running_var", "layer2.0.downsample.0.weight"):
        torch.testing.assert_close(enc[f"net.{k}"], source[k])
    assert "fc.weight" in report["skipped"] and not report["missing"] or report["missing"] == []


def test_grey_scale_stem_sums_the_rgb_kernel(resnet18_file):
    path, source = resnet18_file
    model = build_model("face_frame", encoder="resnet18", in_channels=1)
    load_backbone(model, path)
    torch.testing.assert_close(model.encoder.net.conv1.weight, source["conv1.weight"].sum(1, keepdim=True))


def test_mismatches_are_errors(tmp_path, resnet18_file):
    path, _ = resnet18_file
    vgg = build_model("face_frame", encoder="vgg", width=8, in_channels=1)
    with pytest.raises(MmferError, match="none of its .* tensors fit"):
        load_backbone(vgg, path)
    with pytest.raises(MmferError, match="not found"):
        load_backbone(vgg, tmp_path / "nope.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(MmferError, match="not a weight file"):
        load_backbone(vgg, tmp_path / "junk.pth")
    other = build_model("face_frame", encoder="vgg", width=8, in_channels=1)
    wide = build_model("face_frame", encoder="vgg", width=16, in_channels=1)
    torch.save(wide.state_dict(), tmp_path / "wide.pt")
    with pytest.raises(MmferError, match="has shape .* build the branch like the source"):
        load_backbone(other, tmp_path / "wide.pt")


def test_c3d_kernels_by_position(tmp_path):
    """A Sports-1M-style C3D state dict (conv1 ... conv5b, fc6-fc8, conv biases) shares no names with
    mmfer's C3D, but its kernels line up one for one."""
    model = build_model("c3d", width=4, clip_len=8, input_size=32)
    convs = [v for v in backbone_of(model).state_dict().values() if v.dim() == 5]
    names = ["conv1", "conv2", "conv3a", "conv3b", "conv4a", "conv4b", "conv5a", "conv5b"]
    assert len(convs) == len(names)
    torch.manual_seed(0)
    sports = {}
    for name, k in zip(names, convs):
        sports[f"{name}.weight"] = torch.randn_like(k)
        sports[f"{name}.bias"] = torch.randn(k.shape[0])
    sports["fc8.weight"] = torch.randn(487, 16)
    torch.save(sports, tmp_path / "c3d_sports1m.pickle")
    report = load_backbone(model, tmp_path / "c3d_sports1m.pickle")
    after = [v for v in backbone_of(model).state_dict().values() if v.dim() == 5]
    for name, k in zip(names, after):
        torch.testing.assert_close(k, sports[f"{name}.weight"])
    assert len(report["loaded"]) == 8 and "fc8.weight" in report["skipped"]
