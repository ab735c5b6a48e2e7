"""Model names -> keyword-only builders, so a config can name a branch and its kwargs.

Every model returned has ``forward(x, mask=None) -> logits (B, num_classes)`` (mask bool, True = valid)
and an ``input_kind`` attribute, one of the kinds of ``mmfer.data.kinds`` ("face_window", "face_sequence",
"landmarks", "logmel", "audio_stats" or "face_image"), which tells the training engine which dataset feeds it.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

import torch
from torch import nn

from mmfer.data.kinds import INPUT_KINDS
from mmfer.errors import MmferError
from mmfer.labels import EMOTIONS, NUM_CLASSES
from mmfer.models.audio_cnn import build_audio_cnn
from mmfer.models.audio_stats import build_audio_stats
from mmfer.models.c3d import build_c3d, build_video3d
from mmfer.models.cnn_lstm import build_cnn_lstm
from mmfer.models.face_frame import build_face_frame
from mmfer.models.landmark_brnn import build_landmark_brnn

MODELS: dict[str, Callable[..., nn.Module]] = {
    "c3d": build_c3d,
    "video3d": build_video3d,
    "cnn_lstm": build_cnn_lstm,
    "landmark_brnn": build_landmark_brnn,
    "audio_cnn": build_audio_cnn,
    "audio_stats": build_audio_stats,
    "face_frame": build_face_frame,
}


def register_model(name: str, builder: Callable[..., nn.Module], *, replace: bool = False) -> None:
    """Add a model under ``name`` (a keyword-only builder, as the ones above), so configs, ``train`` and
    ``build_model`` can name it. A name already taken is an error unless ``replace``: a run trained with a
    built-in of that name would no longer load. From the command line, ``mmfer --import MODULE ...`` imports the
    module that registers it."""
    if not isinstance(name, str) or not name.strip():
        raise MmferError(f"register_model: the name must be a non-empty string, got {name!r}")
    if not callable(builder):
        raise MmferError(f"register_model({name!r}): the builder must be callable, got {type(builder).__name__}")
    if name in MODELS and MODELS[name] is not builder and not replace:
        taken = MODELS[name]  # (a functools.partial has no __name__)
        raise MmferError(f"register_model: {name!r} is already a model ({getattr(taken, '__module__', '?')}."
                         f"{getattr(taken, '__name__', type(taken).__name__)}); choose another name, or pass replace=True")
    MODELS[name] = builder


def registering_module(name: str) -> str | None:
    """The module whose code registered model ``name``, for a run to name when it is loaded without it; None for
    mmfer's own models."""
    module = getattr(MODELS.get(name), "__module__", None)
    return None if module is None or module == "mmfer" or module.startswith("mmfer.") else module


def builder_kwargs(name: str) -> dict[str, Any]:
    """The keyword arguments a builder accepts, with their defaults: what a config's model.kwargs may set."""
    return {k: p.default for k, p in inspect.signature(_builder(name)).parameters.items()}


def _builder(name: str) -> Callable[..., nn.Module]:
    if name not in MODELS:
        raise MmferError(f"unknown model {name!r}; available models: {', '.join(sorted(MODELS))} (a model registered "
                         "by your own code: import it first, `mmfer --import MODULE` on the command line)")
    return MODELS[name]


def check_model_args(name: str, kwargs: dict[str, Any]) -> None:
    """An unknown model name or argument is an error listing what is allowed (configs call this on load)."""
    params = inspect.signature(_builder(name)).parameters
    allowed = list(params)
    bad = [k for k in kwargs if k not in allowed]
    if bad:
        raise MmferError(
            f"model {name!r}: unknown argument{'s' if len(bad) > 1 else ''} {', '.join(map(repr, bad))}; "
            f"allowed: {', '.join(allowed)}"
        )
    if "num_classes" in kwargs and kwargs["num_classes"] != NUM_CLASSES:  # else a shape error after the data loads
        raise MmferError(f"model {name!r}: argument 'num_classes': {kwargs['num_classes']!r}, but every model answers "
                         f"the {NUM_CLASSES} classes {', '.join(EMOTIONS)} (leave it out)")
    for key, value in kwargs.items():  # of the default's kind ("hidden: fast" failed deep in torch, unnamed)
        default = params[key].default
        kinds = {bool: (bool,), int: (int,), float: (int, float), str: (str,)}.get(type(default))
        if kinds and (not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds)):
            raise MmferError(f"model {name!r}: argument {key!r}: expected {type(default).__name__} like its default "
                             f"{default!r}, got {value!r}")


def check_model_builds(name: str, kwargs: dict[str, Any]) -> None:
    """Build the model on torch's meta device (no memory, no weights) so that a value its builder refuses (dropout
    2, an unknown encoder) is said as a config loads, not after the data has. A builder that cannot build there
    (one that reads weights) is left to ``build_model`` at run time."""
    try:
        with torch.device("meta"):
            _builder(name)(**kwargs)
    except MmferError as e:
        raise MmferError(str(e) if str(e).startswith((f"model {name!r}", f"{name}:")) else f"model {name!r}: {e}") from None
    except ValueError as e:  # a value refused (nn.Dropout's p), unless the meta device itself was refused
        if "meta" not in str(e):
            raise MmferError(f"model {name!r}: {e}") from None
    except Exception:  # noqa: BLE001 - not a refused value (numpy on a meta tensor...): the run builds it for real
        pass


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Build model ``name`` with ``kwargs``; unknown names and keys are errors listing what is allowed."""
    check_model_args(name, kwargs)
    try:
        model = _builder(name)(**kwargs)
    except (TypeError, ValueError, MmferError) as e:  # a value refused (dropout 2, an unknown encoder): say which model
        raise MmferError(str(e) if str(e).startswith((f"model {name!r}", f"{name}:")) else f"model {name!r}: {e}") from None
    if getattr(model, "input_kind", None) not in INPUT_KINDS:  # a contract check for new builders
        raise MmferError(f"model {name!r}: builder returned a model without a known input_kind")
    try:
        takes_mask = "mask" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):  # a forward inspect cannot read (a C extension): trusted
        takes_mask = True
    if not takes_mask:  # every engine and predict call passes it
        raise MmferError(f"model {name!r}: its forward must take forward(x, mask=None) (mask: True where valid)")
    return model
