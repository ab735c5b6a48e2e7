"""``mmfer predict``: every video, face image and sound file of a list of paths through one ``Predictor``, with
the outputs asked for (predictions, segments, frames, plots, report, submission), per-file progress, shards and
a clean stop on Ctrl-C."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from mmfer.inference.bundle import Bundle
from mmfer.data.cache import clip_id_from_name
from mmfer.errors import MmferError
from mmfer.inference.outputs import (
    FrameWriter, _plot, _timeline_args, truths_from_paths, write_prediction_report, write_prediction_submission,
    write_predictions,
)
from mmfer.inference.predictor import Predictor, check_unique_ids, find_inputs
from mmfer.inference.result import Prediction, PredictResult
from mmfer.inference.resume import read_record, resume_wanted, rows_to_resume, run_settings, write_record
from mmfer.inference.segments import SegmentSettings, SegmentWriter
from mmfer.progress import draw_bars, progress_bar
from mmfer.text import safe_text, terminal_text

log = logging.getLogger(__name__)


def predict(
    paths: Iterable[str | Path] | str | Path,
    *,
    model: str | Path | Bundle | Predictor = "default",
    out: str | Path | None = None,
    plots: str | Path | None = None,
    submission: str | Path | None = None,
    frames: str | Path | None = None,
    report: str | Path | None = None,
    segments: str | Path | None = None,
    segment_seconds: float = SegmentSettings.seconds,
    segment_by: str = SegmentSettings.by,
    start: float = 0.0,
    duration: float | None = None,
    shard: str | tuple[int, int] | None = None,
    frame_pooling: str | None = None,
    face_backend: str | None = None,
    labels_from: str | None = None,
    device: str = "auto",
    progress: bool = True,
    resume: bool = False,
    speech_check: bool = True,
    keep_segments: bool = False,
) -> PredictResult:
    """Predict every video, face image and audio file in ``paths`` (files or folders, searched recursively).

    ``model``: ``default`` (the shipped bundle), a bundle folder, a RUN of ``mmfer train`` or a FUSE folder, or a
    :class:`Predictor` already loaded (calls in a loop then load nothing).
    ``out``: the predictions CSV (``PREDICTION_COLUMNS``); ``plots``: a folder for one timeline PNG per
    video; ``submission``: an EmotiW zip (clip ids must be unique); ``frames``: a CSV with one row per analysed
    video frame and audio window (``FRAME_COLUMNS``, see ``frame_rows``); ``report``: one HTML page of every
    row and video timeline, with the metrics when ``labels_from`` (folder, ravdess, cremad) gives true labels;
    ``segments``: a CSV with one row per segment of every video and sound file (``SEGMENT_COLUMNS``), cut by
    ``segment_seconds`` and ``segment_by`` (fixed | speech). ``start``/``duration`` (s) limit the span of each
    video and sound file analysed (default: all of it). ``shard`` ("i/n"): only the inputs of shard i of n, by
    the rule of ``preprocess --shard`` (see ``shard_inputs``), so n machines split a folder between them.
    ``frame_pooling`` (mean, log_mean, confidence) replaces the model's own way of pooling face frames.
    ``face_backend`` replaces the model's face detector and landmarks (see ``Predictor``).
    ``speech_check`` False lets the voice models read any sound that is not silent (see ``Predictor``).
    ``keep_segments``: each row keeps its segments in ``Prediction.segments`` (by default they are dropped as each
    file ends, so memory stays flat over a folder of long recordings; ``segments`` writes them to a CSV).
    Returns every row, in input order. ``out`` is saved as the files finish (at most every
    ``SAVE_EVERY_S``) and, interrupted (Ctrl-C), the outputs keep the rows of the finished files; ``resume``
    keeps the rows ``out`` already holds for these inputs (matched by path) and analyses only the others (and the
    files whose rows are error rows, which may have been fixed since).
    """
    from tqdm.auto import tqdm

    from mmfer.outputs import check_output_dir, check_output_file

    if paths is None or isinstance(paths, bytes) or not isinstance(paths, (str, os.PathLike, Iterable)):
        raise MmferError(f"predict: inputs {paths!r}: give a file or folder path, or a list of them")
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)  # read twice: by find_inputs, checks
    bad = [p for p in paths if not isinstance(p, (str, os.PathLike))]
    if bad:
        raise MmferError(f"predict: input {bad[0]!r} is not a path; give file or folder paths (str or Path)")
    if labels_from is not None and labels_from not in ("folder", "ravdess", "cremad"):
        raise MmferError(f"--labels-from {labels_from!r}: choose folder, ravdess or cremad")
    cut = SegmentSettings(seconds=segment_seconds, by=segment_by)
    if submission is not None:  # NAME -> NAME.zip, another extension refused: before any work, as submit does
        from mmfer.submission import submission_path

        submission = submission_path(submission, option="--submission")
    # every output is checked before any work, so a long run never ends unable to write its result
    for option, target in (("--out", out), ("--frames", frames), ("--report", report), ("--submission", submission),
                           ("--segments", segments)):
        if target is not None:
            check_output_file(target, option=option)
    if plots is not None:
        check_output_dir(plots, option="--plots")
    inputs = find_inputs(paths)
    if not inputs:  # folders with nothing of the kinds predict reads, or that could not be read (said above)
        given = [str(p) for p in paths]
        raise MmferError(f"predict: no video, image or audio files in {', '.join(given[:3])}"
                         + (f" and {len(given) - 3} more" if len(given) > 3 else "") if given else
                         "predict: no inputs given; pass video, image or audio files, or folders holding them")
    for option, target in (("--out", out), ("--frames", frames), ("--report", report), ("--submission", submission),
                           ("--segments", segments)):
        if target is not None:  # a name that is also an input (a video) would be replaced by the output
            check_output_file(target, option=option, inputs=[p for p, k in inputs if k in ("video", "image", "audio")])
    if plots is not None:
        _check_plots_outside_inputs(plots, paths)
    if face_backend is not None:  # a mistyped or unregistered name is said before any work
        from mmfer.faces.backends import backend_name
        from mmfer.inference.bundle import declared_face_backend

        face_backend = backend_name(face_backend)
        if isinstance(model, (str, Path)) and face_backend == declared_face_backend(model):
            face_backend = None  # the model's own: the same run as without the option
    settings = run_settings(model=model, frame_pooling=frame_pooling, speech_check=speech_check,
                            face_backend=face_backend, device=device, start=start,
                            duration=duration, segment_seconds=cut.seconds, segment_by=cut.by)
    clash = {"frames": frames, "segments": segments, "plots": plots, "report": report}
    how = resume_wanted(out, settings, resume=resume, clash=[k for k, v in clash.items() if v is not None])
    if all(kind == "missing" for _, kind in inputs):  # a typo, said before the model loads; among others, a row
        raise MmferError(f"{', '.join(str(p) for p, _ in inputs)}: not found; nothing to analyse")
    if submission is not None:
        _check_clips_are_videos(inputs)  # of the whole set: every shard refuses it alike
    if shard is not None:
        inputs = shard_inputs(inputs, shard)
        if submission is not None:
            log.warning("--submission with --shard: %s holds this shard's clips only, not a whole submission; for "
                        "one, merge the shards' --out CSVs (mmfer merge) and write it with mmfer submit MERGED "
                        "--index TEST_FOLDER --out ZIP", submission)
    if submission is not None:
        _check_no_training_splits(paths)
        check_unique_ids(inputs)  # before any work
    done = {}  # path -> the row an earlier run wrote (--resume, or the same command after a kill)
    if how:
        done = rows_to_resume(out, inputs, implied=how == "implied", **clash)
        if done is None:  # implied, but its rows are of other inputs: replaced
            done, how = {}, ""
        if len(done) == len(inputs) and submission is None and labels_from is None:
            # nothing left to analyse: no model loaded, --out left as it is (its time too); a --model that is not
            # there is said all the same
            if isinstance(model, (str, Path)) and str(model) != "default" and not Path(model).exists():
                raise MmferError(f"--model {model}: no such file or folder")
            log.info("--resume: every input already has its row in %s; nothing to do", out)
            if how == "implied" or read_record(out, older=True) is not None:  # its settings are these (or refused)
                write_record(out, settings, finished=True)
            name = str(model) if isinstance(model, (str, Path)) else model.bundle.describe()  # (a loaded Predictor)
            return PredictResult(predictions=[done[str(p)] for p, _ in inputs], model=name, load_seconds=0.0,
                                 out=Path(out))
    t0 = time.perf_counter()
    if isinstance(model, Predictor):  # loaded once by the caller, for many calls: this call's span and segments
        if frame_pooling is not None or face_backend is not None or device != "auto" or not speech_check:
            raise MmferError("predict: a loaded Predictor keeps its frame pooling, face backend, device and speech "
                             "check; give them to Predictor(model, frame_pooling=..., face_backend=..., device=..., "
                             "speech_check=...)")
        import copy

        predictor = copy.copy(model)  # the caller's keeps its own settings
        predictor.set_span(segments=cut, start=start, duration=duration)
    else:
        predictor = Predictor(model, device=device, segments=cut, start=start, duration=duration,
                              frame_pooling=frame_pooling, speech_check=speech_check, face_backend=face_backend)
    load_seconds = time.perf_counter() - t0
    if out is not None and not how and Path(out).is_file():  # said once the model loaded: a refused one replaces nothing
        log.warning("%s exists: it is replaced by this run's rows (add --resume, resume=True from Python, to keep the "
                    "rows it holds for these inputs and analyse only the others, if they are of this model and "
                    "options)", out)
    log.info("%s (loaded in %.2f s)", predictor.bundle.describe(), load_seconds)
    plot_dir = Path(plots) if plots is not None else None
    result = PredictResult(predictions=[], model=predictor.bundle.describe(), load_seconds=round(load_seconds, 3))
    used = _names_taken_by_inputs(plot_dir, inputs) if plot_dir is not None else set()  # a plot never replaces one
    frame_writer = FrameWriter(frames) if frames is not None else None
    segment_writer = SegmentWriter(segments) if segments is not None else None
    timelines: dict[str, str] = {}
    timelines_left_out = 0
    segment_rows: dict[str, list[dict[str, Any]]] = {}
    files = progress_bar(inputs, desc="predict", unit="file", enabled=progress)  # (a log line a minute without)
    # rows analysed since --out was last written; the first file's row is saved at once (with its record), so a
    # short job killed in its first minute can go on too, then every SAVE_EVERY_S
    saved, unsaved = time.monotonic() - SAVE_EVERY_S, 0

    def rows_so_far() -> list[Prediction]:
        """The finished rows, then (--resume) the kept rows of the inputs not reached yet: no write drops them."""
        later = [done[str(p)] for p, _ in inputs[len(result.predictions):] if str(p) in done]
        return [*result.predictions, *later]

    def save_if_due() -> None:
        """--out rewritten with the finished rows once SAVE_EVERY_S has passed: as a file finishes and while a
        long one is analysed, so a killed run loses at most that much finished work."""
        nonlocal saved, unsaved
        if out is None or not unsaved or time.monotonic() - saved < SAVE_EVERY_S:
            return
        rows = rows_so_far()
        truths = truths_from_paths(rows, labels_from) if labels_from else None
        try:
            write_predictions(out, rows, truths)
            unsaved = 0
            write_record(out, settings, finished=False)  # after the rows: a kill between leaves the older record
        except OSError as e:  # a full disk: the analysis goes on, and the next save tries again
            log.warning("%s: could not save the rows so far (%s); analysis goes on and saving is tried again "
                        "in %d s", out, e.strerror or e, SAVE_EVERY_S)
        saved = time.monotonic()

    try:
        for path, kind in files:
            if str(path) in done:  # resumed: its row as the earlier run wrote it
                result.predictions.append(done[str(path)])
                continue
            bar = None
            if draw_bars(progress) and kind in ("video", "audio"):  # one bar per file, in seconds of it, with time left
                bar = tqdm(desc=terminal_text(Path(path).name, newlines=False)[:40], unit="s", leave=False, position=1,
                           bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total_fmt} s [{elapsed}<{remaining}]")

            def follow(done: float, total: float | None, bar=bar) -> None:
                if bar is not None:
                    if total:  # a file that runs past the length it declared moves its end, never past 100%
                        end = np.ceil(max(total, done) * 10) / 10  # tenths, shown short, never below done
                        if bar.total != end:
                            bar.total = end
                    bar.update(max(0.0, done - bar.n))
                save_if_due()  # a long file: the files before it are not held back until it ends

            pred = predictor.predict_file(path, kind, timeline=plot_dir is not None or frame_writer is not None
                                          or report is not None, progress=follow,
                                          audio_windows=True if frame_writer is not None else None,
                                          on_segment=segment_writer.add if segment_writer is not None else None)
            if bar is not None:
                bar.close()
            if plot_dir is not None and pred.kind == "video":
                try:
                    result.plots.append(_plot(pred, plot_dir, used))
                except (OSError, ValueError) as e:  # an optional output never takes the rows with it
                    log.warning("%s: its plot could not be written (%s); the analysis goes on", path, e)
            if report is not None and pred.kind == "video" and len(timelines) >= REPORT_TIMELINES_MAX:
                timelines_left_out += 1
            elif report is not None and pred.kind == "video":
                from mmfer.plots import plot_timeline
                from mmfer.report import png_data

                arrays, title = _timeline_args(pred)
                try:
                    timelines[safe_text(pred.path)] = png_data(  # by path: long.mp4 and long.mkv are told apart
                        lambda p: plot_timeline(p, **arrays, title=title, dpi=REPORT_PLOT_DPI))
                except (OSError, ValueError) as e:  # as a plot: the report goes without it, the rows go on
                    log.warning("%s: its timeline for the report could not be drawn (%s); the analysis goes on",
                                path, e)
            if frame_writer is not None:
                frame_writer.add(pred)
                frame_writer.end_file()
            if segment_writer is not None:
                segment_writer.end_video()
            pred.timeline = None  # keep memory flat over many files
            if report is not None and pred.segments:
                segment_rows[safe_text(pred.path)] = [
                    {"start": s.start, "end": s.end, "predicted": s.predicted, "confidence": float(np.max(s.probs))
                     if s.seen else None, "face_ratio": s.face_ratio, "modalities": s.modalities, "track": s.track}
                    for s in pred.segments]
            if not keep_segments:
                pred.segments = None
            result.predictions.append(pred)
            unsaved += 1
            save_if_due()
    except KeyboardInterrupt as stop:
        # the rows of the files that were finished are kept; the file cut short leaves nothing half-written
        files.close()
        result.predictions = rows_so_far()
        stop.out_written = out is not None and bool(result.predictions)  # for the command line's hint
        if not result.predictions:  # nothing finished: an earlier run's --out is left as it was, not emptied
            for w in (frame_writer, segment_writer):
                if w is not None:
                    w.abort()
            log.warning("interrupted before any file was finished: nothing was written")
            raise
        _write_outputs(result, out=out, frame_writer=frame_writer, segment_writer=segment_writer, report=None,
                       submission=None, timelines=timelines, segment_rows=segment_rows, labels_from=labels_from,
                       keep_partial=False)
        recorded = out is not None and write_record(out, settings, finished=False)  # the same command goes on
        extras = [o for o, v in (("--frames", frames), ("--segments", segments), ("--plots", plots),
                                 ("--report", report)) if v is not None]
        stop.same_command_resumes = recorded and not extras  # for the command line's hint
        log.warning("interrupted: the rows of the %d finished file(s) were written%s", len(result.predictions),
                    "" if out is None else "; the same command again analyses only the others"
                    if stop.same_command_resumes else "; the same command with --resume analyses only the others"
                    if not extras
                    else f"; the same command with --resume and without {', '.join(extras)} analyses only the others "
                         f"(those need every file analysed: run without --resume to have them whole)")
        raise
    except BaseException:
        for w in (frame_writer, segment_writer):
            if w is not None:
                w.abort()
        raise
    result = _write_outputs(result, out=out, frame_writer=frame_writer, segment_writer=segment_writer, report=report,
                            submission=submission, timelines=timelines, segment_rows=segment_rows,
                            labels_from=labels_from, timelines_left_out=timelines_left_out)
    if out is not None:
        write_record(out, settings, finished=True)
    return result


def _write_outputs(result: PredictResult, *, out, frame_writer, segment_writer, report, submission, timelines,
                   segment_rows, labels_from, keep_partial: bool = True, timelines_left_out: int = 0) -> PredictResult:
    if labels_from:  # the truths in Python too, not only in the CSV
        for p, t in zip(result.predictions, truths_from_paths(result.predictions, labels_from, warn=True)):
            p.truth = t
    # the main output first: an optional one that fails afterwards cannot take the predictions with it
    if out is not None:
        truths = [p.truth for p in result.predictions] if labels_from else None
        try:
            result.out = write_predictions(out, result.predictions, truths)
        except OSError as e:  # a full disk at the end: the rows are not thrown away with the error
            _save_elsewhere(out, result.predictions, truths, e)
            raise
    if frame_writer is not None:
        result.frames = frame_writer.close(keep_partial=keep_partial)
    if segment_writer is not None:
        result.segments = segment_writer.close(keep_partial=keep_partial)
    if report is not None:
        result.report = write_prediction_report(report, result.predictions, timelines=timelines,
                                                segments=segment_rows, model=result.model, labels_from=labels_from,
                                                timelines_left_out=timelines_left_out)
    if submission is not None:
        result.submission = write_prediction_submission(result.predictions, submission)
    if result.errors:  # said, not only in the rows: from Python as in a log of a --quiet run
        first = result.errors[0]
        log.warning("%d of %d input(s) could not be read, e.g. %s: %s (every reason in the warning %s)",
                    len(result.errors), len(result.predictions), first.path, first.warning,
                    f"column of {result.out}" if result.out else "of each error row (result.errors)")
    return result


def _save_elsewhere(out, predictions, truths, error: OSError) -> None:
    """The rows that ``out`` could not take, written to a folder of this user's alone in the temporary folder
    (``mkdtemp``: no other user reads them or takes the name first); the error then says where."""
    import tempfile

    try:
        spare = Path(tempfile.mkdtemp(prefix=f"mmfer-{os.getpid()}-")) / Path(out).name
        write_predictions(spare, predictions, truths)
    except OSError as e2:
        log.error("%s could not be written (%s), nor a copy of its %d row(s) in %s (%s): they are lost", out,
                  error.strerror or error, len(predictions), tempfile.gettempdir(), e2.strerror or e2)
        return
    log.error("%s could not be written (%s): its %d row(s) are in %s; make room, move that file to %s and run the "
              "same command with --resume to go on from them", out, error.strerror or error, len(predictions), spare,
              out)


def _check_clips_are_videos(inputs: Sequence[tuple[Path, str]]) -> None:
    """Test clips are videos: a sound or image file beside them in a --submission would be one more entry in the
    zip, which `submit --check --index` (videos only, as preprocess) then calls an extra clip. Said before any
    work; a set of sound files alone (no video) is a submission of its own and stays allowed."""
    others = [p for p, k in inputs if k in ("audio", "image")]
    if others and any(k == "video" for _, k in inputs):
        raise MmferError(f"--submission: {len(others)} sound or image file(s) beside the videos (e.g. "
                         f"{', '.join(str(p) for p in others[:3])}); a Test set is videos, and the zip would name "
                         "them as clips the index does not hold: move them out, or predict them without --submission")


def _check_no_training_splits(paths) -> None:
    """A submission holds Test clips: an AFEW root given whole would put its Train and Val clips in the zip."""
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            subs = {c.name.lower(): c for c in p.iterdir() if c.is_dir()}
            splits = sorted(subs[k].name for k in ("train", "val") if k in subs)
            if splits:
                test = subs["test"] if "test" in subs else p / "Test"
                raise MmferError(f"--submission: {p} holds {' and '.join(f'{s}/' for s in splits)}, whose clips are "
                                 f"no Test clips; give its Test folder ({test})")


def shard_inputs(inputs: Sequence[tuple[Path, str]], shard: str | tuple[int, int]) -> list[tuple[Path, str]]:
    """The inputs of shard i of n ("i/n"): those whose clip id ``preprocess --shard`` puts there for the Test
    split (a stable hash, the same on every machine), so n machines given the same folder split it between
    them with no list to share; merge their CSVs with ``mmfer merge``."""
    from mmfer.data.preprocess import parse_shard, shard_of

    if not isinstance(shard, (str, tuple, list)):
        raise MmferError(f"--shard {shard!r}: give 'i/n' or (i, n), e.g. '0/4' for the first of four machines")
    i, n = parse_shard(shard if isinstance(shard, str) else "/".join(map(str, shard)))  # a tuple checked alike
    return [(p, k) for p, k in inputs if shard_of("Test", clip_id_from_name(p.stem), n) == i]


# --report embeds one timeline PNG per video (about 45 KB at this resolution, shown 560 px wide): at most this
# many, so a page over a large folder stays a page that opens (--plots draws every one at full size)
REPORT_TIMELINES_MAX = 300
REPORT_PLOT_DPI = 70
SAVE_EVERY_S = 60.0  # the predictions CSV is saved this often during a run, so a killed run loses at most this


def _check_plots_outside_inputs(plots: str | Path, paths: list) -> None:
    """``--plots`` inside a folder being read: the next run over that folder would read the plots as its inputs
    (and a plot could be named like an image there). Refused before any work."""
    target = os.path.realpath(plots)
    for given in paths:
        if Path(given).is_dir():
            folder = os.path.realpath(given)
            if target == folder or target.startswith(folder.rstrip(os.sep) + os.sep):
                raise MmferError(f"--plots {plots}: is inside the input folder {given}, so a later run over that folder "
                                 "would read the plots as inputs; choose a folder outside it")


def _names_taken_by_inputs(plot_dir: Path, inputs: list) -> set[str]:
    """The names (without .png) that input files already hold in ``plot_dir``: an image given as a file beside
    the plots folder's own PNGs (interview.png next to interview.mp4) is never written over."""
    if not plot_dir.is_dir():
        return set()
    here, parents = os.path.realpath(plot_dir), {}
    taken = set()
    for path, _ in inputs:
        p = Path(path)
        parent = parents.setdefault(str(p.parent), os.path.realpath(p.parent))
        if parent == here and p.suffix.lower() == ".png":
            taken.add(p.stem)
            taken.add(p.stem.casefold())  # Interview.PNG is interview.png where names ignore case
    return taken
