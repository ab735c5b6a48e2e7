"""Speaker-disjoint K-fold cross-validation: ``mmfer train CONFIG --folds K``.

Why: with a dozen speakers, one held-out group of 3-4 gives a figure that swings by ten points with the
choice of speakers, and picking the epoch on it inflates it further. K folds, each holding out other
speakers, with the epoch count fixed in advance, give a mean and a spread that say what a new speaker
will see; the K models then serve as an ensemble.

FOLD/fold<i>/ is an ordinary run (resumable); FOLD/folds.json and folds.csv hold per-fold and summary
figures, and FOLD/scores_oof.csv every clip scored by the fold model that never heard its speaker.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import logging
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from mmfer.compat import moved
from mmfer.data.splits import corpus_folds, parse_folds
from mmfer.engine.timing import folds_to_come
from mmfer.errors import MmferError
from mmfer.signals import process_alive
from mmfer.labels import EMOTIONS
from mmfer.outputs import atomic_write, write_file

log = logging.getLogger(__name__)


def train_folds(config: Any, *, data: str | Path, out: str | Path, folds: int | str, epochs: int | None = None,
                device: str | None = None, progress: bool = True, folds_within: str | None = None,
                seed: int | None = None, within: str | None = None,
                only_folds: list[int] | None = None) -> dict[str, Any]:
    """Train ``folds`` speaker-disjoint folds (or, with ``folds="corpus"``, one fold per corpus of a speech
    list, leave-one-corpus-out) into OUT/fold<i>, each resumed or skipped if already there, then summarise
    them (see the module doc). Returns the summary written to folds.json.

    ``folds_within`` (``--folds-within``: a corpus of a speech list, with K folds only; ``within`` is its old
    name) deals only that corpus's speakers to the folds; the other corpora train every fold and are never
    validated on: does adding corpora help, or cost, the unseen speakers of this one? The out-of-fold scores
    then cover that corpus alone. ``seed`` overrides the config's (``--seed``), as in ``train()``.

    ``only_folds`` (``--only-folds``, numbers from 1) trains only those folds now: one per machine or GPU, or some
    in this session and the rest in the next. The summary is written once every fold is in OUT; until then the
    returned dict has the finished folds' rows and ``pending``, the numbers still to train."""
    from mmfer.compat import renamed_argument

    within = renamed_argument(folds_within, within, function="train_folds", new="folds_within", old="within",
                              option="--folds-within")
    if isinstance(config, (str, Path)):  # a YAML path, as train() takes
        from mmfer.engine.config import load_train_config

        config = load_train_config(config)
    if seed is not None:
        config = dataclasses.replace(config, seed=seed)
    from mmfer.engine.train import train

    out = Path(out)
    folds = parse_folds(folds)
    by = "corpus" if folds == "corpus" else "speaker"
    if within is not None and by == "corpus":
        raise MmferError("--folds-within goes with --folds K (speaker folds inside one corpus), not --folds corpus")
    # the folds are dealt here first, so a design the data cannot hold fails before OUT is started, and folds
    # already in OUT are checked against this data
    from mmfer.data.sources import pooled_records
    from mmfer.data.speech_list import check_classes, is_speech_list
    from mmfer.data.splits import corpus_records, fold_records, speaker_folds  # (their old names here warn)
    from mmfer.models.registry import build_model

    kind = build_model(config.model.name, **dict(config.model.kwargs)).input_kind
    pooled = pooled_records(data, kind, splits=(config.data.train_split, config.data.val_split))
    dealt = corpus_folds(pooled) if folds == "corpus" else None
    plan = {"folds": len(dealt) if dealt else int(folds), "by": by, "within": within,
            "recipe": recipe_digest(config, epochs=epochs)}
    _check_plan(out, dict(plan, recipe_before_adversary=recipe_digest(config, epochs=epochs, before_adversary=True)),
                config=config, epochs=epochs)
    if dealt is None:
        dealt = speaker_folds(corpus_records(pooled, within) if within else pooled, int(folds))
    _check_trained_folds(out, dealt, pooled, by=by)
    if is_speech_list(data):  # a class no corpus of a fold's training clips has: said before any fold trains
        for i in range(len(dealt)):
            check_classes(fold_records(pooled, dealt, i, by=by)[0], where=f"{data} (training clips of fold {i + 1})")
    if config.adversary.scale:  # a fold's training of one corpus has nothing to tell apart: said before any trains
        from mmfer.engine.adversary import domain_indices

        for i in range(len(dealt)):
            try:
                domain_indices(fold_records(pooled, dealt, i, by=by)[0], config.adversary.by)
            except MmferError as e:
                raise MmferError(f"fold {i + 1}: {e}") from None
    n = len(dealt)
    only = _check_only_folds(only_folds, n)
    if config.optim.select_by != "last":
        log.warning("optim.select_by is %r: each fold keeps the epoch that reads best on its own held-out speakers, "
                    "so the out-of-fold figures are inflated; fix the epochs in advance with select_by: last",
                    config.optim.select_by)
    if config.distill.teachers or config.distill.targets:
        from mmfer.engine.distill import check_teachers_exist

        check_teachers_exist(config.distill, folds=n)  # a missing fifth teacher is said before four folds train
    out.mkdir(parents=True, exist_ok=True)
    write_file(out / "plan.json", json.dumps(plan) + "\n")  # never through a link; after every check
    for i in range(n):
        run = out / f"fold{i + 1}"
        if (run / "scores_Val.csv").is_file():
            log.info("fold %d/%d: already trained (%s)", i + 1, n, run)
        elif only is not None and i + 1 not in only:
            continue
        else:
            with fold_lock(run) as mine:
                if not mine:  # another process (another machine sharing OUT) trains it now
                    continue
                log.info("fold %d/%d -> %s", i + 1, n, run)
                to_come = [j for j in range(i + 1, n) if (only is None or j + 1 in only)
                           and not (out / f"fold{j + 1}" / "scores_Val.csv").is_file()]
                with folds_to_come(len(to_come)):  # what this process trains after it, for the time left
                    train(config, data=data, out=run, epochs=epochs, resume=(run / "last.pt").is_file(),
                          device=device, progress=progress, fold=(i, n), fold_by=by, folds_within=within)
    # looked at again at the end: folds trained meanwhile by other processes count (the last one summarises)
    runs = [out / f"fold{i + 1}" for i in range(n)]
    pending = [i + 1 for i, run in enumerate(runs) if not (run / "scores_Val.csv").is_file()]
    if pending:
        log.info("folds %s of %d not in %s yet; the summary is written by the command that finds every fold there",
                 ", ".join(map(str, pending)), n, out)
        return {"folds": [fold_row(i, run) for i, run in enumerate(runs) if i + 1 not in pending],
                "pending": pending, "by": by}
    return summarise_folds(out, runs, by=by, within=within)


LOCK = ".training"


@contextlib.contextmanager
def fold_lock(run: Path) -> Iterator[bool]:
    """``run/.training`` (host and pid) while a process trains the fold, so that two processes sharing a folds
    folder (``--only-folds`` on several machines, or a whole command beside them) never train one fold at once.
    Yields False when another live process holds it (the fold is left to it); a lock of a process of this host
    that is gone (killed) is taken over; one of another host is said, with the file to remove if that is gone."""
    import os
    import socket

    run.mkdir(parents=True, exist_ok=True)
    path, me = run / LOCK, f"{socket.gethostname()} {os.getpid()}"
    for _ in range(2):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            break
        except FileExistsError:
            host, _, pid = path.read_text(encoding="utf-8").strip().partition(" ")
            if host == socket.gethostname() and pid.isdigit() and not process_alive(int(pid)):
                path.unlink(missing_ok=True)  # its process is gone: take the fold over
                continue
            log.warning("%s: trained now by process %s on %s (%s); left to it (if that process is gone, remove %s "
                        "and run again)", run, pid, host, path, path)
            yield False
            return
    else:
        yield False
        return
    with os.fdopen(fd, "w") as f:
        f.write(me + "\n")
    try:
        yield True
    finally:
        path.unlink(missing_ok=True)


def _check_only_folds(only_folds: list[int] | None, n: int) -> set[int] | None:
    """The fold numbers of ``--only-folds``, each 1..n, or None for all."""
    if only_folds is None:
        return None
    wrong = [f for f in only_folds if not 1 <= int(f) <= n]
    if wrong or not only_folds:
        raise MmferError(f"--only-folds {','.join(map(str, only_folds))}: folds are numbered 1 to {n}")
    return {int(f) for f in only_folds}


def fold_row(i: int, run: Path, scores: Any = None) -> dict[str, Any]:
    """One trained fold's line of folds.csv (``i`` from 0): its Val speakers, clips, accuracy and uar
    (``scores``: its scores_Val.csv already read)."""
    from mmfer.metrics import evaluate
    from mmfer.scores import read_scores

    scores = scores if scores is not None else read_scores(run / "scores_Val.csv")
    fold_info = json.loads((run / "fold.json").read_text(encoding="utf-8"))
    m = evaluate(scores.labels, scores.probs)
    return {"fold": i + 1, "speakers": " ".join(fold_info["speakers"]), "clips": m["n"],
            "accuracy": round(m["accuracy"], 4), "uar": round(m["uar"], 4)}


def summarise_folds(out: Path, runs: list[Path], *, by: str = "speaker", within: str | None = None) -> dict[str, Any]:
    """The figures of trained folds (each run's ``scores_Val.csv`` and ``fold.json``): ``out/scores_oof.csv`` (every
    held-out clip scored by the fold model that never heard it), ``folds.json`` and ``folds.csv``; with every
    fold's ``scores_Test.csv``, also ``scores_Test_ensemble.csv`` (the fold models' mean, as a bundle scores)."""
    from mmfer.metrics import evaluate
    from mmfer.scores import read_scores, write_scores

    out, results = Path(out), [Path(r) for r in runs]
    rows, ids, labels, probs = [], [], [], []
    for i, run in enumerate(results):
        scores = read_scores(run / "scores_Val.csv")
        rows.append(fold_row(i, run, scores))
        ids += list(scores.clip_ids)
        labels += list(scores.labels)
        probs.append(scores.probs)
    all_probs = np.concatenate(probs)
    write_scores(out / "scores_oof.csv", ids, labels, all_probs)
    pooled = evaluate(labels, all_probs)
    uars = np.array([r["uar"] for r in rows])
    accs = np.array([r["accuracy"] for r in rows])
    summary = {
        "folds": rows, "labels": list(EMOTIONS),
        "uar_mean": round(float(uars.mean()), 4), "uar_std": round(float(uars.std()), 4),
        "uar_min": round(float(uars.min()), 4), "uar_max": round(float(uars.max()), 4),
        "accuracy_mean": round(float(accs.mean()), 4),
        "pooled_accuracy": round(pooled["accuracy"], 4), "pooled_uar": round(pooled["uar"], 4),
        "pooled_recall": {k: (None if v is None else round(v, 4)) for k, v in pooled["per_class_recall"].items()},
        "runs": [r.name for r in results],  # relative to this folder, so it can move
    }
    tests = [run / "scores_Test.csv" for run in results]
    if all(p.is_file() for p in tests):
        # rows the list marks for evaluation only (TESS), or a Test split: the K fold models as an ensemble
        # (mean of probabilities), the way a bundle of them scores; never used to choose anything
        first = read_scores(tests[0])
        mean = np.mean([read_scores(p).probs for p in tests], axis=0)
        write_scores(out / "scores_Test_ensemble.csv", first.clip_ids, first.labels, mean)
        if any(first.labels):
            known = [i for i, lab in enumerate(first.labels) if lab]
            m = evaluate([first.labels[i] for i in known], mean[known])
            summary["test_ensemble"] = {"clips": m["n"], "accuracy": round(m["accuracy"], 4),
                                        "uar": round(m["uar"], 4)}
    summary["by"] = by
    if within is not None:
        summary["within"] = within
    write_file(out / "folds.json", json.dumps(summary, indent=1) + "\n")
    with atomic_write(out / "folds.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return summary


def _check_trained_folds(out: Path, dealt: list[list[str]], pooled: list, *, by: str) -> None:
    """A fold already in OUT must have validated on the speakers (or corpus) and clip count this data deals it:
    a list that changed since (rows added, another list) would be summarised as if it were the same run."""
    from mmfer.data.splits import fold_records, labels_digest

    for i, held in enumerate(dealt):
        path = out / f"fold{i + 1}" / "fold.json"
        if not path.is_file():
            continue
        info = json.loads(path.read_text(encoding="utf-8"))
        train_part, val_part = fold_records(pooled, dealt, i, by=by)
        clips = len(val_part)
        if info["speakers"] != list(held) or info.get("val_clips", clips) != clips:
            raise MmferError(f"{path.parent} validated on {' '.join(info['speakers'])} ({info.get('val_clips', '?')} "
                             f"clips), and this data deals that fold {' '.join(held)} ({clips} clips): the data is "
                             "not the data OUT was trained on; use another --out, or the same data to resume")
        if info.get("labels_digest") not in (None, labels_digest(train_part + val_part)):  # (none before it)
            raise MmferError(f"{path.parent} trained on the same speakers and clip counts, but some of its clips carry "
                             "other labels in this data (corrected labels?): its model and scores are of the old "
                             "labels; use another --out to train the folds on these")


# config keys that say where and how fast a run goes, not what it learns: a move to another machine may change them
WHERE_NOT_WHAT = ((None, "name"), (None, "device"), ("data", "workers"), ("data", "eval_batch_size"))


def recipe_digest(config: Any, *, epochs: int | None = None, before_adversary: bool = False) -> str:
    """A short digest of what a fold learns from: the config's values that differ from their defaults, as it runs
    (with ``--epochs``), less its name, device, loader workers and evaluation batch size, which a move to another
    machine may change. A key added to the config later, at its default, leaves the digest as it was.
    ``before_adversary``: the digest of plans written before 2026-12-06 (the whole config, without the
    ``adversary`` section, which did not exist). A digest that matches neither (a plan of an older mmfer, whose
    whole-config digest changes with every key added since) is settled by the folds' own config.yaml."""
    import hashlib

    from mmfer.engine.config import TrainConfig, config_to_plain

    plain = config_to_plain(config)
    if epochs is not None:
        plain["optim"]["epochs"] = int(epochs)
    for section, key in WHERE_NOT_WHAT:
        (plain[section] if section else plain).pop(key, None)
    if before_adversary:
        plain.pop("adversary", None)
    else:
        model = plain.pop("model")  # whole: it has no defaults to leave out
        plain = dict(_differences(plain, config_to_plain(TrainConfig(name=config.name, model=config.model))),
                     model=model)
    return hashlib.sha256(json.dumps(plain, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _differences(plain: dict[str, Any], default: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in plain.items():
        base = default.get(key, _differences)  # (a sentinel no value equals)
        if isinstance(value, dict) and isinstance(base, dict):
            if inner := _differences(value, base):
                out[key] = inner
        elif value != base:
            out[key] = value
    return out


def _check_plan(out: Path, plan: dict[str, Any], *, config: Any = None, epochs: int | None = None) -> None:
    """Folds resumed in OUT must be the folds OUT was started with: another K, --folds corpus or --folds-within
    would deal other speakers to fold<i>, and a resumed fold could validate on speakers it trained on.
    OUT/plan.json is written when OUT is started (after the data has dealt the folds, so a design the data cannot
    hold leaves nothing behind); a folder from before it is read from its folds' fold.json."""
    def say(p: dict[str, Any]) -> str:
        k = "corpus" if p["by"] == "corpus" else p["folds"]
        return f"--folds {k}" + (f" --folds-within {p['within']}" if p.get("within") else "")

    path = out / "plan.json"
    if path.is_file():
        started = json.loads(path.read_text(encoding="utf-8"))
    else:
        infos = sorted(out.glob("fold*/fold.json"))
        first = json.loads(infos[0].read_text(encoding="utf-8")) if infos else None
        started = first and {"folds": first["of"], "by": first["by"], "within": first.get("within")}
    design = ("folds", "by", "within")
    if started and any(started.get(k) != plan[k] for k in design):
        raise MmferError(f"{out} holds the folds of {say(started)}, not {say(plan)}; use another --out, "
                         "or the same options to resume")
    if started and started.get("recipe") not in (None, plan["recipe"], plan.get("recipe_before_adversary")):
        saved = _saved_recipe_differences(out, config, epochs) if config is not None else None
        if saved is not None and not saved[0]:
            # a digest of an older mmfer (of the whole config, keys added since included), and the folds' own
            # config reads as this one: the same recipe
            log.info("%s: its plan's recipe digest is of an older mmfer; its folds' config is this one", out)
            return
        changed = f" ({'; '.join(saved[0])}, against {saved[1]})" if saved else ""
        raise MmferError(f"{out} holds folds trained with another config, --seed or --epochs{changed}; the finished "
                         "ones would be reported with the new ones as one cross-validation. Use another --out, or "
                         "the same config and options to resume")


def _saved_recipe_differences(out: Path, config: Any, epochs: int | None) -> tuple[list[str], Path] | None:
    """What differs between the config a fold of OUT trained with (its config.yaml) and this one, as ``--resume``
    says it (``optim.lr: 0.001 (run) != 0.01 (now)``), and that file; None when no fold kept a config this mmfer
    reads."""
    import yaml

    from mmfer.engine.checks import config_differences
    from mmfer.engine.config import config_from_dict, config_to_plain

    saved = sorted(out.glob("fold*/config.yaml"))
    if not saved:
        return None
    try:  # through the dataclasses, so keys added since read as their defaults
        plain = config_to_plain(config_from_dict(yaml.safe_load(saved[0].read_text(encoding="utf-8")), where=str(saved[0])))
    except Exception:  # noqa: BLE001 - a config of another mmfer: the plain refusal says enough
        return None
    now = config_to_plain(config)
    if epochs is not None:
        now["optim"]["epochs"] = int(epochs)
    for side in (plain, now):
        for section, key in WHERE_NOT_WHAT:
            (side[section] if section else side).pop(key, None)
    return config_differences(plain, now), saved[0]


# the split rules moved to mmfer.data.splits (corpus_folds and parse_folds are imported above, so they stay
# importable from here without a warning)
__getattr__ = moved(__name__, {n: "mmfer.data.splits" for n in ("speaker_of", "speaker_folds", "fold_records")})
