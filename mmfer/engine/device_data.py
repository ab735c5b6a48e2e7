"""Face images held on the training device and augmented there: the GPU recipe's input, with no data loader.

Why: a 2-M-parameter face CNN on 44-px images runs thousands of images per millisecond-scale step on a data-centre
GPU, and a Python data loader that decodes and jitters each image on a CPU core cannot keep up. So every training
image is made into its model input once (``face_tensor``, exactly as the dataset and predict make it), the whole
set sits in device memory (25,836 FER2013 faces at 44 px: 100 MB in fp16), and each batch is jittered there with
batched tensor ops: flip, crop-and-zoom, rotation and shift as one affine resampling, brightness and contrast,
random erasing (the ``augment`` settings of ``augment_faces``; mixup/cutmix stay in the training step). It
yields the same batches a DataLoader over the dataset would (``x``, ``label``, ``clip``, ``mask``), so the
training loop, its checkpoints and the runs it writes are the same.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Iterator

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)


class DeviceFaceBatches:
    """Seeded, epoch-wise shuffled batches of a face_image dataset's training images, held on ``device``.

    Both the sampler and the loader of the training loop (``set_epoch`` and iteration). Under DDP each of
    ``world_size`` processes takes every ``world_size``-th image of the epoch's permutation.
    """

    def __init__(self, dataset: Any, *, device: torch.device, batch_size: int, seed: int, augment: Any,
                 rank: int = 0, world_size: int = 1, progress: bool = False) -> None:
        from mmfer.progress import progress_bar

        self.device, self.batch_size, self.seed = device, int(batch_size), int(seed)
        self.augment = augment if augment is not None and augment.enabled else None
        self.rank, self.world_size = int(rank), int(world_size)
        self.epoch = 0
        if self.augment is not None and getattr(self.augment, "video", 0):
            log.warning("data.device_images: augment.video (video-like degradation) is a CPU transform and is not "
                        "applied on the device; train on a crop tree that carries it (tools/make_video_crops.py)")
        # one pass of the dataset without augmentation: exactly the tensors evaluation and predict make
        aug = dataset.augment
        dataset.augment = None
        xs, ys, given = [], [], []
        try:
            steps = range(len(dataset))  # other DDP processes say nothing
            for i in (progress_bar(steps, desc="images to device", unit="image", enabled=progress, leave=False)
                      if self.rank == 0 else steps):
                item = dataset[i]
                xs.append(item["x"])
                ys.append(item["label"])
                if "teacher_probs" in item:  # distill.targets
                    given.append(item["teacher_probs"])
        finally:
            dataset.augment = aug
        self.x = torch.stack(xs).to(device=device, dtype=torch.float16 if device.type == "cuda" else torch.float32)
        self.y = torch.tensor(ys, dtype=torch.long, device=device)
        self.teacher_probs = torch.stack(given).to(device) if given else None
        log.info("%d training images on %s (%.0f MB)", len(ys), device, self.x.numel() * self.x.element_size() / 1e6)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _indices(self) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return torch.randperm(len(self.y), generator=g)[self.rank :: self.world_size]

    def __len__(self) -> int:
        n = math.ceil(len(self.y) / self.world_size)
        return max(1, n // self.batch_size) if n > self.batch_size else 1

    def __iter__(self) -> Iterator[dict[str, Any]]:
        idx = self._indices().to(self.device)
        gen = torch.Generator(device=self.device).manual_seed(self.seed * 7_919 + self.epoch)
        for b in range(len(self)):
            sel = idx[b * self.batch_size : (b + 1) * self.batch_size]
            x = self.x[sel].float()
            if self.augment is not None:
                x = augment_on_device(x, self.augment, gen)
            batch = {"x": x, "label": self.y[sel], "clip": sel, "mask": None}
            if self.teacher_probs is not None:
                batch["teacher_probs"] = self.teacher_probs[sel]
            yield batch


def augment_on_device(x: torch.Tensor, a: Any, gen: torch.Generator) -> torch.Tensor:
    """``augment_faces``'s jitter for a batch (B, C, H, W) on its device, drawn per image: flip, crop-and-zoom with
    rotation and shift (one bilinear resampling, borders reflected), contrast, brightness, random erasing, a
    covered lower face."""
    from mmfer.data.features import FACE_STD

    b, c, h, w = x.shape
    dev = x.device

    def u(lo: float, hi: float, n: int = b) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=gen, device=dev)

    if a.flip:
        flip = torch.rand(b, generator=gen, device=dev) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    lo, hi = a.crop_scale
    s = u(lo, hi)
    angle = u(-a.rotation, a.rotation) * math.pi / 180 if a.rotation > 0 else torch.zeros(b, device=dev)
    reach = (1 - s) / 2 + a.translate  # the crop centre's largest offset, share of the side
    dx, dy = u(-1, 1) * reach * 2, u(-1, 1) * reach * 2  # in grid units ([-1, 1] spans the side)
    cos, sin = torch.cos(angle) * s, torch.sin(angle) * s
    theta = torch.stack([torch.stack([cos, -sin, dx], 1), torch.stack([sin, cos, dy], 1)], 1)
    grid = F.affine_grid(theta, (b, c, h, w), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    if a.contrast > 0:
        k = u(1 - a.contrast, 1 + a.contrast)[:, None, None, None]
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * k + mean
    if a.brightness > 0:
        x = x + (u(-a.brightness, a.brightness) / float(FACE_STD))[:, None, None, None]
    if a.erasing > 0:
        erase = torch.rand(b, generator=gen, device=dev) < a.erasing
        area = u(0.02, 0.25) * h * w
        ratio = torch.exp(u(math.log(0.3), math.log(3.3)))
        eh = torch.clamp(torch.sqrt(area * ratio).round(), 1, h)
        ew = torch.clamp(torch.sqrt(area / ratio).round(), 1, w)
        y0 = (torch.rand(b, generator=gen, device=dev) * (h - eh + 1)).floor()
        x0 = (torch.rand(b, generator=gen, device=dev) * (w - ew + 1)).floor()
        rows = torch.arange(h, device=dev)[None, :, None]
        cols = torch.arange(w, device=dev)[None, None, :]
        box = ((rows >= y0[:, None, None]) & (rows < (y0 + eh)[:, None, None])
               & (cols >= x0[:, None, None]) & (cols < (x0 + ew)[:, None, None]) & erase[:, None, None])
        noise = torch.randn(x.shape, generator=gen, device=dev)
        x = torch.where(box[:, None], noise, x)
    if a.occlusion > 0:  # the lower 25-45% of the face in one grey level
        cover = torch.rand(b, generator=gen, device=dev) < a.occlusion
        top = ((1 - u(0.25, 0.45)) * h).round()
        band = (torch.arange(h, device=dev)[None, :, None] >= top[:, None, None]) & cover[:, None, None]
        x = torch.where(band[:, None], u(-1.5, 1.5)[:, None, None, None], x)
    return x

