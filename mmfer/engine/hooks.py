"""The pieces of the training loop of ``mmfer.engine.train.fit`` as functions: the training loader, the state a
resumed run restores, each epoch's draws, one epoch's optimisation steps, the validation figures and the files
an epoch leaves (``last.pt``, ``best.pt``, the logs). A loop of one's own (another loss, schedule or logger)
reuses them instead of copying ``fit``: see docs/training.md, "A training loop of your own"."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from mmfer.data.datasets import collate_for, seed_worker
from mmfer.data.speech_list import balanced_weights
from mmfer.engine.checkpoint import clip_sets, save_checkpoint, unwrap
from mmfer.engine.sampling import BalancedEpochSampler, EpochSampler, rng_state, set_rng_state
from mmfer.engine.scoring import predict_clips
from mmfer.engine.steps import accuracy_uar, optimisation_step
from mmfer.errors import MmferError
from mmfer.progress import progress_bar
from mmfer.signals import start_iter


def train_loader(config: Any, train_ds: Any, *, kind: str | None = None, device: torch.device | str = "cpu",
                 distributed: bool = False, rank: int = 0, world_size: int = 1,
                 progress: bool = False) -> tuple[Any, Any, torch.Generator]:
    """(sampler, loader, generator) of the training items: ``sampler.set_epoch(e)`` and
    ``generator.manual_seed(...)`` before each epoch make it the same whether a run is resumed or not. The GPU
    recipe (data.device_images) keeps the images on the device, with no data loader; ``distributed`` processes
    take their share (DistributedSampler); data.balance corpus_class draws corpora and classes evenly. ``kind``
    (the model's input kind) defaults to the dataset's; one the dataset does not give is an error."""
    from mmfer.data.kinds import KINDS

    own = getattr(train_ds, "kind", "") or None
    kind = kind or own
    if kind not in KINDS or (own and kind != own):
        raise MmferError(f"train_loader: kind {kind!r}, but the dataset ({type(train_ds).__name__}) gives "
                         f"{own or 'no kind'}; the kinds: {', '.join(KINDS)}")
    device = _device(device)
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


LOG_FIELDS = (
    "epoch", "lr", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_uar", "best", "seconds",
)
STAGED_BEST = "best.pt.staged"  # an epoch's best weights until its last.pt is written
PRECISIONS = ("fp32", "bf16", "fp16")  # what mmfer.engine.device.training_precision answers


def _device(device: Any) -> torch.device:
    return device if isinstance(device, torch.device) else torch.device(device)


def start_epoch_draws(epoch: int, *, seed: int, train_ds: Any, sampler: Any, generator: torch.Generator) -> None:
    """Before epoch ``epoch`` (from 0): the dataset's augmentation draws, the sampler's order and the loader
    workers' seeds of that epoch, so a resumed run's epochs are an unstopped run's (without it every epoch
    would repeat epoch 0's augmentation)."""
    if hasattr(train_ds, "set_epoch"):
        train_ds.set_epoch(epoch)
    sampler.set_epoch(epoch)
    generator.manual_seed(seed * 100_003 + epoch)  # worker seeds depend on the epoch only


def restore_state(ckpt: dict[str, Any], *, model: nn.Module, optimizer: Any, scheduler: Any, scaler: Any,
                  ema: Any = None, adversary: Any = None, where: str | Path = "last.pt") -> tuple[int, dict[str, Any]]:
    """Put a run's ``last.pt`` back (weights, optimiser, schedule, scaler, averaged weights, adversary, random
    state): the epochs after it then run exactly as an unstopped run's. Returns (epochs done, best so far)."""
    if not ckpt.get("optimizer") or not ckpt.get("rng"):
        raise MmferError(f"{where}: holds the weights only (a best.pt?), not the state training goes on from; "
                         "resume from the run's last.pt")
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
                where: str = "", show: bool = True, progress: bool = False,
                on_step: Any = None) -> tuple[float, float, int]:
    """One epoch's optimisation steps over ``loader``: (mean loss, accuracy, items). A loss that is not finite
    stops it, naming the batch's clips (``clip_ids`` by item index); ``ema`` is updated from ``model`` after
    each step; the schedule steps once per batch (so a schedule counts batches, not epochs). ``net`` is put in
    training mode (``validate`` leaves a model in evaluation mode). ``criterion(logits, y, teacher_probs=...)``, with
    the batch's allowed classes as a third argument where the loss masks absent ones (``losses.MaskedCrossEntropy``).
    ``show``: this process draws the bar (or logs a line a minute); other processes say nothing. ``on_step(step,
    loss, lr)``, if given, is called after each step (step from 1 within the epoch): a logger's hook."""
    device = _device(device)
    if precision not in PRECISIONS:  # "float32" or "bfloat16" trained in fp32 without a word
        raise MmferError(f"train_epoch: precision {precision!r}; expected one of {', '.join(PRECISIONS)} "
                         "(training_pieces gives the one amp means on this device)")
    net.train()
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
            clips = (f", on a batch of clips {', '.join(ids)}{' ...' if len(batch['clip']) > 8 else ''}; check those "
                     "clips' inputs, or lower optim.lr" if ids else "; lower optim.lr, or check the batch's inputs")
            raise MmferError(f"{where + ': ' if where else ''}{desc}, step {step}: the loss is "
                             f"{float(loss.detach())} (not finite){clips}")
        scheduler.step()
        if ema is not None:
            ema.update_parameters(model)
        if on_step is not None:
            on_step(step, float(loss.detach()), optimizer.param_groups[0]["lr"])
        n = y.shape[0]
        tot_loss += float(loss.detach()) * n
        tot_correct += int((logits.detach().argmax(1) == y).sum())
        tot_n += n
        bar.set_postfix(loss=f"{tot_loss / max(tot_n, 1):.3f}")
    if tot_n == 0:  # an epoch that learnt nothing is never a result
        raise MmferError(f"{where + ': ' if where else ''}{desc} ran no optimisation step: the loader gave no batch "
                         "(fewer training items than data.batch_size, whose last partial batch is dropped?); lower "
                         "data.batch_size")
    return tot_loss / max(tot_n, 1), tot_correct / max(tot_n, 1), tot_n


def validate(model: nn.Module, val_ds: Any, labels: np.ndarray, *, device: torch.device, batch_size: int,
             workers: int = 0, amp: bool = False, unscored: np.ndarray | None = None, progress: bool = False
             ) -> tuple[float, float, float]:
    """(accuracy, mean class accuracy, loss) of ``model`` on the validation items; items with no label
    (``labels`` -1) count in none, ``unscored`` ones (no input for the model) count as wrong. The model's mode
    (training or evaluation) is as it was after."""
    labels = np.asarray(labels, dtype=np.int64)
    was_training = model.training
    try:
        probs = predict_clips(model, val_ds, device=_device(device), batch_size=batch_size, workers=workers, amp=amp,
                              progress=progress, desc="val")
    finally:
        model.train(was_training)
    acc, uar = accuracy_uar(labels, probs, unscored=unscored)
    known = labels >= 0
    loss = float(-np.log(np.clip(probs[known, labels[known]], 1e-12, None)).mean()) if known.any() else float("nan")
    return acc, uar, loss


def write_logs(out: Path, rows: list[dict[str, Any]]) -> None:
    """``log.jsonl`` and ``log.csv`` of a run's epoch rows (``LOG_FIELDS``, then a run's own columns)."""
    import csv

    from mmfer.outputs import atomic_write, write_file

    # NaN (no labelled Val clip) is not JSON: write null / an empty CSV cell instead
    rows = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in rows]
    write_file(out / "log.jsonl", "".join(json.dumps(r) + "\n" for r in rows))  # never through a link
    with atomic_write(out / "log.csv", "w", newline="") as f:
        extra = sorted({k for r in rows for k in r} - set(LOG_FIELDS))  # a run's own columns (adversary_accuracy)
        w = csv.DictWriter(f, fieldnames=[*LOG_FIELDS, *extra], extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def save_state(run: Any, run_data: Any, *, model: nn.Module, eval_model: nn.Module, epoch: int, optimizer: Any,
               scheduler: Any, scaler: Any, precision: str, rows: list[dict[str, Any]], best: dict[str, Any],
               improved: bool, ema: Any = None, adversary: Any = None) -> None:
    """The files an epoch leaves in ``run.out`` (``run``, ``run_data``: from ``prepare_run``/``prepare_data``):
    ``last.pt`` (everything ``restore_state`` puts back), the logs of ``rows`` and, where ``improved``,
    ``best.pt`` (``eval_model``'s weights). Both checkpoints record the run's clips, so ``mmfer scores`` re-draws
    its held-out ones. ``last.pt`` is the commit point: the best weights are staged first and renamed after it,
    so a stop anywhere leaves one epoch's files."""
    config, out = run.config, Path(run.out)
    state: dict[str, Any] = dict(
        model_name=config.model.name, model_kwargs=dict(config.model.kwargs), preprocess=run_data.source.preprocess,
        config=run.plain_config, clips=clip_sets(run_data.train_records, run_data.val_records),
        distill_targets_sha256=getattr(run_data.train_ds, "teacher_digest", None), model=model, epoch=epoch,
        optimizer=optimizer, scheduler=scheduler, scaler=scaler if precision == "fp16" else None, rng=rng_state(),
        metrics=rows[-1] if rows else {}, best=best, extra={})
    if ema is not None:
        state["extra"]["ema"] = {"state_dict": {k: v.detach().cpu() for k, v in ema.module.state_dict().items()},
                                 "n_averaged": int(ema.n_averaged)}
    if adversary is not None:
        state["extra"]["adversary"] = {k: v.detach().cpu() for k, v in adversary.state_dict().items()}
    if improved:
        save_checkpoint(out / STAGED_BEST, **{**state, "model": eval_model, "optimizer": None, "scheduler": None,
                                              "scaler": None, "rng": None, "extra": None})
    write_logs(out, rows)
    save_checkpoint(out / "last.pt", **state)
    if improved:
        os.replace(out / STAGED_BEST, out / "best.pt")
