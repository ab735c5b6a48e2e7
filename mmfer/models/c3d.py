"""C3D (Tran et al. 2015) on aligned face windows, and larger 3D CNNs from PyTorchVideo.

C3D is the classic EmotiW video branch: 3x3x3 convolutions learn short-range facial motion directly from
a window of aligned face crops. ``width`` scales every layer so the same layout trains on a CPU (width 8-16)
or matches the paper (width 64).
"""

from __future__ import annotations

import torch
from torch import nn

from mmfer.errors import MmferError
from mmfer.models.common import check_input, check_mask

INPUT_KIND = "face_window"


def _conv(cin: int, cout: int, batch_norm: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv3d(cin, cout, kernel_size=3, padding=1, bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm3d(cout))
    layers.append(nn.ReLU(inplace=True))
    return layers


class C3D(nn.Module):
    """8 conv layers, 5 pools, fc6/fc7 and a classifier; input (B, C, T, H, W), mask (B, T)."""

    input_kind = INPUT_KIND

    def __init__(
        self,
        *,
        num_classes: int,
        in_channels: int,
        width: int,
        clip_len: int,
        input_size: int,
        dropout: float,
        batch_norm: bool,
    ) -> None:
        super().__init__()
        w = width
        self.clip_len, self.input_size, self.in_channels = clip_len, input_size, in_channels
        # ceil_mode keeps short clips / small crops from pooling down to nothing.
        pool = lambda k: nn.MaxPool3d(kernel_size=k, stride=k, ceil_mode=True)  # noqa: E731
        self.features = nn.Sequential(
            *_conv(in_channels, w, batch_norm), pool((1, 2, 2)),  # conv1a, pool1 keeps early temporal detail
            *_conv(w, 2 * w, batch_norm), pool((2, 2, 2)),
            *_conv(2 * w, 4 * w, batch_norm), *_conv(4 * w, 4 * w, batch_norm), pool((2, 2, 2)),
            *_conv(4 * w, 8 * w, batch_norm), *_conv(8 * w, 8 * w, batch_norm), pool((2, 2, 2)),
            *_conv(8 * w, 8 * w, batch_norm), *_conv(8 * w, 8 * w, batch_norm), pool((2, 2, 2)),
        )
        # The paper's pool5 output at 16x112x112 is 1x4x4; adaptive pooling gives that size for any input.
        self.pool = nn.AdaptiveAvgPool3d((1, 4, 4))
        fc = 64 * w  # 4096 at width 64
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(8 * w * 16, fc),  # fc6
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(fc, fc),  # fc7
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
        )
        self.classifier = nn.Linear(fc, num_classes)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        check_input(x, 5, where="c3d", layout="(B, C, T, H, W)", channels=self.in_channels)
        mask = check_mask(mask, (x.shape[0], x.shape[2]), where="c3d")
        if mask is not None:
            # No-face frames are zeroed so whatever the cache holds there cannot reach the scores.
            x = x * mask[:, None, :, None, None].to(x.dtype)
        return self.classifier(self.head(self.pool(self.features(x))))


def build_c3d(
    *,
    num_classes: int = 7,
    in_channels: int = 3,
    width: int = 64,
    clip_len: int = 16,
    input_size: int = 112,
    dropout: float = 0.5,
    batch_norm: bool = True,
) -> nn.Module:
    """C3D with every width scaled by ``width``/64; ``batch_norm`` (not in the paper) lets it train from scratch."""
    if width < 1 or in_channels < 1 or num_classes < 1:
        raise MmferError(f"c3d: width, in_channels and num_classes must be >= 1, got {width}, {in_channels}, {num_classes}")
    if input_size < 16 or clip_len < 1:
        raise MmferError(f"c3d: input_size must be >= 16 and clip_len >= 1, got {input_size}, {clip_len}")
    return C3D(
        num_classes=num_classes,
        in_channels=in_channels,
        width=width,
        clip_len=clip_len,
        input_size=input_size,
        dropout=dropout,
        batch_norm=batch_norm,
    )


# ---------------------------------------------------------------- PyTorchVideo 3D CNNs (optional extra)
VIDEO3D_ARCHS = ("r2plus1d", "x3d", "slow_r50", "resnet3d")


class Video3D(nn.Module):
    """A PyTorchVideo backbone (its own head removed) + adaptive pooling + our classifier.

    Why our own head: PyTorchVideo heads pool with fixed kernels sized for 224-pixel Kinetics clips,
    which break on 64-112 pixel face crops.
    """

    input_kind = INPUT_KIND

    def __init__(self, backbone: nn.Module, features: int, *, num_classes: int, dropout: float, arch: str) -> None:
        super().__init__()
        self.arch = arch
        self.backbone = backbone
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(features, num_classes)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        check_input(x, 5, where=f"video3d/{self.arch}", layout="(B, C, T, H, W)")
        mask = check_mask(mask, (x.shape[0], x.shape[2]), where=f"video3d/{self.arch}")
        if mask is not None:
            x = x * mask[:, None, :, None, None].to(x.dtype)
        return self.classifier(self.dropout(self.pool(self.backbone(x)).flatten(1)))


def _import_pytorchvideo():
    try:
        import pytorchvideo.models.r2plus1d as r2plus1d
        import pytorchvideo.models.resnet as resnet
        import pytorchvideo.models.x3d as x3d
    except ImportError as e:
        raise MmferError(
            f"video3d needs pytorchvideo ({e}); install the optional extra: pip install 'mmfer[video3d]', "
            "or use the c3d model instead"
        ) from None
    return r2plus1d, resnet, x3d


def build_video3d(
    *,
    arch: str = "r2plus1d",
    num_classes: int = 7,
    in_channels: int = 3,
    clip_len: int = 16,
    input_size: int = 112,
    width: int = 64,
    depth: int = 50,
    dropout: float = 0.5,
) -> nn.Module:
    """A randomly initialised PyTorchVideo 3D CNN (never downloads weights).

    ``width`` is the stem width (64 = the published models; stages scale with it), ``depth`` the ResNet
    depth (50/101/152) for r2plus1d/slow_r50/resnet3d; for x3d ``width``/32 is its width factor (2.0 at 64)
    and ``depth`` is ignored (X3D-S depth factor 2.2).
    """
    if arch not in VIDEO3D_ARCHS:
        raise MmferError(f"video3d: unknown arch {arch!r}; choose one of {', '.join(VIDEO3D_ARCHS)}")
    if depth not in (50, 101, 152):
        raise MmferError(f"video3d: depth {depth} not supported; choose 50, 101 or 152")
    if width < 4 or clip_len < 1 or input_size < 16:
        raise MmferError(f"video3d: need width >= 4, clip_len >= 1, input_size >= 16; got {width}, {clip_len}, {input_size}")
    r2plus1d, resnet, x3d = _import_pytorchvideo()
    if arch == "r2plus1d":
        net = r2plus1d.create_r2plus1d(
            input_channel=in_channels, model_depth=depth, model_num_class=num_classes, stem_dim_out=width,
            head_pool_kernel_size=(1, 1, 1),
        )
    elif arch == "x3d":
        net = x3d.create_x3d(
            input_channel=in_channels, input_clip_length=clip_len, input_crop_size=input_size,
            model_num_class=num_classes, width_factor=width / 32.0, depth_factor=2.2, head_activation=None,
        )
    else:
        kernel = (1, 7, 7) if arch == "slow_r50" else (3, 7, 7)
        net = resnet.create_resnet(
            input_channel=in_channels, model_depth=depth, model_num_class=num_classes, stem_dim_out=width,
            stem_conv_kernel_size=kernel, head_pool_kernel_size=(1, 1, 1),
        )
    # Drop the Kinetics head; keep the stem and stages.
    backbone = nn.Sequential(*list(net.blocks)[:-1])
    if arch == "x3d":
        # X3D's head starts with a 1x1x1 conv + BN + ReLU expanding channels (conv5); keep it.
        head = net.blocks[-1]
        backbone.append(nn.Sequential(head.pool.pre_conv, head.pool.pre_norm, head.pool.pre_act))
    features = [m.num_features for m in backbone.modules() if isinstance(m, nn.BatchNorm3d)][-1]
    return Video3D(backbone, features, num_classes=num_classes, dropout=dropout, arch=arch)
