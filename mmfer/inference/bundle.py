"""Trained models for ``mmfer predict``, loaded as one :class:`Bundle`: branches plus fusion weights.

``load_bundle`` accepts
- ``"default"``: the bundle shipped inside the package (``mmfer/weights/``; nothing is downloaded),
- a bundle folder (``bundle.json`` + the checkpoints it names),
- a RUN folder of ``mmfer train`` (its best.pt, else last.pt) or a checkpoint file: one branch,
- a FUSE folder of ``mmfer fuse`` (``weights.json``): every fused branch, found through its run folder.

A bundle folder::

    bundle.json   {"format": 1, "labels": [Angry, ..., Surprise],
                   "fusion": {"method": "weighted"},
                   "branches": {"face": {"checkpoint": "face_fer2013.pt", "weight": 0.5,
                                         "options": {"framing": "fer2013", "image_views": 10, "frame_views": 2},
                                         "metrics": {...}, "data": "...", "licence": "..."},
                                "audio": {...}},
                   "decode": {"fps": 8, "max_frames": 960},
                   "provenance": {...}}
    *.pt          checkpoints (``mmfer.engine.checkpoint.export_checkpoint``: fp16, no training state)

Checkpoints load with ``weights_only=True`` (no code runs from a file) and carry their label list, so
every branch's outputs are mapped onto ``EMOTIONS`` by name. Fusion is a weighted mean renormalised over
the branches that saw something, so a clip without a face is scored by audio alone and vice versa.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from torch import nn

from mmfer.data.cache import PreprocessSettings
from mmfer.data.kinds import CACHE_FACE_KINDS, MODALITY  # noqa: F401 - the kinds table; re-exported
from mmfer.errors import MmferError
from mmfer.fusion.methods import WEIGHTED_MEAN_METHODS
from mmfer.inference.inputs import FRAME_POOLINGS  # noqa: F401 - beside pool_frames; re-exported
from mmfer.labels import EMOTIONS, NUM_CLASSES

log = logging.getLogger(__name__)

BUNDLE_FILE = "bundle.json"
BUNDLE_FORMAT = 1
DEFAULT_DIR = Path(__file__).resolve().parents[1] / "weights"
BUILD_TOOL = "tools/build_default_model.py"

# Fusion methods that are a (per-class) weighted mean, so they stay meaningful when a modality is missing.
FUSION_METHODS = WEIGHTED_MEAN_METHODS

# How videos are decoded when no branch needs its training cache's settings (face_image + logmel models):
# 8 frames/s are plenty to average a face model over, and keep predict under 1 s per 3-s clip on 2 cores;
# 125 ms apart, every frame gets its own landmark fit, and the detector runs every 5 frames (0.6 s).
# max_frames is kept in the bundle's record but predict no longer stops there: it streams whole files, in
# bounded memory, and --duration limits the span.
DEFAULT_DECODE = PreprocessSettings(fps=8.0, max_frames=960, fit_every=1, detect_every=5)

# Options of a face_image branch: how aligned video crops are framed for it, and test-time views.
# ``tight_images``: a tight face image (FER2013-like, see mmfer.predict.TIGHT_CROP_MAX_SIDE) is taken ``as_is`` as
# the crop (models trained on such images), or goes the ``video`` way (mmfer.faces.crops.image_crop: shown in a
# frame, then the detector, landmarks, alignment and framing of a video frame; models trained on video crops).
# ``serves``: the inputs a branch scores: ``all`` (video frames and images), ``tight_images`` only (a model of
# tight face photos, taken as they are, beside a model of video crops that serves everything else), or
# ``detected_faces`` only (video frames and larger images, the faces the detector cuts, never a tight photo: a
# video-crop model that joins the video path without changing how tight photos read).
FACE_IMAGE_OPTIONS = {"framing": "fer2013", "image_views": 10, "frame_views": 2, "frame_pooling": "mean",
                      "tight_images": "as_is", "serves": "all"}
FRAMINGS = ("fer2013", "aligned")
TIGHT_IMAGES = ("as_is", "video")
SERVES = ("all", "tight_images", "detected_faces")
# How a face_image branch's per-frame probabilities become the clip's (mmfer.predict.pool_frames).


@dataclass
class Branch:
    """One trained model of a bundle: its checkpoint dict, the model (eval mode), fusion weight and options."""

    name: str
    checkpoint: dict[str, Any]
    model: nn.Module
    config: Any  # mmfer.engine.config.TrainConfig
    weight: np.ndarray  # (7,) per-class weights (a scalar weight repeated)
    temperature: float | None = None
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.model.input_kind

    @property
    def modality(self) -> str:
        return MODALITY[self.kind]

    @property
    def sample_rate(self) -> int:
        return int((self.checkpoint.get("preprocess") or {}).get("sample_rate") or 16000)

    @property
    def path(self) -> str:
        return str(self.checkpoint.get("path", self.name))


@dataclass
class Bundle:
    """The branches of a trained model and how to fuse them; ``source`` says where it was loaded from."""

    source: str
    branches: list[Branch]
    method: str = "weighted"
    decode: PreprocessSettings = DEFAULT_DECODE
    info: dict[str, Any] = field(default_factory=dict)  # bundle.json / weights.json content

    def modalities(self) -> list[str]:
        return [m for m in ("face", "audio") if any(b.modality == m for b in self.branches)]

    def of(self, modality: str) -> list[Branch]:
        return [b for b in self.branches if b.modality == modality]

    def frame_branches(self) -> list[Branch]:
        """The face branches that score video frames and larger images (all but tight-photo models)."""
        return [b for b in self.of("face") if b.options.get("serves", "all") in ("all", "detected_faces")]

    def to(self, device: Any) -> "Bundle":
        for b in self.branches:
            b.model.to(device)
        return self

    def fuse(self, probs: Mapping[str, np.ndarray | None]) -> np.ndarray | None:
        """Weighted mean over the branches with scores in ``probs`` (weights renormalised over them); None if none.

        The one weighted mean of ``mmfer fuse`` (``fusion.methods.weighted_mean``), after each branch's
        temperature: a branch without scores is left out, as ``mmfer fuse`` leaves out a branch's uniform row.
        """
        from mmfer.fusion.methods import apply_temperature, weighted_mean

        missing = np.array([probs.get(b.name) is None for b in self.branches])
        if missing.all():
            return None
        rows = []
        for b, gone in zip(self.branches, missing):
            q = np.full(NUM_CLASSES, 1.0 / NUM_CLASSES) if gone else \
                np.asarray(probs[b.name], dtype=np.float64).reshape(NUM_CLASSES)
            rows.append(apply_temperature(q, b.temperature) if b.temperature and not gone else q)
        w = np.stack([b.weight for b in self.branches])
        return weighted_mean(np.stack(rows)[:, None, :], w, missing=missing[:, None])[0]

    def describe(self) -> str:
        parts = [f"{b.name} ({b.checkpoint['model_name']}, {b.modality}, weight {_weight_text(b.weight)}"
                 + {"tight_images": ", tight images only)", "detected_faces": ", detected faces only)"}.get(
                     b.options.get("serves"), ")")
                 for b in self.branches]
        return f"{self.source}: {self.method} fusion of " + ", ".join(parts)


def _weight_text(w: np.ndarray) -> str:
    return f"{w[0]:.2f}" if np.allclose(w, w[0]) else "per class"


# ---------------------------------------------------------------- loading
def load_bundle(model: str | Path = "default") -> Bundle:
    """The model ``mmfer predict --model`` names: ``default``, a bundle folder, a RUN, a checkpoint or a FUSE folder."""
    if not isinstance(model, (str, os.PathLike)):
        raise MmferError(f"model {model!r}: give 'default' or the path of a bundle, RUN or FUSE folder or checkpoint")
    if str(model) == "default":
        if not (DEFAULT_DIR / BUNDLE_FILE).is_file():
            raise MmferError(
                f"{DEFAULT_DIR / BUNDLE_FILE}: missing, so mmfer was installed without its default model weights. "
                f"Rebuild them from a source checkout with `python {BUILD_TOOL} --face RUN --audio RUN "
                "--face-weight W --audio-weight W --out mmfer/weights` and reinstall, or pass --model RUN|FUSE"
            )
        return _from_bundle_dir(DEFAULT_DIR, source="default")
    p = Path(model)
    if not p.exists():
        raise MmferError(f"--model {model}: no such file or folder; expected 'default', a bundle folder "
                         f"({BUNDLE_FILE}), a run of `mmfer train` or a folder of `mmfer fuse` (weights.json)")
    if p.is_dir() and (p / BUNDLE_FILE).is_file():
        return _from_bundle_dir(p, source=str(p))
    if p.is_dir() and (p / "weights.json").is_file():
        return _from_fuse_dir(p)
    return _from_runs([(p.name if p.is_dir() else p.stem, p)], source=str(p))


def _branch(name: str, ckpt_path: Path, *, weight: Any = 1.0, temperature: float | None = None,
            options: Mapping[str, Any] | None = None) -> Branch:
    from mmfer.engine.checkpoint import load_checkpoint, model_from_checkpoint, warn_if_unfinished
    from mmfer.engine.config import config_from_dict

    ckpt = load_checkpoint(ckpt_path)  # weights_only=True
    where = ckpt["path"]
    import torch

    with torch.random.fork_rng(devices=[]):  # its random start, overwritten by the weights: an application's
        model = model_from_checkpoint(ckpt)  # random numbers untouched (training's teachers draw as they did)
    # (outputs remapped onto EMOTIONS by the checkpoint's label names)
    kind = getattr(model, "input_kind", None)
    if kind not in MODALITY:
        raise MmferError(f"{where}: model {ckpt['model_name']!r} reads {kind!r} input, which predict cannot build "
                         f"(supported: {', '.join(MODALITY)})")
    config = config_from_dict(ckpt["config"], where=f"{where}: config")
    warn_if_unfinished(Path(ckpt_path), config.optim.epochs, use="predictions")
    from mmfer.data.cache import CACHE_VERSION

    version = (ckpt.get("preprocess") or {}).get("cache_version")
    if version is not None and version != CACHE_VERSION:  # (scores refuses it: its cache cannot be made again)
        log.warning("%s: trained on a cache of an older mmfer (cache_version %s; this one writes %s): predict cuts "
                    "its input as this mmfer does, which it never saw; measure it on labelled clips before relying "
                    "on it, or train it again", where, version, CACHE_VERSION)
    w = np.asarray(weight, dtype=np.float64).reshape(-1)
    if w.size == 1:
        w = np.full(NUM_CLASSES, float(w[0]))
    if w.shape != (NUM_CLASSES,) or not np.all(np.isfinite(w)) or np.any(w < 0):
        raise MmferError(f"{where}: branch {name!r} weight {weight!r}: expected a non-negative number "
                         f"(or {NUM_CLASSES} per-class numbers)")
    if temperature is not None and (isinstance(temperature, bool) or not isinstance(temperature, (int, float))
                                    or not np.isfinite(temperature) or temperature <= 0):
        raise MmferError(f"{where}: branch {name!r} temperature {temperature!r}: expected a positive number "
                         "(a negative one would turn its predictions upside down); re-run `mmfer fuse --calibrate`")
    return Branch(name=name, checkpoint=ckpt, model=model, config=config, weight=w, temperature=temperature,
                  options=_options(kind, options or {}, where=f"{where}: branch {name!r}"))


def _options(kind: str, given: Mapping[str, Any], *, where: str) -> dict[str, Any]:
    """A branch's options with defaults filled in; unknown keys and bad values are errors naming them."""
    from mmfer.data.features import VIEWS

    allowed = FACE_IMAGE_OPTIONS if kind == "face_image" else {}
    bad = [k for k in given if k not in allowed]
    if bad:
        raise MmferError(f"{where}: unknown option(s) {', '.join(bad)} for a {kind} model "
                         f"(allowed: {', '.join(allowed) or 'none'})")
    out = {**allowed, **dict(given)}
    if kind == "face_image":
        if out["framing"] not in FRAMINGS:
            raise MmferError(f"{where}: framing {out['framing']!r}; expected one of {', '.join(FRAMINGS)}")
        if out["frame_pooling"] not in FRAME_POOLINGS:
            raise MmferError(f"{where}: frame_pooling {out['frame_pooling']!r}; expected one of "
                             f"{', '.join(FRAME_POOLINGS)}")
        if out["tight_images"] not in TIGHT_IMAGES:
            raise MmferError(f"{where}: tight_images {out['tight_images']!r}; expected one of {', '.join(TIGHT_IMAGES)}")
        if out["serves"] not in SERVES:
            raise MmferError(f"{where}: serves {out['serves']!r}; expected one of {', '.join(SERVES)}")
        if out["serves"] == "tight_images" and out["tight_images"] != "as_is":
            raise MmferError(f"{where}: serves tight_images needs tight_images as_is (a model of tight photos takes "
                             "them as they are)")
        for k in ("image_views", "frame_views"):
            if out[k] not in VIEWS:
                raise MmferError(f"{where}: {k}={out[k]!r}; expected one of {', '.join(map(str, VIEWS))}")
    return out


def _decode_settings(branches: Sequence[Branch], given: Mapping[str, Any] | None, *, where: str) -> PreprocessSettings:
    """How to decode videos: a cache-trained face branch's own preprocessing settings (they must agree),
    else DEFAULT_DECODE with the bundle's ``decode`` overrides."""
    trained = {}
    for b in branches:
        if b.kind in CACHE_FACE_KINDS:
            try:
                trained[b.name] = PreprocessSettings.from_dict(dict(b.checkpoint.get("preprocess") or {}))
            except MmferError as e:
                raise MmferError(f"{b.path}: unreadable preprocessing settings ({e})") from None
    if trained:
        first_name, first = next(iter(trained.items()))
        for name, s in trained.items():
            if s != first:
                raise MmferError(f"{where}: branches {first_name} and {name} were trained on caches preprocessed "
                                 f"differently ({'; '.join(first.differences(s))}); predict decodes a video once, "
                                 "so fuse branches trained on the same cache")
        return first
    if not given:
        return DEFAULT_DECODE
    try:
        return PreprocessSettings.from_dict({**dataclasses.asdict(DEFAULT_DECODE), **dict(given)})
    except MmferError as e:
        raise MmferError(f"{where}: decode: {e}") from None


def declared_face_backend(model: str | Path) -> str | None:
    """The face backend a bundle folder (or ``default``) decodes with, read from its ``bundle.json`` alone (no
    weights loaded); None where that cannot tell (a RUN or FUSE folder, an unreadable file)."""
    root = DEFAULT_DIR if str(model) == "default" else Path(model)
    try:
        info = json.loads((root / BUNDLE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    decode = info.get("decode") if isinstance(info, dict) else None
    return str((decode or {}).get("face_backend") or DEFAULT_DECODE.face_backend).strip().lower()


def declared_frame_poolings(model: str | Path | Bundle) -> set[str] | None:
    """How a model's single-image face branches pool frames, without loading it: for a bundle folder (or
    ``default``) each face branch's ``frame_pooling`` option in ``bundle.json`` (a branch's kind read from its
    checkpoint's header), for a RUN folder or checkpoint file the default; None where that cannot tell (a FUSE
    folder, an unreadable file). An empty set: no such branch, so no pooling to change."""
    import torch

    from mmfer.models.pretrained import refuse_compressed, safe_torch_load

    def kind(path: Path) -> Any:  # the pickled header alone where it can be (tensors mapped, not read)
        refuse_compressed(path, what="checkpoint")
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # a file of torch's older, non-zip format cannot be mapped
            ckpt = safe_torch_load(path, what="checkpoint")
        return ckpt.get("input_kind")

    default = FACE_IMAGE_OPTIONS["frame_pooling"]
    if isinstance(model, Bundle):
        return {b.options.get("frame_pooling") for b in model.branches if b.kind == "face_image"}
    root = DEFAULT_DIR if str(model) == "default" else Path(model)
    try:
        if (root / BUNDLE_FILE).is_file():
            specs = json.loads((root / BUNDLE_FILE).read_text(encoding="utf-8"))["branches"].values()
            named = [Path(str(spec["checkpoint"])) for spec in specs]
            if any(n.is_absolute() or ".." in n.parts for n in named):  # never read: load_bundle refuses them
                return None
            return {str((spec.get("options") or {}).get("frame_pooling", default)) for spec, n in zip(specs, named)
                    if kind(root / n) == "face_image"}
        from mmfer.engine.checkpoint import resolve_checkpoint

        return {default} if kind(resolve_checkpoint(root)) == "face_image" else set()
    except Exception:  # noqa: BLE001 - whatever it is, the option is then recorded as given
        return None


def pooling_override(given: str | None, own: set[str] | None) -> str | None:
    """``--frame-pooling`` as it changes a model whose face branches pool ``own``: None where it changes nothing
    (every face branch pools so already, or there is none), so that naming the model's own is the same run."""
    return None if given is None or (own is not None and (not own or own == {given})) else given


def _json_object(path: Path, *, fix: str) -> dict[str, Any]:
    """A model folder's JSON description as a dict; anything else (unreadable, not an object, nested past what the
    reader takes) is said with ``fix``."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, RecursionError) as e:
        why = "nested too deeply" if isinstance(e, RecursionError) else e
        raise MmferError(f"{path}: unreadable ({why}); {fix}") from None
    if not isinstance(info, dict):
        raise MmferError(f"{path}: not a JSON object but a {type(info).__name__}; {fix}")
    return info


def _from_bundle_dir(root: Path, *, source: str) -> Bundle:
    path = root / BUNDLE_FILE
    info = _json_object(path, fix=f"rebuild it with {BUILD_TOOL}")
    found = info.get("format")
    if found != BUNDLE_FORMAT:
        newer = isinstance(found, int) and found > BUNDLE_FORMAT
        raise MmferError(f"{path}: bundle format {found!r}, this mmfer reads format {BUNDLE_FORMAT}; "
                         + ("upgrade mmfer to read it" if newer else
                            f"a bundle of an older mmfer: rebuild it with {BUILD_TOOL}, or use the mmfer that built it"))
    labels = list(info.get("labels") or [])
    if sorted(labels) != sorted(EMOTIONS):
        raise MmferError(f"{path}: labels {labels} are not mmfer's seven classes {list(EMOTIONS)}")
    method = (info.get("fusion") or {}).get("method", "weighted")
    if method not in FUSION_METHODS:
        raise MmferError(f"{path}: fusion method {method!r}; expected one of {', '.join(FUSION_METHODS)}")
    specs = info.get("branches") or {}
    if not specs:
        raise MmferError(f"{path}: no branches")
    if not isinstance(specs, dict) or not all(isinstance(v, dict) for v in specs.values()):
        raise MmferError(f"{path}: branches must map each branch's name to its checkpoint, weight and options")
    branches = []
    for name, spec in specs.items():
        named = Path(str(spec.get("checkpoint", "")))
        ckpt = root / named
        if named.is_absolute() or ".." in named.parts:  # (a link the folder holds is the user's own doing: kept)
            raise MmferError(f"{path}: branch {name!r}: checkpoint {spec.get('checkpoint')!r} is not a name inside "
                             "the bundle folder; a bundle names its own weights (absolute paths and '..' are refused)")
        if not ckpt.is_file():
            raise MmferError(f"{ckpt}: checkpoint of branch {name!r} is missing from the bundle; "
                             f"rebuild it with {BUILD_TOOL}")
        branches.append(_branch(name, ckpt, weight=spec.get("weight", 1.0), temperature=spec.get("temperature"),
                                options=spec.get("options")))
    return Bundle(source=source, branches=branches, method=method,
                  decode=_decode_settings(branches, info.get("decode"), where=str(path)), info=info)


def _from_runs(named: Sequence[tuple[str, Path]], *, source: str, weights: Sequence[Any] | None = None,
               temperatures: Sequence[float] | None = None, method: str = "weighted",
               info: dict[str, Any] | None = None) -> Bundle:
    from mmfer.engine.checkpoint import resolve_checkpoint

    branches = []
    for i, (name, run) in enumerate(named):
        branches.append(_branch(name, resolve_checkpoint(run), weight=1.0 if weights is None else weights[i],
                                temperature=None if temperatures is None else temperatures[i]))
    return Bundle(source=source, branches=branches, method=method,
                  decode=_decode_settings(branches, None, where=source), info=dict(info or {}))


def _from_fuse_dir(root: Path) -> Bundle:
    """Every branch of ``mmfer fuse``'s weights.json, from the run folders its Val score files came from."""
    path = root / "weights.json"
    info = _json_object(path, fix="re-run `mmfer fuse`")
    method = info.get("method")
    if method not in FUSION_METHODS:
        raise MmferError(f"{path}: predict cannot serve fusion method {method!r}: it has no way to fuse a file that "
                         "lacks a modality (a video without sound or face), which predict must; it serves "
                         f"{', '.join(FUSION_METHODS)} (re-run `mmfer fuse --method weighted`)")
    names = list(info.get("branches") or [])
    runs = list(info.get("runs") or [None] * len(names))
    val = list((info.get("inputs") or {}).get("val") or [])
    named = []
    for i, name in enumerate(names):
        run = _find_run(runs[i] if i < len(runs) else None, val[i] if i < len(val) else None, root)
        if run is None:
            shown = val[i] if i < len(val) else "?"
            raise MmferError(f"{path}: cannot find the run of branch {name!r}: its Val scores {shown} are not inside "
                             "a run folder with best.pt. Fuse the scores_Val.csv files inside the runs of "
                             "`mmfer train`, or pass --model RUN for one branch")
        named.append((name, run))
    _check_runs_unchanged(path, names, [run for _, run in named], info.get("checkpoint_sha256"))
    weights = info.get("weights")
    if method == "mean" or weights is None:
        weights = [1.0] * len(names)
    if not isinstance(weights, list) or len(weights) != len(names):
        raise MmferError(f"{path}: 'weights' must be a list with one entry per branch ({len(names)}), got {weights!r}")
    temps = info.get("temperatures") if info.get("calibrate") else None
    if temps is not None and (not isinstance(temps, list) or len(temps) != len(names)):
        raise MmferError(f"{path}: 'temperatures' must be a list with one number per branch ({len(names)})")
    return _from_runs(named, source=str(root), weights=weights, temperatures=temps, method=method, info=info)


def _check_runs_unchanged(path: Path, names: list[str], runs: list[Path], digests: Any) -> None:
    """A branch retrained after ``mmfer fuse`` (its checkpoint no longer the one whose Val scores set its weight)
    is refused: the fused model would silently be another one."""
    for name, run in _changed_runs(names, runs, digests)[:1]:
        raise MmferError(f"{path}: the checkpoint of branch {name!r} in {run} changed after `mmfer fuse` tuned its "
                         "weight on its Val scores (retrained?). Re-run `mmfer scores` for that run and `mmfer "
                         "fuse`, or restore the checkpoint")


def _changed_runs(names: list[str], runs: list[Path | None], digests: Any) -> list[tuple[str, Path]]:
    """(branch, run) whose checkpoint is no longer the one fuse recorded; weights.json of older mmfer records no
    digests, and a run not found is not judged."""
    from mmfer.fusion.fuse import checkpoint_digest

    if not isinstance(digests, list) or len(digests) != len(names):
        return []
    return [(name, run) for name, run, want in zip(names, runs, digests)
            if want and run is not None and checkpoint_digest(run) != want]


def branches_changed_since_fuse(fuse_dir: str | Path) -> list[tuple[str, Path]]:
    """The branches of a ``mmfer fuse`` folder retrained since it fused them: its fused_*.csv are then the fusion
    of the checkpoints before (which ``mmfer submit`` says). [] where the folder has no readable weights.json."""
    root = Path(fuse_dir)
    try:
        info = _json_object(root / "weights.json", fix="re-run `mmfer fuse`")
    except (MmferError, OSError):
        return []
    names = [str(n) for n in info.get("branches") or []]
    runs = list(info.get("runs") or [None] * len(names))
    val = list((info.get("inputs") or {}).get("val") or [])
    found = [_find_run(runs[i] if i < len(runs) else None, val[i] if i < len(val) else None, root)
             for i in range(len(names))]
    return _changed_runs(names, found, info.get("checkpoint_sha256"))


def _find_run(recorded: str | None, val_scores: str | None, fuse_dir: Path) -> Path | None:
    """A branch's run folder: as recorded by fuse, else the folder of its Val score file (as given, or
    relative to the fuse folder's parent), if it holds a checkpoint."""
    from mmfer.engine.checkpoint import run_checkpoint

    candidates = [Path(recorded)] if recorded else []
    if val_scores:
        v = Path(val_scores)
        candidates += [v.parent] + ([fuse_dir.parent / v.parent] if not v.is_absolute() else [])
    return next((c for c in candidates if run_checkpoint(c) is not None), None)


# ---------------------------------------------------------------- writing
def run_metrics(run: str | Path) -> dict[str, Any]:
    """What a run reports about its held-out data: the best epoch's Val figures and how long it trained."""
    from mmfer.engine.checkpoint import load_checkpoint, resolve_checkpoint

    ckpt = load_checkpoint(resolve_checkpoint(run))
    best = dict(ckpt.get("best") or {})
    config = dict(ckpt.get("config") or {})
    out: dict[str, Any] = {
        "config": config.get("name"),
        "model": ckpt["model_name"],
        "model_kwargs": dict(ckpt.get("model_kwargs") or {}),
        "best_epoch": best.get("epoch"),
        "selected_by": best.get("metric"),
        "val_accuracy": best.get("val_accuracy"),
        "val_uar": best.get("val_uar"),
        "epochs": (config.get("optim") or {}).get("epochs"),
    }
    log_path = Path(ckpt["path"]).parent / "log.jsonl"
    if log_path.is_file():
        rows = [json.loads(line) for line in log_path.read_text(encoding="utf-8").splitlines() if line.strip()]
        out["epochs_trained"] = len(rows)
        out["train_seconds"] = round(sum(float(r.get("seconds") or 0) for r in rows), 1)
    return out


def write_bundle(
    out: str | Path,
    branches: Sequence[Mapping[str, Any]],
    *,
    method: str = "weighted",
    decode: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
    half: bool = True,
) -> Path:
    """Export each branch's checkpoint into ``out`` and describe them in ``out/bundle.json``.

    Each branch is a mapping: ``name``, ``run`` (RUN folder or checkpoint), ``weight``, and optionally
    ``file`` (checkpoint name in the bundle, default ``<name>.pt``), ``options``, ``temperature`` (the
    branch's probabilities are calibrated by it before fusion), ``metrics`` (default: the run's, ``run_metrics``;
    a branch kept from another bundle brings that bundle's) and free-text ``data`` / ``licence``. The bundle is loaded back before returning, so a bundle that does not load is never left.
    """
    from mmfer.engine.checkpoint import export_checkpoint, load_checkpoint

    if method not in FUSION_METHODS:
        raise MmferError(f"write_bundle: method {method!r}; expected one of {', '.join(FUSION_METHODS)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    specs: dict[str, Any] = {}
    for b in branches:
        name = str(b["name"])
        if name in specs:
            raise MmferError(f"write_bundle: branch name {name!r} given twice")
        file = str(b.get("file") or f"{name}.pt")
        if any(spec["checkpoint"] == file for spec in specs.values()):  # one would overwrite the other
            raise MmferError(f"write_bundle: checkpoint file {file!r} given to two branches")
        export_checkpoint(b["run"], out / file, half=half)
        kind = load_checkpoint(out / file).get("input_kind")
        specs[name] = {
            "checkpoint": file,
            "weight": float(b["weight"]),
            "options": _options(kind, b.get("options") or {}, where=f"write_bundle: branch {name!r}"),
            **({"temperature": float(b["temperature"])} if b.get("temperature") is not None else {}),
            "metrics": dict(b["metrics"]) if b.get("metrics") else run_metrics(b["run"]),
            **{k: b[k] for k in ("data", "licence") if b.get(k)},
        }
    info = {
        "format": BUNDLE_FORMAT,
        "labels": list(EMOTIONS),
        "fusion": {"method": method, "note": "weighted mean of the branch probabilities; weights are renormalised "
                                             "over the modalities a clip has (no face: audio alone, and so on)"},
        "branches": specs,
        # every setting, not only the overrides, so a later change of library defaults cannot change
        # how the shipped model sees a video
        "decode": dataclasses.asdict(PreprocessSettings.from_dict({**dataclasses.asdict(DEFAULT_DECODE),
                                                                   **dict(decode or {})})),
        "provenance": dict(provenance or {}),
    }
    from mmfer.outputs import write_file

    write_file(out / BUNDLE_FILE, json.dumps(info, indent=1) + "\n")  # whole or not at all, never through a link
    load_bundle(out)
    return out / BUNDLE_FILE
