"""Per-clip class scores of a trained branch: the CSVs that fusion consumes.

Every clip of the split in the manifest gets a row, in manifest order: clips the branch cannot see
(failed preprocessing, no face, no audio) get uniform scores, so all branches' CSVs share the same clips.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from mmfer.progress import progress_bar
from mmfer.signals import start_iter
from mmfer.data.datasets import CacheDataset, build_dataset, collate_for, seed_worker
from mmfer.data.sources import file_source, source_records
from mmfer.engine.checkpoint import (check_cache_compatible, load_checkpoint, model_from_checkpoint, resolve_checkpoint,
                                    warn_if_unfinished, warn_learnt_from)
from mmfer.engine.config import config_from_dict
# resolve_device and the precision helpers live in mmfer.engine.device; these names stay importable here
from mmfer.engine.device import autocast, cpu_has_amx, cpu_has_native_bf16, resolve_device, training_precision  # noqa: F401
from mmfer.errors import MmferError
from mmfer.labels import NUM_CLASSES
from mmfer.scores import uniform_scores, write_scores

log = logging.getLogger(__name__)


@torch.no_grad()
def predict_clips(
    model: nn.Module,
    dataset: CacheDataset,
    *,
    device: torch.device,
    batch_size: int = 16,
    workers: int = 0,
    amp: bool = False,
    progress: bool = True,
    desc: str = "score",
) -> np.ndarray:
    """Clip-level probabilities (len(dataset.records), 7): the mean of item probabilities per clip."""
    if len(dataset) == 0:
        return np.zeros((len(dataset.records), NUM_CLASSES), dtype=np.float64)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=collate_for(dataset.kind),
        generator=torch.Generator().manual_seed(0),
        worker_init_fn=seed_worker,  # also: a stop sent to the process group ends the command as Ctrl-C does
    )
    return predict_batches(model, progress_bar(start_iter(loader), total=len(loader), desc=desc, unit="batch",
                                               enabled=progress, leave=False),
                           clips=len(dataset.records), device=device, amp=amp)


@torch.no_grad()
def predict_batches(model: nn.Module, batches: Iterable[dict[str, Any]], *, clips: int, device: torch.device,
                    amp: bool = False) -> np.ndarray:
    """``predict_clips`` over batches already collated: several models with the same inputs (the folds of one
    branch) share one pass of feature extraction."""
    model.eval()
    sums = np.zeros((clips, NUM_CLASSES), dtype=np.float64)
    counts = np.zeros(clips, dtype=np.int64)
    for batch in batches:
        x = batch["x"].to(device)
        mask = batch["mask"].to(device) if batch["mask"] is not None else None
        with autocast(device, amp):
            logits = model(x, mask=mask)
        p = torch.softmax(logits.float(), dim=1).cpu().numpy().astype(np.float64)
        clips = batch["clip"].numpy()
        np.add.at(sums, clips, p)
        np.add.at(counts, clips, 1)
    out = sums / np.maximum(counts, 1)[:, None]
    out[counts == 0] = 1.0 / NUM_CLASSES
    return out


def split_scores(
    model: nn.Module,
    ckpt: dict[str, Any],
    *,
    config: Any,
    data: str | Path,
    split: str,
    device: torch.device,
    records: list | None = None,
    progress: bool = True,
    desc: str | None = None,
) -> tuple[list[str], list[str | None], np.ndarray]:
    """Scores for every clip in ``records`` (default: all of the split), uniform where the branch sees nothing.

    The cache splits the records come from must be preprocessed like the checkpoint's training cache.
    """
    kind = model.input_kind
    sample_rate = 16000
    if not file_source(data, kind):
        for source in sorted({r.split for r in records} if records is not None else {split}):
            sample_rate = check_cache_compatible(ckpt, data, source, kind=kind).sample_rate
    records = list(records) if records is not None else source_records(data, split, kind)
    ds = build_dataset(kind, cache=data, records=records, train=False, data=config.data, seed=config.seed,
                       sample_rate=sample_rate)
    if ds.skipped:
        log.info("%s: %d of %d clips scored uniform (%s)", split, len(ds.skipped), len(records), ds.describe_skipped())
    probs = predict_clips(
        model, ds, device=device, batch_size=config.data.eval_batch_size or config.data.batch_size,
        workers=config.data.workers, amp=config.amp, progress=progress, desc=desc or f"score {split}",
    )
    by_id = dict(zip(ds.clip_ids, probs))
    uniform = uniform_scores(1)[0]
    all_probs = np.stack([by_id.get(r.clip_id, uniform) for r in records]) if records else uniform_scores(0)
    return [r.clip_id for r in records], [r.label for r in records], all_probs


def _fold_val_records(info: dict[str, Any], config: Any, data: str | Path, kind: str) -> list:
    """The clips a fold run validated on (``fold.json``: its speakers or corpus), from the pooled splits of
    ``data`` as training pooled them; a count unlike the run's says the data is not what it trained on."""
    from mmfer.data.sources import pooled_records
    from mmfer.data.splits import fold_records

    pooled = pooled_records(data, kind, splits=(config.data.train_split, config.data.val_split))
    records = fold_records(pooled, [info["speakers"]], 0, by=info.get("by", "speaker"))[1]
    log.info("%s: scoring fold %s's held-out %s %s (%d clips)", data, info.get("index"),
             "corpus" if info.get("by") == "corpus" else "speakers", ", ".join(info["speakers"]), len(records))
    if info.get("val_clips") is not None and info["val_clips"] != len(records):
        log.warning("%s: the fold validated on %d clips of these speakers and this data holds %d: is it the data "
                    "the run was trained on?", data, info["val_clips"], len(records))
    return records


def score_split(
    run_or_checkpoint: str | Path,
    *,
    data: str | Path,
    split: str,
    out: str | Path | None = None,
    device: str | None = None,
    views: int | None = None,
    progress: bool = True,
) -> Path:
    """Write the score CSV of a trained run (its best.pt) or checkpoint on one split of a cache.

    The cache must have been preprocessed with the run's settings (else an error naming the difference);
    a face_image run (e.g. FER2013) scores an image folder tree instead. When the source has no such split
    and the run held out part of Train as its Val, the same held-out clips are scored (same seed and
    fraction), so a held-out figure can be re-measured, e.g. with ``views=10`` (ten-crop) for face images.
    Default output: ``RUN/scores_<split>.csv`` (next to the checkpoint).
    """
    import dataclasses

    from mmfer.data.sources import source_splits
    from mmfer.data.splits import holdout_seed
    from mmfer.engine.checkpoint import run_holdout

    from mmfer.outputs import check_output_file

    from mmfer.data.index import split_name

    split = split_name(split, where="--split")  # "val" is Val, as preprocess --splits reads it
    ckpt_path = resolve_checkpoint(run_or_checkpoint)
    own = out is None  # the run's own score file, which `mmfer fuse` reads
    out = Path(out) if out is not None else ckpt_path.parent / f"scores_{split}.csv"
    check_output_file(out, option="--out", inputs=[ckpt_path, data])  # before any scoring
    ckpt = load_checkpoint(ckpt_path)
    config = config_from_dict(ckpt["config"], where=f"{ckpt_path}: config")
    warn_if_unfinished(ckpt_path, config.optim.epochs, use="scores")
    if views is not None:
        config = dataclasses.replace(config, data=dataclasses.replace(config.data, eval_views=int(views)))
    preferred = config.device
    if device is None and preferred.startswith("cuda") and not torch.cuda.is_available():
        log.warning("%s: trained with device %s; CUDA is not available here, so it is scored on the CPU",
                    ckpt_path, preferred)  # a GPU recipe's run loads on a CPU like any other
        preferred = "cpu"
    dev = resolve_device(device, preferred)
    model = model_from_checkpoint(ckpt).to(dev)
    if views is not None and model.input_kind != "face_image":
        log.warning("--views %s: test-time views are for face-image models; %s reads %s input and scores it as it "
                    "is", views, ckpt_path, model.input_kind)
    records = None
    fold_json = ckpt_path.parent / "fold.json"
    if split == config.data.val_split and fold_json.is_file():  # a fold's Val is its held-out speakers or corpus
        records = _fold_val_records(json.loads(fold_json.read_text(encoding="utf-8")), config, data, model.input_kind)
    elif split == config.data.val_split and split not in source_splits(data, model.input_kind):
        train_records = source_records(data, config.data.train_split, model.input_kind)
        records = run_holdout(train_records, fraction=config.data.holdout_fraction, seed=holdout_seed(config),
                              ckpt=ckpt)[1]
        log.info("%s: no %s split; scoring the run's held-out %d clips of %s", data, split, len(records),
                 config.data.train_split)
    records = records if records is not None else source_records(data, split, model.input_kind)  # listed once
    if own and out.is_file():
        _keep_own_scores(out, records)
    warn_learnt_from(ckpt_path.parent, records, log=log)
    run = ckpt_path.parent  # the bar names what it scores: several runs' bars (a folds folder's) tell apart
    who = f"{run.parent.name}/{run.name}" if fold_json.is_file() else run.name
    clip_ids, labels, probs = split_scores(model, ckpt, config=config, data=data, split=split, device=dev,
                                           records=records, progress=progress, desc=f"score {split} ({who})")
    return write_scores(out, clip_ids, labels, probs)


def _keep_own_scores(path: Path, records: list) -> None:
    """A run's own ``scores_<split>.csv`` is rewritten only with scores of the same clips: scoring other data
    into it replaced the scores `mmfer fuse` reads, silently (a helper's Val of 6 clips became another of 2)."""
    from mmfer.scores import read_scores

    try:
        before = set(read_scores(path).clip_ids)
    except MmferError:  # not a score file any more: nothing of the run's to keep
        return
    now = {r.clip_id for r in records}
    if before != now:
        raise MmferError(f"{path} holds the run's scores of {len(before)} clips, {len(before - now)} of them not among "
                         f"the {len(now)} scored now (`mmfer fuse` reads that file); give --out FILE to write these "
                         "scores elsewhere")
