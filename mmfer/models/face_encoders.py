"""2D face encoders shared by the single-image model (face_frame) and the frame-sequence model (cnn_lstm).

One module for both, so an encoder trained on FER2013 images loads unchanged into the video model
(two-stage fine-tuning). Every encoder accepts any input size from 48 to 112 pixels (adaptive pooling)
and exposes ``out_features``.
"""

from __future__ import annotations

import torch
from torch import nn

from mmfer.errors import MmferError

ENCODER_ARCHS = ("kuo", "resnet18", "resnet_small", "vgg")
DEFAULT_ARCH = "kuo"  # what face_frame and cnn_lstm build when a config names no encoder
DEFAULT_WIDTH = {"kuo": 32, "resnet18": 64, "resnet_small": 32, "vgg": 64}


def _block(cin: int, cout: int, convs: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(convs):
        layers += [nn.Conv2d(cin if i == 0 else cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
    layers.append(nn.MaxPool2d(2, ceil_mode=True))
    return nn.Sequential(*layers)


class KuoEncoder(nn.Module):
    """The compact CNN of Kuo et al. 2018 (CVPRW): three conv blocks with BN, ReLU, max-pool, then a small FC.

    Why: about half a million parameters at width 32, so it trains on CPU and on small corpora without
    overfitting as fast as a ResNet; a 3x3 spatial grid before the FC keeps where on the face things happen.
    """

    def __init__(self, *, in_channels: int, width: int) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(_block(in_channels, w, 2), _block(w, 2 * w, 2), _block(2 * w, 4 * w, 2))
        self.pool = nn.AdaptiveAvgPool2d(3)
        self.out_features = 8 * w
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(4 * w * 9, self.out_features), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.features(x)))


class VGGEncoder(nn.Module):
    """VGG-style conv blocks (64-128-256-512 at width 64), global average pooling."""

    def __init__(self, *, in_channels: int, width: int) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            _block(in_channels, w, 2), _block(w, 2 * w, 2), _block(2 * w, 4 * w, 3), _block(4 * w, 8 * w, 3)
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.out_features = 8 * w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(x)).flatten(1)


class _BasicBlock(nn.Module):
    """ResNet's basic block: two 3x3 convolutions with BN, added to the input (a 1x1 projection where the shape changes)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
        )
        self.skip = (nn.Identity() if stride == 1 and cin == cout
                     else nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.skip(x))


class SmallResNetEncoder(nn.Module):
    """ResNet-18's blocks (two per stage, w-2w-4w-8w channels) for faces of 44-64 px: a 3x3 stride-1 stem and no
    max-pool, as He et al. 2016 sized ResNets for 32-px images, global average pooling.

    Why: torchvision's ResNet-18 shrinks a 44-px face to 11 px before its first block; this one keeps the full
    resolution there. At width 32 it costs about twice ``vgg`` width 32 per image (2.8 M parameters). Trained on
    the video crops it read below the VGG-style nets and did not help their ensemble (docs/MODEL_CARD.md).
    """

    def __init__(self, *, in_channels: int, width: int) -> None:
        super().__init__()
        w = width
        self.stem = nn.Sequential(nn.Conv2d(in_channels, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True))
        stages, cin = [], w
        for i, cout in enumerate((w, 2 * w, 4 * w, 8 * w)):
            stages += [_BasicBlock(cin, cout, 1 if i == 0 else 2), _BasicBlock(cout, cout, 1)]
            cin = cout
        self.features = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.out_features = 8 * w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(self.stem(x))).flatten(1)


class ResNet18Encoder(nn.Module):
    """torchvision ResNet-18 (random init, never downloads) without its classifier; 1- or 3-channel stem."""

    def __init__(self, *, in_channels: int) -> None:
        super().__init__()
        from torchvision.models import resnet18

        net = resnet18(weights=None)
        if in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        net.fc = nn.Identity()
        self.net = net
        self.out_features = 512

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def build_face_encoder(*, arch: str = DEFAULT_ARCH, in_channels: int = 3, width: int | None = None) -> nn.Module:
    """A face-image encoder (B, C, H, W) -> (B, out_features); ``width`` None = the arch's default."""
    if arch not in ENCODER_ARCHS:
        raise MmferError(f"face encoder: unknown arch {arch!r}; choose one of {', '.join(ENCODER_ARCHS)}")
    if in_channels not in (1, 3):
        raise MmferError(f"face encoder: in_channels must be 1 (grayscale) or 3 (RGB), got {in_channels}")
    w = DEFAULT_WIDTH[arch] if width is None else int(width)
    if w < 1:
        raise MmferError(f"face encoder: width must be >= 1, got {w}")
    if arch == "kuo":
        enc: nn.Module = KuoEncoder(in_channels=in_channels, width=w)
    elif arch == "vgg":
        enc = VGGEncoder(in_channels=in_channels, width=w)
    elif arch == "resnet_small":
        enc = SmallResNetEncoder(in_channels=in_channels, width=w)
    else:
        if w != 64:
            raise MmferError(f"face encoder: resnet18 has a fixed width of 64, got width={w}; leave width unset")
        enc = ResNet18Encoder(in_channels=in_channels)
    enc.arch, enc.in_channels = arch, in_channels
    return enc
