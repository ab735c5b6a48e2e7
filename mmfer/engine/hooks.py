"""The pieces of the training loop of ``mmfer.engine.train.fit`` as functions: the training loader, the state a
resumed run restores, one epoch's optimisation steps and the validation figures. A loop of one's own (another
schedule, another logger) reuses them instead of copying ``fit``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from mmfer.data.datasets import collate_for, seed_worker
from mmfer.data.speech_list import balanced_weights
from mmfer.engine.checkpoint import unwrap
from mmfer.engine.sampling import BalancedEpochSampler, EpochSampler, set_rng_state
from mmfer.engine.scoring import predict_clips
from mmfer.engine.steps import accuracy_uar, optimisation_step
from mmfer.errors import MmferError
from mmfer.progress import progress_bar
from mmfer.signals import start_iter


def train_loader(config: Any, train_ds: Any, *, kind: str, device: torch.device, distributed: bool = False,
                 rank: int = 0, world_size: int = 1, progress: bool = False) -> tuple[Any, Any, torch.Generator]:
    """(sampler, loader, generator) of the training items: ``sampler.set_epoch(e)`` and
    ``generator.manual_seed(...)`` before each epoch make it the same whether a run is resumed or not. The GPU
    recipe (data.device_images) keeps the images on the device, with no data loader; ``distributed`` processes
    take their share (DistributedSampler); data.balance corpus_class draws corpora and classes evenly."""
    dcfg = config.data
    generator = torch.Generator()
    if dcfg.device_images:  # the GPU recipe: images on the device, jittered there, no data loader
        from mmfer.engine.device_data import DeviceFaceBatches

        batches = DeviceFaceBatches(train_ds, device=device, batch_size=dcfg.batch_size, seed=config.seed,
                                    augment=config.augment, rank=rank, world_size=world_size, progress=progress)
        return batches, batches, generator
    if distributed:
        sampler: Any = torch.utils.data.distributed.DistributedSampler(train_ds, seed=config.seed, shuffle=True)
    elif dcfg.balance == "corpus_class":
        sampler = BalancedEpochSampler(balanced_weights(train_ds.records), seed=config.seed)
    else:
        sampler = EpochSampler(len(train_ds), seed=config.seed)
    loader = DataLoader(
        train_ds, batch_size=dcfg.batch_size, sampler=sampler, num_workers=dcfg.workers,
        collate_fn=collate_for(kind), worker_init_fn=seed_worker, drop_last=len(train_ds) > dcfg.batch_size,
        generator=generator, pin_memory=device.type == "cuda",
    )
    return sampler, loader, generator


def restore_state(ckpt: dict[str, Any], *, model: nn.Module, optimizer: Any, scheduler: Any, scaler: Any,
                  ema: Any = None, adversary: Any = None, where: str | Path = "last.pt") -> tuple[int, dict[str, Any]]:
    """Put a run's ``last.pt`` back (weights, optimiser, schedule, scaler, averaged weights, adversary, random
    state): the epochs after it then run exactly as an unstopped run's. Returns (epochs done, best so far)."""
    unwrap(model).load_state_dict(ckpt["state_dict"])
    if adversary is not None:
        if "adversary" not in ckpt:
            raise MmferError(f"{where}: holds no adversary; it was not trained with adversary.scale")
        adversary.load_state_dict(ckpt["adversary"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    if "scaler" in ckpt:
        scaler.load_state_dict(ckpt["scaler"])
    if ema is not None:
        if "ema" not in ckpt:
            raise MmferError(f"{where}: holds no averaged (EMA) weights; it was not trained with ema_decay")
        ema.module.load_state_dict(ckpt["ema"]["state_dict"])
        ema.n_averaged.fill_(int(ckpt["ema"]["n_averaged"]))
    set_rng_state(ckpt["rng"])
    return int(ckpt["epoch"]), dict(ckpt.get("best") or {})


def train_epoch(net: nn.Module, loader: Any, *, desc: str, device: torch.device, precision: str, criterion: Any,
                optimizer: Any, scheduler: Any, scaler: Any, grad_clip: float | None, frozen: Sequence[Any] = (),
                mixing: tuple[float, float] = (0.0, 0.0), teacher: Any = None, adversary: Any = None,
                ema: Any = None, model: nn.Module | None = None, clip_ids: Sequence[str] = (),
                where: str = "", show: bool = True, progress: bool = False) -> tuple[float, float, int]:
    """One epoch's optimisation steps over ``loader``: (mean loss, accuracy, items). A loss that is not finite
    stops it, naming the batch's clips (``clip_ids`` by item index); ``ema`` is updated from ``model`` after
    each step. ``show``: this process draws the bar (or logs a line a minute); other processes say nothing."""
    bar = (progress_bar(start_iter(loader), total=len(loader), desc=desc, unit="batch", enabled=progress,
                        leave=False) if show  # start_iter: a stop is never lost in a fork
           else tqdm(start_iter(loader), total=len(loader), disable=True))
    tot_loss, tot_correct, tot_n = 0.0, 0, 0
    for step, batch in enumerate(bar, 1):
        y, logits, loss = optimisation_step(net, batch, device=device, precision=precision, criterion=criterion,
                                            optimizer=optimizer, scaler=scaler, grad_clip=grad_clip, frozen=frozen,
                                            mixup=mixing[0], cutmix=mixing[1], teacher=teacher, adversary=adversary)
        if not torch.isfinite(loss.detach()):
            ids = [clip_ids[int(c)] for c in batch["clip"][:8]] if len(clip_ids) else []
            raise MmferError(
                f"{where}: {desc}, step {step}: the loss is {float(loss.detach())} (not finite), on a batch of "
                f"clips {', '.join(ids)}{' ...' if len(batch['clip']) > 8 else ''}; check those clips' inputs, or "
                "lower optim.lr")
        scheduler.step()
        if ema is not None:
            ema.update_parameters(model)
        n = y.shape[0]
        tot_loss += float(loss.detach()) * n
        tot_correct += int((logits.detach().argmax(1) == y).sum())
        tot_n += n
        bar.set_postfix(loss=f"{tot_loss / max(tot_n, 1):.3f}")
    return tot_loss / max(tot_n, 1), tot_correct / max(tot_n, 1), tot_n


def validate(model: nn.Module, val_ds: Any, labels: np.ndarray, *, device: torch.device, batch_size: int,
             workers: int = 0, amp: bool = False, unscored: np.ndarray | None = None, progress: bool = False
             ) -> tuple[float, float, float]:
    """(accuracy, mean class accuracy, loss) of ``model`` on the validation items; items with no label
    (``labels`` -1) count in none, ``unscored`` ones (no input for the model) count as wrong."""
    probs = predict_clips(model, val_ds, device=device, batch_size=batch_size, workers=workers, amp=amp,
                          progress=progress, desc="val")
    acc, uar = accuracy_uar(labels, probs, unscored=unscored)
    known = labels >= 0
    loss = float(-np.log(np.clip(probs[known, labels[known]], 1e-12, None)).mean()) if known.any() else float("nan")
    return acc, uar, loss
