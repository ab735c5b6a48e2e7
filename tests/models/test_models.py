"""Every branch: output shape, masked content cannot reach the logits, all-masked input stays finite,
registry errors, and the FER2013 -> video encoder hand-over."""

from __future__ import annotations

import pytest
import torch

from mmfer.data.audio import utterance_feature_names
from mmfer.errors import MmferError
from mmfer.models.face_frame import build_face_frame, load_encoder_from
from mmfer.models.registry import INPUT_KINDS, MODELS, build_model, builder_kwargs

B = 3

# name -> (small kwargs, input shape, mask shape, which input dim the mask's time axis is)
CASES = {
    "c3d": (dict(width=4, clip_len=8, input_size=32), (B, 3, 8, 32, 32), (B, 8), 2),
    "cnn_lstm": (dict(in_channels=1, width=4, hidden=16), (B, 6, 1, 32, 32), (B, 6), 1),
    "cnn_lstm_mean": (dict(in_channels=1, width=4, aggregate="mean"), (B, 6, 1, 32, 32), (B, 6), 1),
    "cnn_lstm_bigru": (dict(width=4, hidden=8, rnn="gru", bidirectional=True, layers=2, pool="mean"), (B, 5, 3, 32, 32), (B, 5), 1),
    "landmark_brnn": (dict(hidden=16), (B, 20, 272), (B, 20), 1),
    "landmark_brnn_lstm": (dict(hidden=8, rnn="lstm", layers=1), (B, 12, 272), (B, 12), 1),
    "audio_cnn": (dict(width=4, n_mels=32), (B, 1, 32, 37), (B, 37), 3),
    "face_frame": (dict(width=4), (B, 3, 40, 40), (B,), 0),
}
# models without a time axis or mask (one vector per clip): forward shape and finiteness only
UNMASKED = {"audio_stats": (dict(hidden=16), (B, len(utterance_feature_names())))}


def _model(case: str) -> tuple[torch.nn.Module, tuple, tuple, int]:
    kwargs, shape, mshape, axis = CASES[case]
    name = next(n for n in MODELS if case == n or case.startswith(n + "_"))
    torch.manual_seed(0)
    return build_model(name, num_classes=7, dropout=0.0, **kwargs).eval(), shape, mshape, axis


def _mask(mshape: tuple) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    m = torch.rand(mshape, generator=g) > 0.4
    m[0] = True  # one fully valid row
    if len(mshape) > 1:
        m[1, : mshape[1] // 2] = False  # leading gap
        m[1, -1] = True
        m[2, 1::2] = False  # holes in the middle
        m[2, 0] = True
    else:
        m[1] = False
    return m


def _scramble(x: torch.Tensor, mask: torch.Tensor, axis: int) -> torch.Tensor:
    """Replace everything the mask hides with other random values."""
    shape = [1] * x.ndim
    shape[0] = mask.shape[0]
    if mask.ndim > 1:
        shape[axis] = mask.shape[1]
    hidden = (~mask).reshape(shape).expand_as(x)
    return torch.where(hidden, torch.randn_like(x) * 5 + 3, x)


@pytest.mark.parametrize("case", sorted(CASES))
def test_forward_shape_and_masked_content_is_ignored(case: str) -> None:
    model, shape, mshape, axis = _model(case)
    torch.manual_seed(2)
    x = torch.randn(shape)
    mask = _mask(mshape)
    with torch.no_grad():
        out = model(x, mask)
        out2 = model(_scramble(x, mask, axis), mask)
        unmasked = model(x)
    assert out.shape == (B, 7) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, out2, rtol=1e-5, atol=1e-5)
    # the mask really is used: hiding frames changes the clips that have hidden frames
    assert not torch.allclose(out[1:], unmasked[1:], atol=1e-5)
    torch.testing.assert_close(out[0], unmasked[0], rtol=1e-5, atol=1e-5)
    assert model.input_kind in INPUT_KINDS


@pytest.mark.parametrize("case", sorted(CASES))
def test_all_masked_gives_finite_output_and_backward_works(case: str) -> None:
    model, shape, mshape, _ = _model(case)
    x = torch.randn(shape)
    mask = torch.zeros(mshape, dtype=torch.bool)
    with torch.no_grad():
        assert torch.isfinite(model(x, mask)).all()
    model.train()
    mask = _mask(mshape)
    out = model(x, mask)
    out.sum().backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("case", ["cnn_lstm", "landmark_brnn", "audio_cnn"])
def test_padded_batch_scores_equal_single_clip(case: str) -> None:
    """A clip's scores must not depend on how much padding its batch adds (variable length)."""
    model, shape, _, axis = _model(case)
    torch.manual_seed(3)
    x = torch.randn(shape)
    n = shape[axis] - 5
    mask = torch.ones(B, shape[axis], dtype=torch.bool)
    mask[1, n:] = False
    with torch.no_grad():
        batched = model(x, mask)[1]
        alone = model(x[1:2].narrow(axis, 0, n))[0]
    torch.testing.assert_close(batched, alone, rtol=1e-4, atol=1e-5)


def test_cnn_lstm_order_matters_but_gaps_do_not() -> None:
    """A hole in the middle of a clip is skipped, not fed to the RNN as a zero frame."""
    model, shape, _, _ = _model("cnn_lstm")
    x = torch.randn(1, 6, 1, 32, 32)
    gap = torch.tensor([[True, True, False, False, True, True]])
    with torch.no_grad():
        with_gap = model(x, gap)
        compact = model(x[:, [0, 1, 4, 5]])
        reversed_ = model(x[:, [5, 4, 1, 0]])
    torch.testing.assert_close(with_gap, compact, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(with_gap, reversed_, atol=1e-5)


def test_c3d_sizes_and_widths() -> None:
    for size, clip_len in [(48, 16), (64, 4), (112, 16)]:
        m = build_model("c3d", width=2, clip_len=clip_len, input_size=size).eval()
        with torch.no_grad():
            assert m(torch.randn(1, 3, clip_len, size, size)).shape == (1, 7)
    small = sum(p.numel() for p in build_model("c3d", width=8).parameters())
    paper = build_model("c3d", width=64, batch_norm=False)
    fc6 = paper.head[1]
    assert (fc6.in_features, fc6.out_features) == (8192, 4096)  # Tran et al. 2015 at 16x112x112
    assert small < 2_000_000
    convs = [m for m in paper.modules() if isinstance(m, torch.nn.Conv3d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 256, 512, 512, 512, 512]
    assert all(c.kernel_size == (3, 3, 3) for c in convs)


def test_registry_errors_name_the_problem() -> None:
    with pytest.raises(MmferError, match="available models: .*c3d"):
        build_model("c4d")
    with pytest.raises(MmferError, match=r"'widht'.*allowed: .*width"):
        build_model("c3d", widht=8)
    with pytest.raises(MmferError, match="model 'cnn_lstm': face encoder: resnet18 has a fixed width"):
        build_model("cnn_lstm", encoder="resnet18", width=32)
    with pytest.raises(MmferError, match="model 'face_frame': face encoder: unknown arch 'resnet_smal'"):
        build_model("face_frame", encoder="resnet_smal")  # which model said so was missing
    with pytest.raises(MmferError, match="unknown rnn 'rnn'"):
        build_model("landmark_brnn", rnn="rnn")
    with pytest.raises(MmferError, match=r"mask has shape \(2, 5\)"):
        build_model("landmark_brnn", hidden=4)(torch.randn(2, 4, 272), torch.ones(2, 5, dtype=torch.bool))
    for name, kwargs, x, axis in (("c3d", {"width": 8}, torch.randn(1, 4, 16, 32, 32), 1),
                                  ("face_frame", {"in_channels": 1}, torch.randn(1, 3, 44, 44), 1),
                                  ("cnn_lstm", {"in_channels": 1}, torch.randn(1, 2, 3, 64, 64), 2)):
        with pytest.raises(MmferError, match=rf"{name}: input has shape .* channels on axis {axis} .*in_channels="):
            build_model(name, **kwargs)(x)  # was torch's "expected input to have N channels" from inside a conv
    with pytest.raises(MmferError, match=r"model 'face_frame': dropout probability has to be between 0 and 1"):
        build_model("face_frame", dropout=2.0)
    assert set(MODELS) == {"c3d", "video3d", "cnn_lstm", "landmark_brnn", "audio_cnn", "audio_stats", "face_frame"}


def test_a_config_names_a_wrong_model_or_argument_when_it_is_loaded(tmp_path) -> None:
    """Before any data is read (the error came when training started)."""
    from mmfer.engine.config import load_train_config

    p = tmp_path / "run.yaml"
    for model, message in (("{name: c4d}", r"run\.yaml: unknown model 'c4d'; available models: .*c3d"),
                           # values the builder refuses: as the config loads, not after the data (built on meta)
                           ("{name: face_frame, kwargs: {dropout: 2.0}}", r"run\.yaml: model\.kwargs: model "
                                                                           r"'face_frame': dropout probability"),
                           ("{name: cnn_lstm, kwargs: {encoder: resnet99}}", r"run\.yaml: model\.kwargs: .*resnet99"),
                           ("{name: audio_stats, kwargs: {dropout: 2.0, utterance_norm: [cmn]}}",
                            r"run\.yaml: model\.kwargs: .*dropout probability"),
                           ("{name: audio_cnn, kwargs: {num_classes: 8}}", r"num_classes.*every model answers the 7"),
                           ("{name: face_frame, kwargs: {widht: 16}}", r"run\.yaml: model 'face_frame': unknown "
                                                                        r"argument 'widht'; allowed: .*width")):
        p.write_text(f"name: t\nmodel: {model}\n")
        with pytest.raises(MmferError, match=message):
            load_train_config(p)
    from mmfer.engine.train import train

    with pytest.raises(MmferError, match=r"run\.yaml: model 'face_frame': unknown argument 'widht'"):
        train(str(p), data=tmp_path, out=tmp_path / "out")  # a path is read as the config (was a TypeError)
    assert builder_kwargs("audio_cnn") == {"num_classes": 7, "n_mels": 64, "width": 32, "dropout": 0.3,
                                           "utterance_norm": "none"}
    with pytest.raises(MmferError, match="unknown utterance_norm 'cepstral'"):
        build_model("audio_cnn", utterance_norm="cepstral")


@pytest.mark.parametrize("norm", ["cmn", "cmvn"])
def test_audio_cnn_utterance_norm_ignores_the_channel(norm: str) -> None:
    """A per-band level shift (a microphone, a room) over the whole utterance leaves the scores as they were;
    cmvn also a per-band gain. Padded steps stay out of the utterance's mean and spread."""
    torch.manual_seed(0)
    model = build_model("audio_cnn", width=4, n_mels=32, utterance_norm=norm).eval()
    plain = build_model("audio_cnn", width=4, n_mels=32).eval()
    x = torch.randn(2, 1, 32, 40)
    mask = torch.ones(2, 40, dtype=torch.bool)
    mask[1, 30:] = False
    shift, gain = 3 * torch.randn(2, 1, 32, 1), (torch.rand(2, 1, 32, 1) + 0.5 if norm == "cmvn" else 1.0)
    with torch.no_grad():
        torch.testing.assert_close(model(x * gain + shift, mask), model(x, mask), rtol=1e-4, atol=1e-4)
        assert not torch.allclose(plain(x + shift, mask), plain(x, mask), atol=1e-3)  # the plain model hears it
        torch.testing.assert_close(model(x, mask)[1], model(x[1:2, :, :, :30])[0], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("encoder", ["kuo", "vgg", "resnet_small", "resnet18"])
def test_face_frame_encoder_loads_into_cnn_lstm(encoder: str) -> None:
    width = None if encoder == "resnet18" else 4
    torch.manual_seed(0)
    still = build_face_frame(encoder=encoder, in_channels=1, width=width)
    video = build_model("cnn_lstm", encoder=encoder, in_channels=1, width=width, hidden=8)
    ckpt = {"model_name": "face_frame", "state_dict": still.state_dict()}
    assert load_encoder_from(video, ckpt) == []
    for k, v in still.encoder.state_dict().items():
        torch.testing.assert_close(video.encoder.state_dict()[k], v)
    x = torch.randn(2, 1, 48, 48)
    still.eval(), video.eval()
    with torch.no_grad():
        torch.testing.assert_close(video.encoder(x), still.encoder(x))
    # a bare encoder state works too; another width is an error naming the shapes
    assert load_encoder_from(video, still.encoder.state_dict()) == []
    if encoder != "resnet18":
        with pytest.raises(MmferError, match="encoder shapes differ"):
            load_encoder_from(build_model("cnn_lstm", encoder=encoder, in_channels=1, width=8), ckpt)
    with pytest.raises(MmferError, match="no encoder parameters"):
        load_encoder_from(video, {"state_dict": {"foo.weight": torch.zeros(1)}})
    # another family: said by the checkpoint's own kwargs, or by the encoder keys themselves (was "no encoder
    # parameters", naming keys that are an encoder's)
    other = "vgg" if encoder != "vgg" else "resnet_small"
    with pytest.raises(MmferError, match=rf"checkpoint's encoder is '{other}', this model's '{encoder}'"):
        load_encoder_from(video, {"model_kwargs": {"encoder": other}, "state_dict": still.state_dict()})
    if encoder != "kuo":  # a run that left encoder at its default (kuo) records none: still told apart
        with pytest.raises(MmferError, match=rf"checkpoint's encoder is 'kuo', this model's '{encoder}'"):
            load_encoder_from(video, {"model_name": "face_frame", "model_kwargs": {}, "state_dict": still.state_dict()})
    stranger = build_face_frame(encoder="vgg" if encoder == "resnet_small" else "resnet_small", in_channels=1, width=4)
    with pytest.raises(MmferError, match=rf"are not this {encoder} encoder's .*same encoder"):
        load_encoder_from(video, {"state_dict": stranger.state_dict()})


def test_video3d_tiny() -> None:
    try:
        import pytorchvideo.models.resnet  # noqa: F401
    except ImportError as e:
        pytest.skip(f"pytorchvideo not importable ({e}); video3d is the optional extra mmfer[video3d]")
    x = torch.randn(2, 3, 4, 32, 32)
    mask = torch.tensor([[True, True, False, True], [True] * 4])
    for arch in ("r2plus1d", "x3d", "slow_r50"):
        torch.manual_seed(0)
        m = build_model("video3d", arch=arch, width=8, clip_len=4, input_size=32).eval()
        assert m.input_kind == "face_window"
        with torch.no_grad():
            out = m(x, mask)
            torch.testing.assert_close(out, m(_scramble(x, mask, 2), mask))
        assert out.shape == (2, 7) and torch.isfinite(out).all()
    with pytest.raises(MmferError, match="unknown arch"):
        build_model("video3d", arch="i3d")


@pytest.mark.parametrize("case", sorted(UNMASKED))
def test_unmasked_models_forward_and_refuse_other_sizes(case: str) -> None:
    kwargs, shape = UNMASKED[case]
    torch.manual_seed(0)
    model = build_model(case, num_classes=7, **kwargs).eval()
    out = model(torch.randn(shape))
    assert out.shape == (B, 7) and torch.isfinite(out).all() and model.input_kind in INPUT_KINDS
    with pytest.raises(MmferError, match="features"):
        model(torch.randn(B, shape[1] + 1))


@pytest.mark.parametrize("encoder", ["vgg", "kuo"])
def test_folding_batchnorm_keeps_the_outputs(encoder: str) -> None:
    from mmfer.models.common import fold_batchnorm

    torch.manual_seed(0)
    model = build_face_frame(encoder=encoder, width=8, in_channels=1)
    x = torch.rand(6, 1, 44, 44)
    model.train()
    for _ in range(3):  # running statistics that are not the identity
        model(torch.rand(8, 1, 44, 44) * 3 + 1)
    with pytest.raises(MmferError, match="training mode"):
        fold_batchnorm(model)
    model.eval()
    with torch.no_grad():
        before = model(x)
        n = fold_batchnorm(model)
        after = model(x)
    assert n == {"vgg": 10, "kuo": 6}[encoder]
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)


def test_folding_batchnorm_of_the_audio_cnn_keeps_padded_clips_exact() -> None:
    """The audio CNN's blocks name their conv/BatchNorm pairs, so predict folds them too; a padded clip still
    scores as it does alone (the mask is applied after the folded convolution as after the BatchNorm)."""
    from mmfer.models.audio_cnn import build_audio_cnn
    from mmfer.models.common import fold_batchnorm

    torch.manual_seed(0)
    model = build_audio_cnn(n_mels=16, width=4, utterance_norm="cmn")
    model.train()
    for _ in range(3):
        model(torch.randn(4, 1, 16, 40) * 2 + 1)
    model.eval()
    x = torch.randn(2, 1, 16, 50)
    mask = torch.ones(2, 50, dtype=torch.bool)
    mask[1, 31:] = False
    with torch.no_grad():
        before = model(x, mask)
        assert fold_batchnorm(model) == 8
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.to(memory_format=torch.channels_last)
        after = model(x, mask)
        alone = model(x[1:, :, :, :31], mask[1:, :31])
    assert not any(isinstance(m, torch.nn.BatchNorm2d) and m is not model.input_norm for m in model.modules())
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(alone, after[1:], rtol=1e-4, atol=1e-4)


def test_a_model_argument_of_the_wrong_kind_is_named():
    """`hidden: fast` failed deep in torch ("'<' not supported between str and int"), naming neither the key nor
    the model; a float where an int goes, and true where a number goes, are refused too."""
    from mmfer.models.registry import check_model_args

    for kwargs, message in (({"hidden": "fast"}, "argument 'hidden': expected int like its default"),
                            ({"hidden": 1.5}, "argument 'hidden': expected int"),
                            ({"hidden": True}, "argument 'hidden': expected int")):
        with pytest.raises(MmferError, match=message):
            check_model_args("landmark_brnn", kwargs)
    check_model_args("landmark_brnn", {"hidden": 64, "dropout": 1})  # an int where a float goes is a number


class _Tiny(torch.nn.Module):
    """A model of the user's own: log-mel in, seven logits out."""

    input_kind = "logmel"

    def __init__(self, *, outputs: int = 7, n_mels: int = 64) -> None:
        super().__init__()
        self.head = torch.nn.Linear(n_mels, outputs)

    def forward(self, x, mask=None):
        return self.head(x.mean(dim=-1).flatten(1)[:, : self.head.in_features])


def _build_tiny(*, outputs: int = 7, n_mels: int = 64) -> torch.nn.Module:
    return _Tiny(outputs=outputs, n_mels=n_mels)


def test_a_model_of_ones_own_is_registered_by_a_new_name_only(monkeypatch) -> None:
    """register_model adds a builder; a taken name is refused (a run of the built-in would stop loading) unless
    replace=True; a forward without mask= is said at build time, not mid-training."""
    from mmfer.models import registry

    monkeypatch.setattr(registry, "MODELS", dict(registry.MODELS))
    registry.register_model("tiny_logmel", _build_tiny)
    assert build_model("tiny_logmel", outputs=7).input_kind == "logmel"
    with pytest.raises(MmferError, match="'audio_cnn' is already a model .*replace=True"):
        registry.register_model("audio_cnn", _build_tiny)
    registry.register_model("audio_cnn", _build_tiny, replace=True)
    assert isinstance(build_model("audio_cnn"), _Tiny)

    class NoMask(_Tiny):
        def forward(self, x):  # noqa: D102 - the mistake under test
            return super().forward(x)

    registry.register_model("no_mask", lambda **kw: NoMask(**kw))
    with pytest.raises(MmferError, match=r"'no_mask': its forward must take forward\(x, mask=None\)"):
        build_model("no_mask")
    with pytest.raises(MmferError, match="mmfer --import MODULE"):
        build_model("not_registered")


def test_resnet_small_keeps_a_small_face_at_full_resolution_in_its_first_stage() -> None:
    """torchvision's ResNet-18 halves a 44-px face twice before its first block; resnet_small must not."""
    from mmfer.models.face_encoders import build_face_encoder

    enc = build_face_encoder(arch="resnet_small", in_channels=1, width=4).eval()
    x = torch.randn(2, 1, 44, 44)
    with torch.no_grad():
        first = enc.features[:2](enc.stem(x))
        deepest = enc.features(enc.stem(x))
        assert first.shape == (2, 4, 44, 44)
        assert deepest.shape == (2, 32, 6, 6)
        assert enc(x).shape == (2, enc.out_features) == (2, 32)
    assert build_face_encoder(arch="resnet_small", in_channels=1).out_features == 256  # width 32 by default
