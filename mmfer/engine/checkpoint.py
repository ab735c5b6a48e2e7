"""Checkpoints: plain dicts of Python types and tensors, loadable with ``torch.load(weights_only=True)``.

A checkpoint is self-describing (model name and builder kwargs, label list, preprocessing settings,
train config), so scoring needs nothing but the file and a cache made with the same settings.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from mmfer.data.cache import PreprocessSettings, cache_settings
from mmfer.data.kinds import MODALITY
from mmfer.errors import MmferError
from mmfer.labels import EMOTIONS

CHECKPOINT_FORMAT = 1


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model inside DistributedDataParallel / label remapping wrappers."""
    while hasattr(model, "module") and isinstance(getattr(model, "module"), nn.Module):
        model = model.module
    return model


def save_checkpoint(
    path: str | Path,
    *,
    model: nn.Module,
    model_name: str,
    model_kwargs: dict[str, Any],
    preprocess: dict[str, Any],
    config: dict[str, Any],
    epoch: int,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    scaler: Any = None,
    rng: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    best: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    clips: dict[str, Any] | None = None,
    distill_targets_sha256: str | None = None,
) -> Path:
    """Write a checkpoint atomically (temporary file, then rename), so a kill never leaves half a file.
    ``clips``: what the run trains and validates on (``clip_sets``), which ``--resume`` checks, as it checks
    ``distill_targets_sha256``: the digest of the teachers' probabilities file (``distill.targets``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    from mmfer.models.registry import registering_module

    state = {
        "format": CHECKPOINT_FORMAT,
        "model_name": model_name,
        "model_kwargs": dict(model_kwargs),
        "model_module": registering_module(model_name),  # a model of the user's code: the module to import
        "input_kind": getattr(unwrap(model), "input_kind", None),
        "state_dict": {k: v.detach().cpu() for k, v in unwrap(model).state_dict().items()},
        "labels": list(EMOTIONS),
        "preprocess": dict(preprocess),
        "config": config,
        "epoch": int(epoch),
        "metrics": dict(metrics or {}),
        "best": dict(best or {}),
    }
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
    if scheduler is not None:
        state["scheduler"] = scheduler.state_dict()
    if scaler is not None:
        state["scaler"] = scaler.state_dict()
    if rng is not None:
        state["rng"] = rng
    if clips is not None:
        state["clips"] = dict(clips)
    if distill_targets_sha256 is not None:
        state["distill_targets_sha256"] = distill_targets_sha256
    state.update(extra or {})
    from mmfer.outputs import atomic_write

    with atomic_write(path, "wb") as f:  # never through a link planted at the temporary name
        try:
            torch.save(state, f)
        except RuntimeError as e:  # torch's writer says a short write (a full disk) as "unexpected pos ..."
            if "unexpected pos" not in str(e):
                raise
            import errno

            raise OSError(errno.ENOSPC, "No space left on device (a short write)", str(path)) from None
    return path


# What a run directory of ``mmfer train`` holds, in order of preference: best Val epoch, else the latest.
RUN_CHECKPOINTS = ("best.pt", "last.pt")


def run_checkpoint(run_dir: str | Path) -> Path | None:
    """The checkpoint a run directory stands for (best.pt, else last.pt); None when it holds neither
    (or is not a directory), so callers can tell a trained run from any other folder."""
    run_dir = Path(run_dir)
    return next((run_dir / n for n in RUN_CHECKPOINTS if (run_dir / n).is_file()), None)


def resolve_checkpoint(run_or_checkpoint: str | Path) -> Path:
    """A run directory means its best.pt (else last.pt); a file is used as is."""
    p = Path(run_or_checkpoint)
    if p.is_dir():
        found = run_checkpoint(p)
        if found is not None:
            return found
        folds = sorted(f.name for f in p.glob("fold*") if f.is_dir() and run_checkpoint(f) is not None)
        if folds:  # a cross-validation folder of `mmfer train --folds`: one model per fold, none of its own
            raise MmferError(f"{p}: a cross-validation folder of `--folds` (its models are {', '.join(folds[:3])}"
                             f"{' ...' if len(folds) > 3 else ''}); give one fold, e.g. {p / folds[0]}, or build a "
                             "bundle of them (tools/build_default_model.py --audio CV)")
        if (p / "bundle.json").is_file():  # the default model's folder, say, as a start for fine-tuning
            raise MmferError(f"{p}: a bundle of several models, not one run; give one of its checkpoints, e.g. "
                             f"{p / _bundle_models(p)[0]} (it has {', '.join(_bundle_models(p)[:4])}"
                             f"{' ...' if len(_bundle_models(p)) > 4 else ''})")
        raise MmferError(f"{p}: no best.pt or last.pt in this run directory; train it first with `mmfer train`")
    if not p.is_file():
        raise MmferError(f"{p}: checkpoint or run directory not found")
    if p.name == "bundle.json":
        raise MmferError(f"{p}: a bundle's description, not a checkpoint; give one of its models, e.g. "
                         f"{p.parent / _bundle_models(p.parent)[0]} (`mmfer predict --model` takes the folder)")
    return p


def _bundle_models(folder: Path) -> list[str]:
    import json

    try:
        names = [b["checkpoint"] for b in json.loads((folder / "bundle.json").read_text(encoding="utf-8"))["branches"].values()]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        names = []
    return names or sorted(f.name for f in folder.glob("*.pt")) or ["MODEL.pt"]


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint safely (``weights_only=True``: no code runs from the file; ``safe_torch_load``); one of a
    newer checkpoint format is said, not misread."""
    from mmfer.models.pretrained import safe_torch_load

    path = resolve_checkpoint(path)
    ckpt = safe_torch_load(path, what="loadable mmfer checkpoint")
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "model_name" not in ckpt:
        raise MmferError(f"{path}: not an mmfer checkpoint (no model_name/state_dict); was it written by `mmfer train`?")
    found = ckpt.get("format", CHECKPOINT_FORMAT)  # (none in the first checkpoints: format 1)
    if not isinstance(found, int) or found > CHECKPOINT_FORMAT:
        raise MmferError(f"{path}: checkpoint format {found!r}, written by a newer mmfer (this one reads format "
                         f"{CHECKPOINT_FORMAT}); upgrade mmfer")
    ckpt["path"] = str(path)
    return ckpt


# What an exported checkpoint keeps: everything needed to rebuild, describe and check the model, no
# training state (optimizer, scheduler, scaler, RNG), which is most of a last.pt and useless for prediction.
EXPORT_KEYS = ("format", "model_name", "model_kwargs", "model_module", "input_kind", "state_dict", "labels",
               "preprocess", "config", "epoch", "metrics", "best", "clips")  # clips: which held-out clips `mmfer scores` re-draws
# Normalisation statistics stay fp32: they are tiny, and a variance below fp16's range would round to zero.
_KEEP_FP32 = ("running_mean", "running_var")


def export_checkpoint(src: str | Path, dst: str | Path, *, half: bool = True) -> Path:
    """A small checkpoint for shipping: training state dropped, float weights stored as fp16 when ``half``.

    Loading it (``load_checkpoint`` + ``model_from_checkpoint``) still gives an fp32 model: the builder makes
    fp32 parameters and ``load_state_dict`` copies the fp16 values into them.
    """
    src_path = resolve_checkpoint(src)
    ckpt = load_checkpoint(src_path)
    out = {k: ckpt[k] for k in EXPORT_KEYS if k in ckpt}
    out["state_dict"] = {
        k: v.half() if half and v.is_floating_point() and not k.endswith(_KEEP_FP32) else v
        for k, v in ckpt["state_dict"].items()
    }
    out["exported"] = {"from": f"{src_path.parent.name}/{src_path.name}", "dtype": "float16" if half else "float32"}
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    from mmfer.outputs import atomic_path

    with atomic_path(dst) as tmp:
        torch.save(out, tmp)
    return dst


def label_permutation(ckpt: dict[str, Any]) -> list[int] | None:
    """Column order that maps the checkpoint's outputs onto ``EMOTIONS``; None when already equal.

    A checkpoint with the same classes in another order is remapped by name; other label sets are refused.
    """
    labels = list(ckpt.get("labels") or [])
    if labels == list(EMOTIONS):
        return None
    if sorted(labels) != sorted(EMOTIONS):
        missing = sorted(set(EMOTIONS) - set(labels))
        extra = sorted(set(labels) - set(EMOTIONS))
        raise MmferError(
            f"{ckpt.get('path', 'checkpoint')}: its labels {labels} differ from {list(EMOTIONS)} "
            f"(missing: {missing or 'none'}, extra: {extra or 'none'}); retrain it with mmfer's seven classes"
        )
    return [labels.index(e) for e in EMOTIONS]


class LabelRemap(nn.Module):
    """Reorders logits columns into ``EMOTIONS`` order for a checkpoint saved with another order."""

    def __init__(self, module: nn.Module, order: list[int]):
        super().__init__()
        self.module = module
        self.register_buffer("order", torch.tensor(order, dtype=torch.long), persistent=False)
        self.input_kind = getattr(module, "input_kind", None)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.module(x, mask=mask)[:, self.order]


def _check_weights_fit(ckpt: dict[str, Any]) -> None:
    """The model a checkpoint names is built first without memory (on the meta device) and its parameter shapes
    compared with the weights, so a small file whose ``model_kwargs`` ask for a huge model is said before that
    model takes the machine's memory. A model that cannot be built so is checked by ``load_state_dict`` alone."""
    from mmfer.models.registry import build_model

    state = ckpt.get("state_dict")
    if not isinstance(state, dict):
        raise MmferError(f"{ckpt.get('path', 'checkpoint')}: no weights (state_dict) in it")
    try:
        with torch.device("meta"):
            probe = build_model(ckpt["model_name"], **dict(ckpt.get("model_kwargs") or {}))
        wanted = {k: tuple(v.shape) for k, v in probe.state_dict().items()}
    except Exception:  # noqa: BLE001 - an unknown name or a builder that needs real tensors: said or checked below
        return
    given = {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}
    wrong = sorted(k for k in wanted if given.get(k) != wanted[k])
    if wrong:
        k = wrong[0]
        raise MmferError(f"{ckpt.get('path', 'checkpoint')}: weights do not fit model {ckpt['model_name']!r} with "
                         f"kwargs {ckpt.get('model_kwargs')}: {len(wrong)} of its {len(wanted)} tensors are missing or "
                         f"of another shape (e.g. {k}: {given.get(k, 'missing')} in the file, {wanted[k]} in the model)")


def model_from_checkpoint(ckpt: dict[str, Any]) -> nn.Module:
    """The trained model (eval mode, CPU), its outputs in ``EMOTIONS`` order."""
    from mmfer.models.registry import build_model

    order = label_permutation(ckpt)
    _check_weights_fit(ckpt)
    try:
        model = build_model(ckpt["model_name"], **dict(ckpt.get("model_kwargs") or {}))
    except MmferError as e:  # e.g. a model registered by code not imported here: say which file needs it
        from mmfer.models.registry import MODELS

        where, module = ckpt.get("path"), ckpt.get("model_module")
        if module and ckpt["model_name"] not in MODELS:
            e = MmferError(f"model {ckpt['model_name']!r} is registered by module {module!r}, which is not imported: "
                           f"`mmfer --import {module} ...` on the command line, `import {module}` in Python (code "
                           "runs as it is imported: only a module you trust)")
        raise MmferError(f"{where}: {e}" if where else str(e)) from None
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise MmferError(
            f"{ckpt.get('path', 'checkpoint')}: weights do not fit model {ckpt['model_name']!r} "
            f"with kwargs {ckpt.get('model_kwargs')}: {e}"
        ) from None
    model.eval()
    if order is not None:
        model = LabelRemap(model, order).eval()
    return model


SOUND_SETTINGS = ("sample_rate",)  # the preprocess settings an audio branch's input depends on


def check_cache_compatible(ckpt: dict[str, Any], cache: str | Path, split: str, *,
                           train_split: str | None = None, kind: str | None = None) -> PreprocessSettings:
    """Refuse a cache preprocessed differently from the checkpoint's training cache, naming each difference.
    With ``train_split`` (no run yet), ``ckpt`` holds that split's settings: the two splits of one cache differ.
    With ``kind``, only the settings that change that kind's input count (the sound's for an audio kind, the
    others for a face kind)."""
    where = ckpt.get("path", "checkpoint")
    try:
        trained = PreprocessSettings.from_dict(dict(ckpt.get("preprocess") or {}))
    except MmferError as e:
        raise MmferError(f"{where}: unreadable preprocessing settings ({e})") from None
    stored_version = (ckpt.get("preprocess") or {}).get("cache_version")
    current = cache_settings(cache, split)
    diffs = trained.differences(current)
    if kind is not None:  # max_frames cuts the picture, not the sound; the sound's rate is no face's concern
        sound = MODALITY.get(kind) == "audio"
        diffs = [d for d in diffs if (d.split(":", 1)[0] in SOUND_SETTINGS) == sound]
    if stored_version is not None and stored_version != current.to_dict()["cache_version"]:
        diffs.insert(0, f"cache_version: {stored_version!r} != {current.to_dict()['cache_version']!r}")
    if diffs and train_split is not None:
        raise MmferError(
            f"{cache}: split {split!r} was preprocessed with other settings than split {train_split!r} "
            f"({train_split} != {split}): {'; '.join(diffs)}. A model trains and is measured on one kind of input: "
            f"re-run `mmfer preprocess` into this cache with the same settings for every split")
    if any(d.startswith("cache_version:") for d in diffs):  # no preprocess of this mmfer can make the run's
        raise MmferError(
            f"{where} was trained on a cache of an older mmfer ({'; '.join(diffs)}): this mmfer cannot write that cache "
            f"again, so {cache} cannot be made to match it; train the run again on this cache (`mmfer train ... "
            "--data` it), or use the mmfer version that trained it")
    if diffs:
        raise MmferError(
            f"{cache}: split {split!r} was preprocessed with other settings than the run {where} was trained on "
            f"(run != cache): {'; '.join(diffs)}. Re-run `mmfer preprocess` with the run's settings into another "
            "--out, or use a run trained on this cache"
        )
    return current


def clip_sets(train_records: Sequence[Any], val_records: Sequence[Any]) -> dict[str, Any]:
    """The clips a run trains and validates on, as counts and digests of their (split, clip id)s."""
    def digest(records: Sequence[Any]) -> str:
        keys = sorted(f"{r.split}/{r.clip_id}" for r in records)
        return hashlib.sha256("\n".join(keys).encode("utf-8", "surrogateescape")).hexdigest()[:16]

    return {"train": len(train_records), "val": len(val_records), "train_digest": digest(train_records),
            "val_digest": digest(val_records)}


RUN_CLIPS = "clips.csv"  # RUN/clips.csv: role (train or val), split, clip_id, path of every clip the run read


def _clip_key(record: Any) -> str:
    """One clip's identity across data sources: its source file where known, else split/clip_id."""
    import os

    return os.path.realpath(record.path) if getattr(record, "path", "") else f"{record.split}/{record.clip_id}"


def write_run_clips(run: str | Path, train_records: Sequence[Any], val_records: Sequence[Any]) -> Path:
    """Write ``RUN/clips.csv``: the clips the run learns from and validates on, so that scoring clips it learnt
    from can be told from scoring held-out ones (``warn_learnt_from``), and a reader can see what it trained on."""
    import csv
    import io
    import os

    from mmfer.outputs import write_file

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["role", "split", "clip_id", "path"])
    for role, records in (("train", train_records), ("val", val_records)):
        w.writerows([role, r.split, r.clip_id, os.path.realpath(r.path) if getattr(r, "path", "") else ""]
                    for r in records)
    return write_file(Path(run) / RUN_CLIPS, buf.getvalue())


def warn_learnt_from(run: str | Path, records: Sequence[Any], *, log: Any) -> int:
    """Warn when clips about to be scored are among those the run at ``run`` learnt from (its ``clips.csv``;
    runs from before it was written have none): their scores are not held-out figures. Returns how many."""
    import csv
    from types import SimpleNamespace

    path = Path(run) / RUN_CLIPS
    if not path.is_file():
        return 0
    try:
        with path.open(newline="", encoding="utf-8") as f:
            learnt = {_clip_key(SimpleNamespace(**row)) for row in csv.DictReader(f) if row.get("role") == "train"}
    except (OSError, UnicodeDecodeError, TypeError, csv.Error) as e:
        log.warning("%s: unreadable (%s); cannot check whether the clips scored were learnt from", path, e)
        return 0
    seen = [r.clip_id for r in records if _clip_key(r) in learnt]
    if seen:
        log.warning("%s learnt from %d of the %d clips scored now (e.g. %s): their scores are not held-out figures",
                    Path(run), len(seen), len(records), ", ".join(seen[:3]))
    return len(seen)


def check_resume_clips(ckpt: dict[str, Any], now: dict[str, Any], *, run: str | Path, data: str | Path) -> None:
    """``--resume`` continues a run on the clips it started on: other Train clips change what it learns, other Val
    clips what "best" means (epochs measured on two Val sets would be compared). Checkpoints from before these
    were recorded have none to check."""
    before = ckpt.get("clips")
    if not before or before == now:
        return
    raise MmferError(
        f"{run}: cannot resume on other clips: the run started on {before['train']} training and {before['val']} "
        f"validation clips, and {data} now gives {now['train']} and {now['val']}"
        + (" (the same counts, other clips)" if (before["train"], before["val"]) == (now["train"], now["val"]) else "")
        + ". Either --data is another one, or its clips changed since (`mmfer preprocess` added clips or left out "
          "deleted ones). Resume with the data the run started on, or train a new run")


def run_holdout(records: Sequence[Any], *, fraction: float, seed: int,
                ckpt: dict[str, Any] | None = None) -> tuple[list[Any], list[Any]]:
    """The (train, held-out) clips of a run with no Val split, as the run drew them: whole speakers since
    2026-12-05's evening, a class-stratified split before. A checkpoint's clip digests say which rule drew its
    Val (one from before the digests existed used the stratified one), so ``mmfer scores`` and ``--resume``
    re-draw the same clips, not those of today's rule (an old run would be scored on clips it trained on)."""
    from mmfer.data.splits import holdout_split

    records = list(records)
    if ckpt is None:
        return holdout_split(records, fraction=fraction, seed=seed)
    want = (ckpt.get("clips") or {}).get("val_digest")
    if not want:  # a run from before the digests: nothing to match, and it drew the stratified way
        return holdout_split(records, fraction=fraction, seed=seed, by_speaker=False)
    drawn = [holdout_split(records, fraction=fraction, seed=seed, by_speaker=rule) for rule in (True, False)]
    for train, val in drawn:
        if clip_sets(train, val)["val_digest"] == want:
            return train, val
    import logging

    logging.getLogger(__name__).warning(
        "the run's held-out clips cannot be re-drawn from this data (clips added or removed since it trained? or "
        "a loop of one's own that held out with other than its config's data.holdout_fraction and holdout_seed): "
        "today's draw may include clips the run trained on, so its figure may read high")
    return drawn[0]  # (--resume refuses, naming the difference)


def warn_if_unfinished(ckpt_path: Path, epochs: int, *, use: str) -> None:
    """Say so when a run's checkpoint is used (``use``: scores, predictions) while the run is still training or
    was stopped: it holds the best epoch so far, not the run's result."""
    import json
    import logging

    import yaml

    log_path = ckpt_path.parent / "log.jsonl"
    if not log_path.is_file():  # a bundle's weights, a copied checkpoint: nothing to tell
        return
    try:  # the run's config.yaml, rewritten by `train --resume --epochs N`; best.pt may hold an older count
        epochs = int(yaml.safe_load((ckpt_path.parent / "config.yaml").read_text(encoding="utf-8"))["optim"]["epochs"])
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError):
        pass
    lines = [line for line in log_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    try:
        done = int(json.loads(lines[-1])["epoch"]) if lines else 0
    except (ValueError, KeyError, TypeError):
        return
    if done < epochs:
        logging.getLogger(__name__).warning(
            "%s: the run has trained %d of its %d epochs (still training, or stopped): these are the %s of its best "
            "epoch so far; `mmfer train ... --resume` finishes it", ckpt_path.parent, done, epochs, use)


def load_encoder(model: torch.nn.Module, path: str, *, data: Any) -> None:
    """Two-stage fine-tuning (``init.encoder_from``): copy a face model's encoder (e.g. trained on FER2013) into
    ``model``. Faces of another size, colour or equalisation than the encoder learnt from are said: it trains on
    them all the same, starting from features made for other pictures."""
    import logging
    from pathlib import Path

    from mmfer.models.face_frame import load_encoder_from

    if not hasattr(model, "encoder"):
        raise MmferError(f"init.encoder_from={path!r}: model {type(model).__name__} has no encoder to initialise")
    try:
        ckpt = load_checkpoint(path)
    except MmferError as e:  # a config's path is read from the current folder, which the error should say
        raise MmferError(f"init.encoder_from: {e} (read from {Path.cwd()}: a relative path in a config is taken from "
                         "the folder mmfer runs in). Train that model first, name another face model's checkpoint "
                         "(the shipped mmfer/weights/face_fer2013_1.pt is one), or set init.encoder_from: null to "
                         "start from random weights") from None
    try:
        missing = load_encoder_from(model, ckpt)
    except MmferError as e:
        raise MmferError(f"init.encoder_from={path!r}: {e}") from None
    if missing:
        raise MmferError(f"init.encoder_from={path!r}: encoder weights do not fit this model (missing "
                         f"{', '.join(missing[:5])}); use a face model trained with the same encoder arch, width and channels")
    learnt = (ckpt.get("config") or {}).get("data") or {}
    differ = [f"{k}: {learnt[k]} there, {getattr(data, k)} here" for k in ("image_size", "grayscale", "equalize")
              if k in learnt and learnt[k] != getattr(data, k)]
    log = logging.getLogger("mmfer.engine.train")
    if differ:
        log.warning("init.encoder_from=%s learnt from other faces than this run gives it (%s); set data.%s as "
                    "it had them, unless that is what you mean", path, "; ".join(differ),
                    ", data.".join(d.split(":")[0] for d in differ))
    log.info("encoder initialised from %s", path)
