"""One training loop for every branch: the model's ``input_kind`` picks the dataset, the config does the rest.

A run directory holds ``last.pt`` (every epoch, with optimizer/scheduler/RNG states, so ``resume`` continues
exactly), ``best.pt`` (best Val uar or accuracy), ``log.jsonl`` + ``log.csv`` (one row per epoch),
``config.yaml`` and, at the end, ``scores_Val.csv`` / ``scores_Test.csv`` from the best checkpoint.
Launched by torchrun (``WORLD_SIZE`` > 1) it trains with DistributedDataParallel; rank 0 writes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import yaml
from torch import nn

from mmfer.data.cache import ClipRecord, PreprocessSettings, cache_settings
from mmfer.data.datasets import (
    DATASETS,
    build_dataset,
    file_source,
    source_records,
    source_splits,
)
from mmfer.data.index import check_out_not_read_as_data
from mmfer.data.speech_list import check_classes, class_masks, classes_by_corpus, is_speech_list
from mmfer.data.splits import (
    corpus_folds,
    corpus_records,
    fold_records,
    holdout_seed,
    holdout_split,
    labels_digest,
    speaker_folds,
    speaker_of,
)
from mmfer.engine.checks import check_consistency, check_val_and_classes, config_differences
from mmfer.engine.checkpoint import (
    check_cache_compatible,
    check_resume_clips,
    clip_sets,
    load_checkpoint,
    load_encoder,
    run_holdout,
    unwrap,
    warn_learnt_from,
    write_run_clips,
)
from mmfer.engine.config import TrainConfig, config_from_dict, config_to_plain, load_train_config
from mmfer.engine.device import precision_note, resolve_device
from mmfer.engine.provenance import record_session
from mmfer.engine.hooks import (  # noqa: F401 (LOG_FIELDS: importable here as before)
    LOG_FIELDS, STAGED_BEST, restore_state, save_state, start_epoch_draws, train_epoch, train_loader, validate,
)
from mmfer.engine.ema import ema_model, ema_step_decay  # noqa: F401 (ema_step_decay: importable here as before)
# the pieces that moved to sampling.py and steps.py stay importable from here
from mmfer.engine.sampling import BalancedEpochSampler, EpochSampler, rng_state, seed_everything, set_rng_state  # noqa: F401
from mmfer.engine.scoring import split_scores
from mmfer.engine.timing import time_left
from mmfer.engine.steps import (  # noqa: F401
    accuracy_uar, class_weights, lr_factor, optimisation_step, training_pieces, unscored_labels,
)
from mmfer.errors import MmferError
from mmfer.labels import EMOTIONS
from mmfer.outputs import check_output_dir
from mmfer.scores import write_scores

log = logging.getLogger(__name__)

@dataclasses.dataclass
class _Dist:
    world_size: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> "_Dist":
        ws = int(os.environ.get("WORLD_SIZE", "1"))
        return cls(ws, int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")))

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()


def _tensorboard(out: Path):
    """A TensorBoard writer into RUN/tensorboard when the optional ``tensorboard`` package is installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    writer = SummaryWriter(log_dir=str(out / "tensorboard"))
    log.info("TensorBoard curves in %s (open them with: tensorboard --logdir %s)", out / "tensorboard", out)
    return writer


def _read_log(out: Path, upto_epoch: int) -> list[dict[str, Any]]:
    p = out / "log.jsonl"
    if not p.is_file():
        return []
    rows = []
    for line in p.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if row.get("epoch", 0) <= upto_epoch:
            rows.append(row)
    return rows


# ---------------------------------------------------------------- the run, in stages
@dataclasses.dataclass
class Run:
    """A run being trained: what ``train``'s stages (``prepare_run``, ``prepare_data``, ``fit``, ``finish``)
    hand on to each other."""

    config: TrainConfig
    data: Path
    out: Path
    plain_config: dict[str, Any]
    dist: _Dist
    own_group: bool  # this run started the process group (torchrun), so it ends it
    dev: torch.device
    use_amp: bool
    ckpt: dict[str, Any] | None  # last.pt when resuming
    model: nn.Module
    kind: str

    @property
    def last_path(self) -> Path:
        return self.out / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.out / "best.pt"


class DataSource(NamedTuple):
    """Where a model of some input kind reads its clips: ``files`` "image" / "audio" for a folder tree or list
    of files (else None: a cache, whose ``settings`` are given), the audio sample rate, and the preprocessing
    record a checkpoint keeps."""

    files: str | None
    settings: PreprocessSettings | None
    sample_rate: int
    preprocess: dict[str, Any]


@dataclasses.dataclass
class RunData:
    """The clips and datasets of a run (``prepare_data``)."""

    source: DataSource
    train_records: list[ClipRecord]
    val_records: list[ClipRecord]
    holdout: bool  # Val is a held-out part of Train (no Val split, or a fold)
    fold_info: dict[str, Any] | None
    train_ds: Any
    val_ds: Any


def build_run_model(config: TrainConfig) -> tuple[nn.Module, str]:
    """The config's model, built after seeding, and its input kind, which decides the data source (a cache, or
    a folder tree of images for face_image); a kind no dataset reads is an error."""
    from mmfer.models.registry import build_model

    seed_everything(config.seed)
    model = build_model(config.model.name, **dict(config.model.kwargs))
    kind = getattr(model, "input_kind", None)
    if kind not in DATASETS:
        raise MmferError(f"model {config.model.name!r} eats {kind!r} input, which `mmfer train` cannot feed "
                         f"(known: {', '.join(DATASETS)})")
    return model, kind


def data_source(data: str | Path, kind: str, split: str) -> DataSource:
    """What ``data`` is for a model of ``kind`` (see :class:`DataSource`); ``split`` names the cache split whose
    settings count."""
    files = file_source(data, kind)
    settings = None if files else cache_settings(data, split)
    sample_rate = settings.sample_rate if settings else 16000
    preprocess = {"source": f"{files}_folder", "sample_rate": sample_rate} if files else settings.to_dict()
    return DataSource(files, settings, sample_rate, preprocess)


def make_dataset(config: TrainConfig, *, data: str | Path, kind: str, records: list[ClipRecord], train: bool,
                 sample_rate: int):
    """The dataset of ``records`` as a run of ``config`` reads them: augmented when ``train``."""
    return build_dataset(kind, cache=data, records=records, train=train, data=config.data,
                         augment=config.augment if train else None, seed=config.seed, sample_rate=sample_rate)


def train(
    config: TrainConfig | str | Path,
    *,
    data: str | Path,
    out: str | Path,
    epochs: int | None = None,
    resume: bool = False,
    device: str | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    fold: tuple[int, int] | None = None,
    fold_by: str = "speaker",
    folds_within: str | None = None,
    seed: int | None = None,
    fold_within: str | None = None,
) -> dict[str, Any]:
    """Train one branch (``config``, or a YAML file's path) on a cache; returns the best Val metrics and paths.

    ``epochs`` overrides ``config.optim.epochs`` and ``seed`` the config's seed (``--seed``: ensemble members);
    ``resume`` continues ``out/last.pt`` exactly (same config required, except the number of epochs);
    ``stop_after`` ends after that many epochs while the schedule still plans for all of them (an interruption on
    purpose, e.g. to test resume). ``fold`` (i, k) pools
    the Train and Val clips and validates on the i-th of k speaker-disjoint folds (``mmfer.data.splits``);
    with ``fold_by="corpus"`` fold i holds out the i-th corpus of a speech list (leave-one-corpus-out).
    ``folds_within`` (``--folds-within``: a corpus of the list) deals only that corpus's speakers to the k folds;
    the other corpora's clips are in every fold's training and never validated on (``fold_within`` is its old name).
    """
    from mmfer.compat import renamed_argument

    folds_within = renamed_argument(folds_within, fold_within, function="train", new="folds_within",
                                    old="fold_within", option="--folds-within")
    config = load_train_config(config) if isinstance(config, (str, Path)) else config
    if seed is not None:
        config = dataclasses.replace(config, seed=seed)
    run = prepare_run(config, data=data, out=out, epochs=epochs, resume=resume, device=device)
    if (config.distill.teachers or config.distill.targets) and fold is None:  # (train_folds: every fold's, first)
        from mmfer.engine.distill import check_teachers_exist

        check_teachers_exist(config.distill, folds=None)
    run_data = prepare_data(run, fold=fold, fold_by=fold_by, folds_within=folds_within)
    rows, best, start_epoch = fit(run, run_data, progress=progress, stop_after=stop_after)
    return finish(run, run_data, rows, best, start_epoch, progress=progress)


def prepare_run(config: TrainConfig, *, data: str | Path, out: str | Path, epochs: int | None = None,
                resume: bool = False, device: str | None = None) -> Run:
    """Checks and setup before any data is read: the output folder, the epochs override, the process group
    and device, the checkpoint to resume (same config required), and the model."""
    data, out = Path(data), Path(out)
    check_output_dir(out, option="--out")  # before any work: a file there, or a read-only disk, is said now
    check_out_not_read_as_data(out, data, what="the run's files", example="runs")
    if epochs is not None:
        if epochs < 1:
            raise MmferError(f"--epochs must be at least 1, got {epochs}")
        config = dataclasses.replace(config, optim=dataclasses.replace(config.optim, epochs=int(epochs)))
    plain_config = config_to_plain(config)
    dist = _Dist.from_env()
    if dist.enabled and config.data.balance != "none":  # DistributedSampler would deal clips unbalanced, silently
        raise MmferError(f"config {config.name!r}: data.balance {config.data.balance!r} is not supported under "
                         "torchrun yet; train it in one process, or set data.balance: none")
    if dist.enabled and config.adversary.scale:  # its head is not all-reduced: each process's copy would drift
        raise MmferError(f"config {config.name!r}: adversary is not supported under torchrun yet; train it in one "
                         "process, or set adversary.scale: 0")
    own_group = dist.enabled and not torch.distributed.is_initialized()
    if own_group:
        torch.distributed.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    dev = resolve_device(device, config.device)
    if dist.enabled and dev.type == "cuda":
        dev = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(dev)
    use_amp = bool(config.amp and dev.type == "cuda")

    # ---- run directory, resume
    last_path = out / "last.pt"
    ckpt = None
    if resume:
        if not last_path.is_file():
            raise MmferError(f"{out}: nothing to resume (no last.pt); run without --resume to start training")
        ckpt = load_checkpoint(last_path)
        # in today's form: a key added to the config since the run started takes its default, not a difference
        saved = config_to_plain(config_from_dict(dict(ckpt["config"]), where=f"{last_path}: config"))
        diffs = [d for d in config_differences(saved, plain_config) if not d.startswith("optim.epochs:")]
        if diffs:
            seed = saved.get("seed")
            hint = (f"pass --seed {seed}, as when the run started" if all(d.startswith("seed:") for d in diffs)
                    else "use the run's config.yaml (only --epochs may change)")
            raise MmferError(f"{out}: cannot resume with a different config: {'; '.join(diffs)}; {hint}")
    elif last_path.exists():
        raise MmferError(f"{out}: already holds a run (last.pt); pass --resume to continue it or choose another --out")

    # ---- model (its input kind decides the data source: a cache, or an image folder tree for face_image)
    model, kind = build_run_model(config)
    return Run(config=config, data=data, out=out, plain_config=plain_config, dist=dist, own_group=own_group,
               dev=dev, use_amp=use_amp, ckpt=ckpt, model=model, kind=kind)


def prepare_data(run: Run, *, fold: tuple[int, int] | None = None, fold_by: str = "speaker",
                 folds_within: str | None = None, fold_within: str | None = None) -> RunData:
    """The run's train and validation clips (a fold, a held-out part of Train, or the Val split), checks of
    the model against the data, initial weights, and the two datasets (``fold_within``: ``folds_within``'s old
    name)."""
    from mmfer.compat import renamed_argument

    folds_within = renamed_argument(folds_within, fold_within, function="prepare_data", new="folds_within",
                                    old="fold_within", option="--folds-within")
    config, data, kind, ckpt, model, dist = run.config, run.data, run.kind, run.ckpt, run.model, run.dist
    dcfg = config.data
    source = data_source(data, kind, dcfg.train_split)
    files, settings, sample_rate, preprocess = source
    if ckpt is not None and not files:
        check_cache_compatible(ckpt, data, dcfg.train_split, kind=kind)
    train_records = source_records(data, dcfg.train_split, kind)
    holdout = fold is not None or dcfg.val_split not in source_splits(data, kind)
    fold_info = None
    if fold is not None:
        pooled = train_records + (source_records(data, dcfg.val_split, kind)
                                  if dcfg.val_split in source_splits(data, kind) else [])
        if fold_by == "corpus":
            folds = corpus_folds(pooled)
        else:
            folds = speaker_folds(corpus_records(pooled, folds_within) if folds_within else pooled, fold[1])
        train_records, val_records = fold_records(pooled, folds, fold[0], by=fold_by)
        fold_info = {"index": fold[0] + 1, "of": len(folds), "by": fold_by, "speakers": folds[fold[0]],
                     "train_clips": len(train_records), "val_clips": len(val_records),
                     "labels_digest": labels_digest(train_records + val_records)}
        if folds_within:
            fold_info["within"] = folds_within
        log.info("fold %d of %d: validating on %s %s (%d clips), training on %d clips", fold[0] + 1, len(folds),
                 "corpus" if fold_by == "corpus" else "speakers", ", ".join(folds[fold[0]]), len(val_records),
                 len(train_records))
    elif holdout:
        train_records, val_records = run_holdout(train_records, fraction=dcfg.holdout_fraction,
                                                   seed=holdout_seed(config), ckpt=ckpt)
        held = sorted({speaker_of(r) or "" for r in val_records})
        log.info("no %r split in %s: holding out %s of %s (%d clips) for validation", dcfg.val_split, data,
                 f"the speakers {', '.join(held)}" if all(held) else f"a stratified {100 * dcfg.holdout_fraction:.0f}%",
                 dcfg.train_split, len(val_records))
    else:
        val_records = source_records(data, dcfg.val_split, kind)
        if not files:
            check_cache_compatible({"preprocess": preprocess}, data, dcfg.val_split, train_split=dcfg.train_split, kind=kind)
    check_consistency(config, settings, kind)
    if ckpt is not None:  # before the datasets are built: on a large cache that takes a while
        check_resume_clips(ckpt, clip_sets(train_records, val_records), run=run.out, data=data)
    corpora = files == "audio" and is_speech_list(data)
    if corpora:
        check_classes(train_records, where=f"{data} (training clips)")
    if config.adversary.scale:  # before the datasets are built: decoding a corpus takes minutes
        from mmfer.engine.adversary import class_layer, domain_indices

        class_layer(run.model)
        domain_indices(train_records, config.adversary.by)
    if config.init.backbone_from and ckpt is None:
        from mmfer.models.pretrained import load_backbone

        load_backbone(model, config.init.backbone_from)
    if config.init.encoder_from and ckpt is None:
        load_encoder(model, config.init.encoder_from, data=config.data)

    train_ds = make_dataset(config, data=data, kind=kind, records=train_records, train=True, sample_rate=sample_rate)
    val_ds = make_dataset(config, data=data, kind=kind, records=val_records, train=False, sample_rate=sample_rate)
    for name, ds, recs in (("train", train_ds, train_records), ("val", val_ds, val_records)):
        if ds.skipped and dist.main:
            log.info("%s: %d of %d clips left out for %s (%s)%s", name, len(ds.skipped), len(recs), kind, ds.describe_skipped(),
                     "; scored uniform, they count as wrong in the Val figures" if name == "val" else "")
            unlabelled = [c for c, r in ds.skipped if r.startswith("no label")]
            if unlabelled and name == "train":  # a list row whose label cell is empty: a slip, not a decision
                log.warning("train: %d clip(s) have no label and are not learnt from (e.g. %s)", len(unlabelled),
                            ", ".join(unlabelled[:3]))
    if len(train_ds) == 0:
        raise MmferError(f"{data}: no usable {dcfg.train_split} clips for a {kind} model "
                         f"({train_ds.describe_skipped() or 'split is empty'}); check `mmfer preprocess` output")
    check_val_and_classes(train_ds, val_ds, val_records, data=data, kind=kind, dcfg=dcfg,
                           holdout=holdout and fold is None, warn=dist.main)
    if corpora:
        check_classes(train_ds.records, where=f"{data} (readable training clips)")
        if config.loss.mask_absent_classes:
            train_ds.allowed = class_masks(train_ds.records)
            if train_ds.allowed is not None:
                if dist.main:
                    for c, classes in sorted(classes_by_corpus(train_ds.records).items()):
                        absent = [e for e in EMOTIONS if e not in classes]
                        if absent:
                            log.info("corpus %s has no %s: its clips give those classes no loss", c or "(none)",
                                     ", ".join(absent))

    if config.distill.targets and config.distill.weight:
        from mmfer.engine.distill import attach_targets

        attach_targets(train_ds, config.distill, fold=fold_info and fold_info["index"], announce=dist.main, started=ckpt)
    return RunData(source=source, train_records=train_records, val_records=val_records, holdout=holdout,
                   fold_info=fold_info, train_ds=train_ds, val_ds=val_ds)


def fit(run: Run, run_data: RunData, *, progress: bool = True,
        stop_after: int | None = None) -> tuple[list[dict[str, Any]], dict[str, Any], int]:
    """The epochs: loader, optimiser and schedule, resumed state, and per epoch the optimisation steps, the
    validation, ``last.pt``, ``best.pt`` and the logs. Returns the log rows, the best epoch and the epoch
    the run started from."""
    config, out, dist, dev, ckpt, model, kind = run.config, run.out, run.dist, run.dev, run.ckpt, run.model, run.kind
    use_amp, plain_config, last_path, best_path = run.use_amp, run.plain_config, run.last_path, run.best_path
    train_ds, val_ds, fold_info = run_data.train_ds, run_data.val_ds, run_data.fold_info
    preprocess = run_data.source.preprocess
    dcfg = config.data
    model.to(dev)
    net: nn.Module = model
    if dist.enabled:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    sampler, loader, loader_gen = train_loader(config, train_ds, kind=kind, device=dev, distributed=dist.enabled,
                                               rank=dist.rank, world_size=dist.world_size,
                                               progress=progress and dist.main)
    steps_per_epoch = max(1, len(loader))
    pieces = training_pieces(config, model, dev, train_ds.labels,
                             class_counts=(sampler.expected_class_counts(train_ds.labels)
                                           if isinstance(sampler, BalancedEpochSampler) else None))
    precision, optimizer, scaler, criterion = (pieces[k] for k in ("precision", "optimizer", "scaler", "criterion"))
    from mmfer.engine.distill import load_teachers

    teacher = load_teachers(config.distill, kind=kind, data_config=dcfg, preprocess=preprocess, fold_info=fold_info,
                            device=dev, precision=precision, announce=dist.main,
                            val_digest=clip_sets(run_data.train_records, run_data.val_records)["val_digest"])
    ocfg = config.optim
    ema = ema_model(model, ocfg.ema_decay)
    eval_model = ema.module if ema is not None else model
    if dist.main:
        log.info("training in %s on %s%s%s", precision, dev, f", weights averaged (EMA {ocfg.ema_decay})" if ema else "",
                 precision_note(dev, config.amp, precision))

    def schedule(step: int) -> float:
        return lr_factor(step, steps_per_epoch=steps_per_epoch, optim=ocfg)

    from mmfer.engine.adversary import build_adversary

    adversary = build_adversary(config, model, train_ds, steps_per_epoch=steps_per_epoch)
    if adversary is not None:  # its head learns with the model (a group of its own), before the schedule is set
        optimizer.add_param_group({"params": list(adversary.to(dev).parameters())})
        if dist.main:
            log.info("adversary: guessing each clip's %s among %d (%s), reversed gradient up to %g",
                     config.adversary.by, len(adversary.domains), ", ".join(adversary.domains[:6])
                     + (" ..." if len(adversary.domains) > 6 else ""), config.adversary.scale)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    frozen_params = list(unwrap(model).encoder.parameters()) if (
        config.init.encoder_from and config.init.freeze_encoder_epochs > 0 and hasattr(unwrap(model), "encoder")
    ) else []

    start_epoch, best, rows = 0, {}, []
    if ckpt is not None:
        start_epoch, best = restore_state(ckpt, model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler,
                                          ema=ema, adversary=adversary, where=last_path)
        rows = _read_log(out, start_epoch)
        log.info("resuming %s %s", out, f"at epoch {start_epoch + 1} of {ocfg.epochs}" if start_epoch < ocfg.epochs
                 else f"with all {ocfg.epochs} epochs done: finishing (scores)" if start_epoch == ocfg.epochs
                 else f"with {start_epoch} epochs done, more than the {ocfg.epochs} asked: finishing (scores)")

    if dist.main:
        out.mkdir(parents=True, exist_ok=True)
        for stale in out.glob(".*.tmp*"):  # half-written checkpoints or logs of a killed run
            if stale.is_file():
                stale.unlink(missing_ok=True)
        staged = out / STAGED_BEST
        if staged.is_file():  # a stop after last.pt, before the rename: the epoch last.pt holds is its epoch
            if ckpt is not None and load_checkpoint(staged)["epoch"] == int(ckpt["epoch"]):
                os.replace(staged, best_path)
            else:
                staged.unlink()
        from mmfer.outputs import write_file

        write_file(out / "config.yaml", yaml.safe_dump(plain_config, sort_keys=False))  # never through a link
        if fold_info is not None:
            write_file(out / "fold.json", json.dumps(fold_info) + "\n")
        write_run_clips(out, run_data.train_records, run_data.val_records)
        if start_epoch < ocfg.epochs:  # training goes on: scores an earlier session wrote are of an older best.pt
            for split in ("Test", config.data.val_split):
                (out / f"scores_{split}.csv").unlink(missing_ok=True)
        record_session(out, data=run.data, device=dev, precision=precision, start_epoch=start_epoch, epochs=ocfg.epochs)
    val_labels = np.asarray(val_ds.labels, dtype=np.int64)
    unscored = unscored_labels(run_data.val_records, val_ds)  # in the figures as no prediction, as in scores_Val
    if best and "counts_unscored" not in best and len(unscored):  # resumed from a run whose best left them out
        n = int((val_labels >= 0).sum())
        best["value"] = round(best["value"] * n) / (n + len(unscored)) if best.get("metric") == "accuracy" else float("nan")
    eval_bs = dcfg.eval_batch_size or dcfg.batch_size
    board = _tensorboard(out) if dist.main else None

    for epoch in range(start_epoch, ocfg.epochs):
        if stop_after is not None and epoch >= stop_after:
            break
        t0 = time.perf_counter()
        start_epoch_draws(epoch, seed=config.seed, train_ds=train_ds, sampler=sampler, generator=loader_gen)
        if len(loader) == 0:
            raise MmferError(
                f"{out}: epoch {epoch + 1} would run no optimisation step: {len(train_ds)} training items"
                f"{f' over {dist.world_size} processes' if dist.enabled else ''} and batch_size {dcfg.batch_size} "
                "leave no full batch per process; lower data.batch_size or use fewer processes")
        freeze = epoch < config.init.freeze_encoder_epochs
        aug = config.augment
        train_loss, train_acc, tot_n = train_epoch(
            net, loader, desc=f"epoch {epoch + 1}/{ocfg.epochs}", device=dev, precision=precision,
            criterion=criterion, optimizer=optimizer, scheduler=scheduler, scaler=scaler, grad_clip=ocfg.grad_clip,
            frozen=frozen_params if freeze else (), mixing=(aug.mixup, aug.cutmix) if aug.enabled else (0.0, 0.0),
            teacher=teacher, adversary=adversary, ema=ema, model=model, clip_ids=train_ds.clip_ids, where=str(out),
            show=dist.main, progress=progress)
        val_acc, val_uar, val_loss = validate(eval_model, val_ds, val_labels, device=dev, batch_size=eval_bs,
                                              workers=dcfg.workers, amp=use_amp, unscored=unscored,
                                              progress=progress and dist.main)
        metric = val_uar if ocfg.select_by == "uar" else val_acc
        improved = ocfg.select_by == "last" or not best or (
            not math.isnan(metric) and (math.isnan(best["value"]) or metric > best["value"]))
        if improved:
            best = {"epoch": epoch + 1, "metric": ocfg.select_by, "value": metric, "val_accuracy": val_acc,
                    "val_uar": val_uar, "counts_unscored": True}
        row = {
            "epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"], "train_loss": train_loss,
            "train_accuracy": train_acc, "val_loss": val_loss, "val_accuracy": val_acc,
            "val_uar": val_uar, "best": bool(improved), "seconds": round(time.perf_counter() - t0, 3),
        }
        if adversary is not None:  # near chance: the features no longer tell the domains apart
            row["adversary_accuracy"] = adversary.take_accuracy()
        rows.append(row)
        if dist.main:
            save_state(run, run_data, model=model, eval_model=eval_model, epoch=epoch + 1, optimizer=optimizer,
                       scheduler=scheduler, scaler=scaler, precision=precision, rows=rows, best=best,
                       improved=improved, ema=ema, adversary=adversary)
            if board is not None:
                for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_uar", "lr",
                            *(("adversary_accuracy",) if adversary is not None else ())):
                    if row[key] is not None and not (isinstance(row[key], float) and math.isnan(row[key])):
                        board.add_scalar(key.replace("_", "/", 1), row[key], epoch + 1)
                board.flush()
            left = time_left([r["seconds"] for r in rows if r.get("seconds")], done=epoch + 1, epochs=ocfg.epochs,
                             fold_info=fold_info)  # epoch + 1: a resumed run's log may lack earlier rows
            log.info("epoch %d/%d: train loss %.3f acc %.3f | val acc %.3f uar %.3f%s%s | %.0f s%s", epoch + 1,
                     ocfg.epochs, row["train_loss"], row["train_accuracy"], val_acc, val_uar,
                     " (best)" if improved and ocfg.select_by != "last" else "",
                     f" | adversary acc {row['adversary_accuracy']:.3f}" if adversary is not None else "",
                     row["seconds"], f", {left}" if left else "")
        dist.barrier()

    if board is not None:
        board.close()
    if adversary is not None:
        adversary.remove()
    return rows, best, start_epoch


def finish(run: Run, run_data: RunData, rows: list[dict[str, Any]], best: dict[str, Any], start_epoch: int, *,
           progress: bool = True) -> dict[str, Any]:
    """After the epochs: the scores of the best checkpoint once every epoch is done, the process group ended,
    and the result ``train`` returns."""
    out, dist, dev, data, ocfg = run.out, run.dist, run.dev, run.data, run.config.optim
    holdout, val_records, last_path, best_path = run_data.holdout, run_data.val_records, run.last_path, run.best_path
    own_group = run.own_group
    result: dict[str, Any] = {"run": str(out), "best": best, "epochs_done": rows[-1]["epoch"] if rows else start_epoch,
                              "last": str(last_path), "best_checkpoint": str(best_path), "holdout_val": holdout,
                              "scores": {}, "rank": dist.rank}
    finished = rows and rows[-1]["epoch"] >= ocfg.epochs
    if dist.main and finished and best_path.is_file():
        result["scores"] = write_run_scores(out, data=data, device=dev, progress=progress,
                                            val_records=val_records if holdout else None)
    dist.barrier()
    if own_group:
        torch.distributed.destroy_process_group()
    return result


def write_run_scores(out: Path, *, data: Path, device: torch.device, progress: bool = True,
                     val_records: list[ClipRecord] | None = None) -> dict[str, str]:
    """Score Val (or the held-out Train clips) and Test, when present, with the run's best checkpoint."""
    from mmfer.engine.checkpoint import model_from_checkpoint
    from mmfer.engine.config import config_from_dict

    ckpt = load_checkpoint(out / "best.pt")
    config = config_from_dict(ckpt["config"], where=f"{out / 'best.pt'}: config")
    model = model_from_checkpoint(ckpt).to(device)
    kind = model.input_kind
    splits_present = source_splits(data, kind)
    written = {}
    for split in ("Test", config.data.val_split):  # Val last: a cross-validation takes its file as the fold done
        records = val_records if split == config.data.val_split else None
        if records is None and split not in splits_present:
            continue
        if records is None:  # Test: rows of a list may repeat clips the run learnt from
            records = source_records(data, split, kind)
            warn_learnt_from(out, records, log=log)
        ids, labels, probs = split_scores(model, ckpt, config=config, data=data, split=split, device=device,
                                          records=records, progress=progress)
        path = write_scores(out / f"scores_{split}.csv", ids, labels, probs)
        written[split] = str(path)
        log.info("wrote %s (%d %s)", path, len(ids), "images" if kind == "face_image" else "clips")
    return written


# holdout_seed and holdout_split moved to mmfer.data.splits (imported above, so still readable from here)
