"""Continuing a ``predict`` run: the rows an earlier run left in ``--out``, and the record beside it of what wrote
them (``.NAME.run.json``: model, options, working folder, finished or not).

The record lets the same command, run again after a kill (a requeued job), keep the finished rows without
``--resume``, refuses ``--resume`` with another model or options (the CSV alone cannot tell whose its rows are),
and finds rows written with paths relative to another working folder."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mmfer.data.cache import safe_text
from mmfer.errors import MmferError
from mmfer.inference.result import Prediction

log = logging.getLogger(__name__)

RECORD_FORMAT = 1


def record_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(f".{out.name}.run.json")


def model_key(model: Any) -> str:
    """What names the model of a run: ``default``, a folder's absolute path, or a loaded model's source."""
    from mmfer.inference.bundle import Bundle
    from mmfer.inference.predictor import Predictor

    if isinstance(model, Predictor):
        return model.bundle.source
    if isinstance(model, Bundle):
        return model.source
    return "default" if str(model) == "default" else os.path.abspath(model)


def run_settings(*, model: Any, **options: Any) -> dict[str, Any]:
    """Everything that decides a row's figures (not where outputs go): rows of two settings never mix."""
    from mmfer import __version__

    return {"model": model_key(model), "mmfer": __version__, **options}


def read_record(out: str | Path) -> dict[str, Any] | None:
    """The record of the run that wrote ``out``, or None (none, unreadable, or ``out`` gone)."""
    path = record_path(out)
    if not Path(out).is_file() or not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("format") == RECORD_FORMAT else None


def write_record(out: str | Path, settings: dict[str, Any], *, finished: bool) -> None:
    """Say what writes ``out`` (before the work) and that it finished (after): never a reason to stop a run."""
    from mmfer.outputs import write_file

    record = {"format": RECORD_FORMAT, "finished": finished, "cwd": os.getcwd(), "settings": settings}
    try:
        write_file(record_path(out), json.dumps(record, indent=1) + "\n")
    except OSError as e:
        log.debug("%s: not written (%s)", record_path(out), e)


def differences(recorded: dict[str, Any], settings: dict[str, Any]) -> list[str]:
    keys = sorted(set(recorded) | set(settings))
    return [f"{k} {recorded.get(k)!r} then, {settings.get(k)!r} now" for k in keys if recorded.get(k) != settings.get(k)]


def resume_wanted(out: str | Path | None, settings: dict[str, Any], *, resume: bool, clash: Sequence[str]) -> str:
    """"explicit" (--resume), "implied" (``out`` was left by an interrupted run of these settings: the same
    command again keeps its rows, as preprocess and train --folds do), or "" (``out`` is replaced)."""
    record = read_record(out) if out is not None else None
    if resume:
        if record is not None and differences(record.get("settings", {}), settings):
            raise MmferError(f"--resume: {out} holds rows of another model or options "
                             f"({'; '.join(differences(record.get('settings', {}), settings))}); kept, they would "
                             "mix with this run's: run without --resume (its rows are replaced) or write to "
                             "another --out")
        return "explicit"
    if (record is None or record.get("finished") or clash
            or differences(record.get("settings", {}), settings)):
        return ""
    return "implied"


def rows_to_resume(out, inputs, *, implied: bool = False, **others) -> dict[str, Prediction] | None:
    """The rows of an earlier run's predictions CSV, by path, for the inputs it holds. Implied (see
    :func:`resume_wanted`), None where its rows are of other inputs: then it is replaced, as asked."""
    from mmfer.inference.outputs import read_predictions
    from mmfer.labels import EMOTIONS

    if out is None:
        raise MmferError("--resume needs --out: the predictions CSV of the run to continue")
    clash = [f"--{k}" for k, v in others.items() if v is not None]
    if clash:  # they need every file analysed, and the kept rows were not analysed again
        raise MmferError(f"--resume keeps the rows of {out} without analysing their files again, so it cannot write "
                         f"{', '.join(clash)} too; leave them out, or run without --resume")
    if not Path(out).is_file():
        log.info("--resume: %s does not exist yet: every input is analysed", out)
        return {}
    record = read_record(out) or {}
    cwd = record.get("cwd") or os.getcwd()  # relative paths in the rows are of the folder the run started in
    by_text = {safe_text(str(p)): (str(p), k) for p, k in inputs}  # as the CSV's path column writes them
    by_place = {os.path.abspath(p): (str(p), k) for p, k in inputs}  # pf6 and /abs/pf6 name the same files
    done = {}
    retried = torn = 0
    not_given = []
    for row in read_predictions(out):
        if any(v is None for v in row.values()):  # a last line cut short by a kill or a full disk
            torn += 1
            continue
        found = (by_text.get(row["path"]) or by_place.get(os.path.abspath(row["path"]))
                 or by_place.get(os.path.abspath(os.path.join(cwd, row["path"]))))
        if found is None:
            not_given.append(row["path"])
            continue
        path, kind = found
        probs = [row.get(c, "") for c in EMOTIONS]
        if not all(probs):  # an error row: the file may have been re-copied or fixed since, so it is tried again
            retried += 1
            continue
        done[path] = Prediction(
            path=path, clip_id=row["clip_id"], kind=kind, probs=np.array([float(v) for v in probs]),
            face_ratio=float(row["face_ratio"]) if row.get("face_ratio") else None,
            modalities=row.get("modalities", ""), warning=row.get("warning", ""))
    if not_given:  # rows of files not given this time (another folder, or named from another working folder)
        if implied:
            log.warning("%s was left by an interrupted run over other inputs (e.g. %s): it is replaced by this "
                        "run's rows", out, not_given[0])
            return None
        raise MmferError(f"--resume: {len(not_given)} row(s) of {out} are of files not among these inputs (e.g. "
                         f"{not_given[0]}), which the continued {out} would leave out: give the inputs of the run it "
                         "continues, or write to another --out")
    if torn:
        log.warning("%s: its last row was cut short (an interrupted write): that file is analysed again", out)
    again = f" ({retried} of them error rows, tried again)" if retried else ""
    if implied:
        log.warning("%s was left by an interrupted run of this same model and options: its %d finished row(s) are "
                    "kept and the other %d input(s) analysed%s (delete it, or name another --out, to start over)",
                    out, len(done), len(inputs) - len(done), again)
    else:
        log.info("--resume: %d of %d input(s) already in %s; analysing the other %d%s", len(done), len(inputs), out,
                 len(inputs) - len(done), again)
    if done and not implied and not record:  # the CSV alone does not say whose rows they are
        log.warning("--resume keeps those %d row(s) as %s holds them: they must come from this same model and "
                    "options (no record of its run beside it, %s, to check)", len(done), out,
                    record_path(out).name)
    return done
