"""Continuing a ``predict`` run: the rows an earlier run left in ``--out``, and the record beside it of what wrote
them (``.NAME.run.json``: model, options, working folder, finished or not).

The record lets the same command, run again after a kill (a requeued job), keep the finished rows without
``--resume``, refuses ``--resume`` with another model or options (the CSV alone cannot tell whose its rows are),
and finds rows written with paths relative to another working folder."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mmfer.text import safe_text
from mmfer.errors import MmferError
from mmfer.inference.result import Prediction

log = logging.getLogger(__name__)

# 5: the device type; 4: frame_pooling None where it is the model's own; 3: weights by content; 2: by sizes, times
RECORD_FORMAT = 5
_WEIGHT_SUFFIXES = (".pt", ".json", ".yaml")


def record_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(f".{out.name}.run.json")


_FILE_HASHES: dict[tuple[str, int, int], str] = {}  # (real path, size, mtime_ns) -> content hash, per process


def _file_hash(path: Path) -> str:
    st = path.stat()
    key = (os.path.realpath(path), st.st_size, st.st_mtime_ns)
    if key not in _FILE_HASHES:
        h = hashlib.sha1()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _FILE_HASHES[key] = h.hexdigest()
    return _FILE_HASHES[key]


def _fingerprint(place: Path) -> str:
    """The contents of a model's weight files (a folder's, two levels down): retrained in place, it differs; a copy
    on another machine, or the same files installed again, is the same (about 30 ms for the default model's 25 MB,
    once per process)."""
    try:
        files = [place] if place.is_file() else sorted(
            p for p in [*place.glob("*"), *place.glob("*/*")] if p.suffix in _WEIGHT_SUFFIXES and p.is_file())
        parts = [f"{p.relative_to(place) if p != place else p.name}:{_file_hash(p)}" for p in files]
    except OSError:
        return ""
    return hashlib.sha1("\n".join(parts).encode()).hexdigest()[:16]


def model_key(model: Any) -> dict[str, str]:
    """What names the model of a run: ``default`` or the real path of its folder or file, and a fingerprint of
    its weight files (a folder retrained in place, a link pointed elsewhere, a rebuilt default differ)."""
    from mmfer.inference.bundle import DEFAULT_DIR, Bundle
    from mmfer.inference.predictor import Predictor

    source = (model.bundle.source if isinstance(model, Predictor) else model.source if isinstance(model, Bundle)
              else str(model))
    place = DEFAULT_DIR if source == "default" else Path(source)
    real = os.path.realpath(place)
    return {"model": "default" if real == os.path.realpath(DEFAULT_DIR) else real, "weights": _fingerprint(place)}


def run_settings(*, model: Any, frame_pooling: str | None, speech_check: bool, face_backend: str | None = None,
                 device: str = "auto", **options: Any) -> dict[str, Any]:
    """Everything that decides a row's figures (not where outputs go): rows of two settings never mix. A loaded
    Predictor brings its own pooling, speech check, face backend and device; ``frame_pooling`` and ``face_backend``
    None are the model's own. The device counts by its type: a GPU's figures differ from a CPU's in the last digits
    (and a CPU's across CPU kinds, docs/predict.md), so a run resumed on the other kind would mix them."""
    from mmfer import __version__
    from mmfer.engine.device import resolve_device
    from mmfer.inference.predictor import Predictor

    if isinstance(model, Predictor):
        frame_pooling = model.frame_pooling  # another pooling than the model's own, or None
        speech_check = model.speech_check
        face_backend = model.face_backend  # another detector than the model's own, or None
        device = model.device
    elif frame_pooling is not None:  # the model's own named: the same run as without the option
        from mmfer.inference.bundle import declared_frame_poolings, pooling_override

        frame_pooling = pooling_override(frame_pooling, declared_frame_poolings(model))
    plain = {k: (float(v) if isinstance(v, (int, float, np.number)) and not isinstance(v, bool) else v)
             for k, v in options.items()}  # numpy numbers as JSON numbers
    return {**model_key(model), "mmfer": __version__, "frame_pooling": frame_pooling,
            "speech_check": bool(speech_check), **({"face_backend": face_backend} if face_backend else {}),
            "device": resolve_device(device).type, **plain}


def _csv_stamp(out: str | Path) -> list[int]:
    st = Path(out).stat()
    return [st.st_size, st.st_mtime_ns]


def read_record(out: str | Path, *, older: bool = False) -> dict[str, Any] | None:
    """The record of the run that wrote ``out`` as it is now, or None (none, unreadable, ``out`` gone, or ``out``
    rewritten since: by another run whose record failed, a merge, a copy, a spreadsheet). ``older``: a record of
    an older format too (compare it through ``unknown_keys``)."""
    path = record_path(out)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        stamp = _csv_stamp(out)
    except (OSError, ValueError):
        return None
    if (not isinstance(record, dict) or not isinstance(record.get("settings"), dict) or record.get("csv") != stamp
            or record.get("format") not in ((RECORD_FORMAT, *OLDER_RECORD_FORMATS) if older else (RECORD_FORMAT,))):
        return None
    pooling = record["settings"].get("frame_pooling")
    if record["format"] < 4 and isinstance(pooling, str):  # then recorded as given, the model's own too
        from mmfer.inference.bundle import declared_frame_poolings, pooling_override

        record["settings"]["frame_pooling"] = pooling_override(pooling, declared_frame_poolings(
            record["settings"].get("model", "")))
    return record


OLDER_RECORD_FORMATS = (2, 3, 4)  # records an older mmfer wrote, still read (their settings through unknown_keys)


def unknown_keys(record: dict[str, Any] | None) -> set[str]:
    """The settings an older record cannot tell as this version means them: format 2 fingerprinted weight files by
    size and time (a reinstall changed them), format 3 recorded a Predictor's frame pooling as a list, and formats
    before 5 did not record the device."""
    fmt = (record or {}).get("format", RECORD_FORMAT)
    keys = {"weights"} if fmt < 3 else set()
    if fmt < 5:
        keys.add("device")
    if fmt < 4 and isinstance(record["settings"].get("frame_pooling"), list):
        keys.add("frame_pooling")
    return keys


def older_note(out: str | Path, record: dict[str, Any] | None) -> str:
    """' (its record, NAME, is of an older mmfer: ...)' where ``record`` is of an older format, else ''."""
    if not record or record.get("format") == RECORD_FORMAT:
        return ""
    unknown = unknown_keys(record)
    what = (" that cannot tell " + " or ".join(sorted(k.replace("_", " ") for k in unknown))) if unknown else ""
    return f" (its record, {record_path(out).name}, is of an older mmfer{what})"


def write_record(out: str | Path, settings: dict[str, Any], *, finished: bool) -> bool:
    """Say what wrote ``out`` just now (call it right after each write of ``out``); never a reason to stop a run:
    False where it could not be written (the same command then replaces ``out``, as without a record)."""
    from mmfer.outputs import write_file

    try:
        record = {"format": RECORD_FORMAT, "finished": finished, "cwd": os.getcwd(), "csv": _csv_stamp(out),
                  "settings": settings}
        write_file(record_path(out), json.dumps(record, indent=1, default=str) + "\n")
    except Exception as e:  # noqa: BLE001 - a record is a convenience: a name too long, a full disk, ...
        log.warning("%s: not written (%s): the same command would analyse every file again; --resume keeps the "
                    "rows", record_path(out), e)
        return False
    return True


def differences(recorded: dict[str, Any], settings: dict[str, Any], *, unknown: set[str] = frozenset()) -> list[str]:
    """What differs between two runs' settings; the model's place does not count where its weight files' contents
    are the same (a copy on another machine, a folder moved); ``unknown`` keys (an older record's) do not count."""
    keys = sorted((set(recorded) | set(settings)) - set(unknown))
    if recorded.get("weights") and recorded.get("weights") == settings.get("weights"):
        keys = [k for k in keys if k != "model"]
    return [f"{k} {recorded.get(k)!r} then, {settings.get(k)!r} now" for k in keys if recorded.get(k) != settings.get(k)]


def resume_wanted(out: str | Path | None, settings: dict[str, Any], *, resume: bool, clash: Sequence[str]) -> str:
    """"explicit" (--resume), "implied" (``out`` was left by an interrupted run of these settings: the same
    command again keeps its rows, as preprocess and train --folds do), or "" (``out`` is replaced)."""
    record = read_record(out, older=True) if out is not None else None
    unknown = unknown_keys(record)
    changed = differences(record["settings"], settings, unknown=unknown) if record is not None else []
    note = older_note(out, record)
    if resume:
        if [d for d in changed if not d.startswith("mmfer ")]:
            raise MmferError(f"--resume: {out} holds rows of another model or options ({'; '.join(changed)}){note}; "
                             "kept, they would mix with this run's: run without --resume (its rows are replaced) "
                             "or write to another --out")
        if note:  # what it can tell agrees; the user asked to keep them
            log.warning("--resume: %s was written by mmfer %s%s: its rows are kept as asked", out,
                        record["settings"].get("mmfer"), note)
        elif changed:  # another mmfer version alone: the user asked to keep them
            log.warning("--resume: %s was written by mmfer %s (this is %s): its rows are kept as asked", out,
                        record["settings"].get("mmfer"), settings.get("mmfer"))
        return "explicit"
    if record is not None and changed and not record.get("finished") and not clash:
        log.warning("%s was left by an interrupted run of other settings (%s): it is replaced; --resume would refuse "
                    "to mix their rows with this run's", out, "; ".join(changed))
    if record is None or record.get("finished") or clash or changed:
        return ""
    if "weights" in unknown:  # an unfinished run of an older mmfer whose model files cannot be checked
        log.warning("%s was left by an interrupted run%s: it is replaced, unless you add --resume to keep its rows "
                    "(if they are of this same model and options)", out, note)
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
    record = read_record(out, older=True) or {}
    here = os.getcwd()
    cwd = record.get("cwd") or here  # relative paths in the rows are of the folder the run started in
    by_text = {safe_text(str(p)): (str(p), k) for p, k in inputs} if cwd == here else {}  # as the CSV writes them
    by_place = {os.path.abspath(p): (str(p), k) for p, k in inputs}  # pf6 and /abs/pf6 name the same files
    try:
        rows = read_predictions(out)
    except MmferError as e:
        if not implied:
            raise
        log.warning("%s is not a predictions CSV as mmfer writes it (%s): it is replaced by this run's rows", out, e)
        return None
    done = {}
    retried = torn = 0
    not_given = []
    for row in rows:
        if any(v is None for v in row.values()):  # a last line cut short by a kill or a full disk
            torn += 1
            continue
        found = by_text.get(row["path"]) or by_place.get(os.path.abspath(os.path.join(cwd, row["path"])))
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
