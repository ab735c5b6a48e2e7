"""Pretrained starts: load a backbone's weights from a local file (``init.backbone_from``).

Why: AFEW has a few hundred training clips; every EmotiW winner started from weights learnt elsewhere
(ImageNet or VGG-Face CNNs, C3D on Sports-1M). mmfer never downloads them: the user supplies the file,
and weights are matched by name (common prefixes such as ``module.``, ``backbone.`` and ``net.`` ignored)
and shape, or, where the names differ entirely but the layers line up (a C3D Sports-1M state dict), the
convolution kernels by position when every shape agrees. What was loaded and what was skipped is logged,
and a source that fits nothing, or a layer whose shape differs, is an error naming it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from mmfer.errors import MmferError

log = logging.getLogger(__name__)

_PREFIXES = ("module.", "model.", "backbone.", "encoder.", "net.", "features_extractor.")
# Classifier layers of the source: another number of classes, never loaded.
_HEADS = ("fc.", "classifier.", "fc8.", "head.", "heads.", "proj.", "blocks.5.proj.")


def backbone_of(model: nn.Module) -> nn.Module:
    """The part of a branch that a pretrained file initialises: its face encoder, or the whole network."""
    for name in ("encoder", "backbone", "net"):
        part = getattr(model, name, None)
        if isinstance(part, nn.Module):
            return part
    return model


def _normalise(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for p in _PREFIXES:
            if key.startswith(p):
                key, changed = key[len(p):], True
    return key


def _state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model_state", "model_state_dict", "model", "net"):
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                return dict(inner)
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return dict(obj)
    raise MmferError(f"{path}: holds no state dict (a mapping of parameter names to tensors)")


def refuse_compressed(path: Path, *, what: str) -> None:
    """A torch file (a zip) with a compressed entry, which ``torch.save`` never writes, is refused unread: it could
    unpack to a thousand times its size (a 195-KB file held 200 MB)."""
    import zipfile

    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            packed = [i.filename for i in z.infolist() if i.compress_type != zipfile.ZIP_STORED]
        if packed:
            raise MmferError(f"{path}: {len(packed)} of its entries are compressed (e.g. {packed[0]}), which "
                             f"torch never writes; not loaded as a {what}")


def safe_torch_load(path: str | Path, *, what: str) -> Any:
    """``torch.load(path, weights_only=True)`` (no code runs from the file) of a file whose zip entries are
    stored as ``torch.save`` stores them: a compressed entry, which torch never writes, could unpack to a thousand
    times the file's size (a 195-KB file took 200 MB), so it is refused unread. ``what`` names the file's kind."""
    path = Path(path)
    try:
        refuse_compressed(path, what=what)
        return torch.load(path, map_location="cpu", weights_only=True)
    except MmferError:
        raise
    except Exception as e:  # noqa: BLE001 - torch and zipfile raise many types for bad files
        raise MmferError(f"{path}: not a {what} torch can load safely ({type(e).__name__}: {e})") from None


def load_backbone(model: nn.Module, path: str | Path) -> dict[str, list[str]]:
    """Copy matching weights from the file at ``path`` into ``backbone_of(model)``; returns
    ``{"loaded": [...], "skipped": [...], "missing": [...]}`` (target keys loaded and left, source keys unused)."""
    path = Path(path)
    if not path.is_file():
        raise MmferError(f"init.backbone_from: {path} not found; give a local weight file (.pt/.pth state dict)")
    source = _state_dict(safe_torch_load(path, what="weight file"), path)
    target_module = backbone_of(model)
    target = target_module.state_dict()
    by_name = {_normalise(k): k for k in source}
    loaded: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for tk, tv in target.items():
        sk = by_name.get(_normalise(tk))
        if sk is None:
            continue
        sv = source[sk]
        if tuple(sv.shape) != tuple(tv.shape):
            adapted = _adapt_channels(sv, tv)
            if adapted is None:
                if _normalise(sk).startswith(_HEADS):
                    continue
                raise MmferError(f"{path}: {sk} has shape {tuple(sv.shape)}, this model's {tk} has "
                                 f"{tuple(tv.shape)}; build the branch like the source network (arch, width)")
            sv = adapted
        loaded[tk] = sv.to(tv.dtype)
        used.add(sk)
    if not loaded:
        loaded, used = _by_position(source, target)
    if not loaded:
        raise MmferError(f"{path}: none of its {len(source)} tensors fit {type(target_module).__name__} "
                         f"(source keys e.g. {', '.join(list(source)[:3])}; target e.g. {', '.join(list(target)[:3])})")
    target_module.load_state_dict(loaded, strict=False)
    report = {"loaded": sorted(loaded), "missing": sorted(k for k in target if k not in loaded),
              "skipped": sorted(k for k in source if k not in used)}
    log.info("%s: loaded %d tensors into %s; %d of its own left as they were, %d of the file's unused%s", path,
             len(report["loaded"]), type(target_module).__name__, len(report["missing"]), len(report["skipped"]),
             f" (e.g. {', '.join(report['skipped'][:3])})" if report["skipped"] else "")
    return report


def _adapt_channels(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor | None:
    """An RGB stem for a grey-scale model: the kernel summed over its 3 input channels (keeps the response
    to a grey image the same)."""
    if src.dim() >= 4 and dst.dim() == src.dim() and src.shape[1] == 3 and dst.shape[1] == 1 and (
            src.shape[0] == dst.shape[0] and src.shape[2:] == dst.shape[2:]):
        return src.sum(dim=1, keepdim=True)
    return None


def _by_position(source: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]):
    """Convolution kernels in order, when the source names nothing alike but every kernel's shape agrees."""
    src = [(k, v) for k, v in source.items() if v.dim() in (4, 5)]
    dst = [(k, v) for k, v in target.items() if v.dim() in (4, 5)]
    if not src or len(src) != len(dst) or any(tuple(a.shape) != tuple(b.shape) for (_, a), (_, b) in zip(src, dst)):
        return {}, set()
    return {tk: sv.to(tv.dtype) for (_, sv), (tk, tv) in zip(src, dst)}, {sk for sk, _ in src}
