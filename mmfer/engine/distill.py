"""Teachers for knowledge distillation (``distill:`` in a train config): trained models, frozen, whose averaged
tempered probabilities on each training batch the student learns to match (:class:`mmfer.engine.losses.
DistillationLoss`).

Why: an ensemble of fold models of two seeds reads unseen speakers better than one seed's, but predict would pay
for every model. A student per fold, taught by that fold's models, costs predict nothing more. Its out-of-fold
figure stays honest only if no teacher learned from the fold's clips: :func:`check_teacher_fold` requires each
teacher's run to have held out the same speakers of the same data (its ``fold.json``) and to have fixed its epoch
count in advance (``select_by: last``), since choosing an epoch on the fold is learning from it too.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mmfer.errors import MmferError

log = logging.getLogger(__name__)

# data settings that shape what a model of each input kind reads: a teacher must have read its input alike
_INPUT_SETTINGS = {
    "logmel": ("n_mels", "trim_silence", "trim_db"),
    "audio_stats": ("trim_silence", "trim_db"),
    "face_image": ("image_size", "grayscale", "equalize"),
    "face_sequence": ("image_size", "grayscale", "equalize", "num_frames"),
    "face_window": ("image_size", "grayscale", "equalize", "clip_len"),
    "landmarks": ("max_len", "interpolate"),
}
# what fold.json records of the data a fold trained and validated on; equal counts and speakers: the same split
_FOLD_KEYS = ("by", "of", "speakers", "within", "train_clips", "val_clips")


class TeacherEnsemble(nn.Module):
    """The mean of ``teachers``' softmax at ``temperature``; always in eval mode, never trained."""

    def __init__(self, teachers: list[nn.Module], *, temperature: float):
        super().__init__()
        self.teachers = nn.ModuleList(teachers)
        self.temperature = float(temperature)
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "TeacherEnsemble":
        return super().train(False)  # BatchNorm and dropout of a teacher stay as trained

    @torch.no_grad()
    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        probs = [torch.softmax(t(x, mask=mask).float() / self.temperature, dim=1) for t in self.teachers]
        return torch.stack(probs).mean(0)


def teacher_paths(paths: tuple[str, ...] | list[str], *, fold: int | None, what: str = "teachers") -> list[Path]:
    """The teacher checkpoints (or ``targets`` file) of a run, ``{fold}`` replaced by the fold number (1-based) in
    a ``--folds`` run; ``{fold}`` outside one is an error, since there is no fold to choose."""
    out = []
    for p in paths:
        if "{fold}" in p:
            if fold is None:
                raise MmferError(f"distill.{what}: {p!r} names a fold ({{fold}}) but this run is not one of "
                                 "`--folds`; give the path itself")
            p = p.replace("{fold}", str(fold))
        out.append(Path(p))
    return out


def check_teachers_exist(distill: Any, *, folds: int | None) -> None:
    """Before any training: every teacher checkpoint of every fold (1..``folds``, or the run itself when None)
    is there, so a missing fifth fold's teacher is said before four folds have trained."""
    from mmfer.engine.checkpoint import resolve_checkpoint

    for fold in (range(1, folds + 1) if folds else [None]):
        for path in teacher_paths(distill.teachers, fold=fold):
            try:
                resolve_checkpoint(path)
            except MmferError as e:
                raise MmferError(f"distill.teachers: {e}") from None
        if distill.targets and distill.weight:
            path = teacher_paths([distill.targets], fold=fold, what="targets")[0]
            if not path.is_file():
                raise MmferError(f"distill.targets: {path}: score file not found")


def check_teacher_fold(path: Path, ckpt: dict[str, Any], fold_info: dict[str, Any] | None) -> None:
    """A fold run's teacher held out exactly this fold of the same data (its ``fold.json`` beside the checkpoint:
    the same speakers, corpus, and clip counts) and fixed its epochs in advance; a run that is not a fold takes
    no fold model as teacher (it trained on Train and Val pooled, so on this run's validation clips)."""
    info_path = path.parent / "fold.json"
    if fold_info is None:
        if info_path.is_file():
            raise MmferError(f"distill.teachers: {path} is a fold model of a `--folds` run, which trained on Train and "
                             "Val pooled, so on this run's validation clips; teach a fold run with it "
                             "(`--folds`, {fold} in the path) or use a teacher trained on Train only")
        return
    if not info_path.is_file():
        raise MmferError(f"distill.teachers: {path} has no fold.json beside it, so nothing shows that it never heard "
                         f"this fold's speakers ({', '.join(fold_info['speakers'])}); use the same fold of a "
                         "`mmfer train --folds` run")
    try:
        theirs = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise MmferError(f"distill.teachers: {info_path}: unreadable ({e})") from None
    theirs.setdefault("by", "speaker")  # fold.json files older than leave-one-corpus-out
    theirs.setdefault("speakers", [])
    # older fold.json files lack the clip counts (and within): those compare what they hold, and say so
    keys = [k for k in _FOLD_KEYS if k in theirs or k in ("within",) and "train_clips" in theirs]
    unrecorded = [k for k in _FOLD_KEYS if k not in keys]
    if unrecorded:
        log.warning("distill.teachers: %s records no %s of its fold (an older run): only its %s are compared",
                    info_path, ", ".join(unrecorded), ", ".join(keys))
    mine = {k: fold_info.get(k) for k in keys}
    theirs = {k: theirs.get(k) for k in keys}
    mine["speakers"], theirs["speakers"] = sorted(mine["speakers"] or []), sorted(theirs["speakers"] or [])
    differ = [f"{k} {theirs[k]!r} (teacher) != {mine[k]!r} (this fold)" for k in keys if theirs[k] != mine[k]]
    if differ:
        raise MmferError(
            f"distill.teachers: {path} is not a model of this fold of the same data ({'; '.join(differ)}); a teacher "
            "that trained on this fold's held-out clips would leak them into its figures (a path without {fold} "
            "gives every fold the same teacher)")
    select_by = ((ckpt.get("config") or {}).get("optim") or {}).get("select_by")
    if select_by != "last":
        raise MmferError(f"distill.teachers: {path} chose its epoch on this fold's clips (optim.select_by "
                         f"{select_by!r}); use a fold run with select_by: last")


def _check_input(path: Path, ckpt: dict[str, Any], *, kind: str, data_config: Any, preprocess: dict[str, Any],
                 teacher_kind: str | None) -> None:
    if teacher_kind != kind:
        raise MmferError(f"distill.teachers: {path} reads {teacher_kind!r} input but the student reads {kind!r}")
    if ckpt.get("preprocess") and dict(ckpt["preprocess"]) != dict(preprocess):
        raise MmferError(f"distill.teachers: {path} was trained on input prepared otherwise ({ckpt['preprocess']}) "
                         f"than this run's ({preprocess})")
    theirs = (ckpt.get("config") or {}).get("data") or {}
    differ = [f"data.{k} {theirs[k]!r} (teacher) != {getattr(data_config, k)!r} (student)"
              for k in _INPUT_SETTINGS.get(kind, ()) if k in theirs and theirs[k] != getattr(data_config, k)]
    if differ:
        raise MmferError(f"distill.teachers: {path} read its input otherwise: {'; '.join(differ)}")
    if "ema" in ckpt:
        raise MmferError(f"distill.teachers: {path} holds the raw weights of a run that averaged them (EMA); use its "
                         "best.pt, which holds the averaged weights its figures describe")


def load_teachers(distill: Any, *, kind: str, data_config: Any, preprocess: dict[str, Any],
                  fold_info: dict[str, Any] | None, device: torch.device, precision: str,
                  announce: bool = True, val_digest: str | None = None) -> TeacherEnsemble | None:
    """The run's :class:`TeacherEnsemble` on ``device`` (None without teachers, or at weight 0): each teacher
    checked to read the student's input alike and to have held out the same fold (:func:`check_teacher_fold`);
    BatchNorm folded into convolutions (same outputs, less time), channels-last under bf16."""
    from mmfer.engine.checkpoint import load_checkpoint, model_from_checkpoint, resolve_checkpoint
    from mmfer.models.common import conv2d_channels_last, fold_batchnorm

    if (distill.teachers or distill.targets) and distill.weight == 0 and announce:
        log.info("distill.weight is 0: no distillation (its teachers and targets are not read)")
    if not distill.teachers or distill.weight == 0:
        return None
    fold = fold_info["index"] if fold_info is not None else None
    teachers, paths = [], []
    for given in teacher_paths(distill.teachers, fold=fold):
        try:
            path = resolve_checkpoint(given)
        except MmferError as e:
            raise MmferError(f"distill.teachers: {e}") from None
        ckpt = load_checkpoint(path)
        model = model_from_checkpoint(ckpt)
        _check_input(path, ckpt, kind=kind, data_config=data_config, preprocess=preprocess,
                     teacher_kind=getattr(model, "input_kind", None))
        check_teacher_fold(path, ckpt, fold_info)
        theirs = (ckpt.get("clips") or {}).get("val_digest")
        if fold_info is None and val_digest and theirs and theirs != val_digest and announce:
            log.warning("distill.teachers: %s validated on other clips than this run; if it trained on this run's "
                        "validation clips, they leak into its figures. A teacher of the same data and "
                        "data.holdout_seed validates on the same clips (a teacher of other data is fine)", path)
        fold_batchnorm(model)
        teachers.append(model)
        paths.append(str(path))
    ensemble = TeacherEnsemble(teachers, temperature=distill.temperature).to(device)
    if precision == "bf16":
        conv2d_channels_last(ensemble)
    if announce:
        log.info("distilling from %d teacher%s (weight %g, temperature %g): %s", len(teachers),
                 "s" if len(teachers) > 1 else "", distill.weight, distill.temperature, ", ".join(paths))
    return ensemble


def _id_key(clip_id: str) -> str:
    """A clip id with its class folder in canonical spelling ("happy/a" and "Happy/a" are one face): a photo tree
    may spell its folders as it likes, and tools/make_video_crops.py writes canonical ones."""
    from mmfer.labels import canonical

    head, sep, rest = clip_id.partition("/")
    try:
        name = canonical(head) if sep else None
    except MmferError:
        name = None
    return f"{name}/{rest}" if name else clip_id


def attach_targets(dataset: Any, distill: Any, *, fold: int | None, announce: bool = True,
                   started: dict[str, Any] | None = None) -> None:
    """Give ``dataset`` (the training clips) the teachers' probabilities of ``distill.targets``, a score CSV
    (``{fold}`` in its path: the fold number), as ``dataset.teacher_probs`` (clips, classes), tempered at
    ``distill.temperature``; each item then carries its row, and ``dataset.teacher_digest`` is the file's sha256,
    which a checkpoint keeps so that ``--resume`` (``started``: the checkpoint) refuses a changed file.

    Why a file: the teachers may read another form of the same face than the student does (FER2013's photo
    against the video crop cut from it), which teachers run on the student's batch cannot. A training clip
    without a row, with another label there, or with a uniform row (its teachers saw nothing) is an error, and
    so is a file without labels: then nothing shows it scores these clips."""
    import hashlib

    import numpy as np

    from mmfer.labels import EMOTIONS
    from mmfer.scores import is_uniform, read_scores

    path = teacher_paths([distill.targets], fold=fold, what="targets")[0]
    try:
        table = read_scores(path)
    except MmferError as e:
        where = "" if path.is_absolute() else f" (read from {Path.cwd()}: a relative path in a config is taken from " \
                                               "the folder mmfer runs in)"
        raise MmferError(f"distill.targets: {e}{where}") from None
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    before = (started or {}).get("distill_targets_sha256")
    if before and before != digest:
        raise MmferError(f"distill.targets: {path} changed since the run started (sha256 {before[:12]}... then, "
                         f"{digest[:12]}... now); resume with the file it started with, or train a new run")
    ids = dataset.clip_ids
    pos: dict[str, int] = {}
    for i, c in enumerate(table.clip_ids):
        if pos.setdefault(_id_key(c), i) != i:
            raise MmferError(f"distill.targets: {path} has two rows for one clip ({table.clip_ids[pos[_id_key(c)]]} "
                             f"and {c}, the same class folder spelt two ways)")
    missing = [c for c in ids if _id_key(c) not in pos]
    if missing:
        raise MmferError(f"distill.targets: {path} has no row for {len(missing)} of the {len(ids)} training clips "
                         f"(e.g. {', '.join(missing[:3])}): it scores other data")
    rows = np.asarray([pos[_id_key(c)] for c in ids], dtype=np.int64)
    unlabelled = [c for c, r in zip(ids, rows) if not table.labels[r]]
    if unlabelled:
        raise MmferError(f"distill.targets: {path} gives no label for {len(unlabelled)} training clip(s) (e.g. "
                         f"{unlabelled[0]}), so nothing shows that it scores these clips; write its label column "
                         "(`mmfer scores` does)")
    wrong = [(c, table.labels[r]) for c, r, y in zip(ids, rows, dataset.labels) if y >= 0 and table.labels[r] != EMOTIONS[y]]
    if wrong:
        raise MmferError(f"distill.targets: {path} labels {len(wrong)} training clip(s) otherwise "
                         f"(e.g. {wrong[0][0]}: {wrong[0][1]}): it scores other data")
    probs = table.probs[rows]
    blank = [c for c, u in zip(ids, is_uniform(probs)) if u]
    if blank:
        raise MmferError(f"distill.targets: {path} has uniform rows (no prediction: its teachers saw nothing) for "
                         f"{len(blank)} training clip(s) (e.g. {blank[0]}); leave those clips out of the data, or "
                         "score them")
    # a written probability below 5e-7 reads 0 (6 decimals): floored here, so a high temperature lifts it only so far
    tempered = np.power(np.clip(probs, 1e-12, None), 1.0 / distill.temperature)
    dataset.teacher_probs = (tempered / tempered.sum(1, keepdims=True)).astype(np.float32)
    dataset.teacher_digest = digest
    if announce:
        log.info("distilling from the probabilities in %s (weight %g, temperature %g)", path, distill.weight,
                 distill.temperature)
        if fold is not None:
            log.warning("distill.targets in a --folds run: each fold's figure is honest only if the file's "
                        "teachers never trained on that fold's clips ({fold} in its path gives each fold its own)")
