"""`mmfer preprocess`: every clip of a corpus -> cached aligned faces, landmark tracks and audio, once.

Why it is built this way:

* **One clip never stops a corpus.** ``process_clip`` turns every problem with an input file
  (empty, not a video, truncated, no audio, audio only) into a ``failed`` record with a reason a
  person can act on, or an ``ok`` record with warnings when something useful could be extracted.
* **Memory stays bounded.** Frames are streamed in batches sized by frame area, so a 4K clip never
  holds all its full frames; only the small aligned crops and landmark tracks are accumulated.
* **Resume is free.** A clip is skipped when its latest manifest record was made with the same
  settings from the same source file (size + mtime) and, if ok, its directory still exists.
  Results are written one clip at a time by the parent (atomic directory rename, then one manifest
  line), so killing a run loses at most the clips in flight.
* **Shards** split a corpus across machines deterministically by a stable hash of (split, clip_id).

Audio-only files (no video stream) are recorded as ``failed`` ("no video stream"): every video
branch expects at least one frame, and the audio branch reads audio files directly.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import shutil
import signal
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from mmfer.data.cache import (
    CACHE_VERSION,
    ClipRecord,
    PreprocessSettings,
    append_manifest,
    clip_dir,
    clip_problem,
    prune_removed,
    read_manifest,
    remove_clip,
    remove_stale_temporaries,
    staging_dir,
    write_clip,
)
from mmfer.data.index import ClipEntry, _check_duplicates, index_source
from mmfer.data.workers import init_worker as _init_worker
from mmfer.data.workers import opencv_threads_stopped as _opencv_threads_stopped
from mmfer.progress import progress_bar
from mmfer.data.clip import (  # noqa: F401 - one clip's pipeline; these names were first imported from here
    FRAME_BUDGET_BYTES, MAX_BATCH, MIN_FITS_PER_SECOND, MIN_FRAME_SIDE, FaceBatch, _batch_size, _looks_truncated,
    _source_stat,
    iter_face_batches, make_tracker, open_video, process_clip,
)
from mmfer.errors import MmferError
from mmfer.signals import sigterm_as_interrupt
from mmfer.text import terminal_text
from mmfer.faces.backends import backend_name, check_backend, check_spawnable, get_backend, registered_backend

log = logging.getLogger(__name__)

NUM_LANDMARKS = 68
# workers=0 (auto) starts one worker per core. Where workers are forked from this process (see
# worker_start_method) they start in milliseconds with the landmark model already loaded; a spawned worker
# needs ~1.5 s (interpreter, imports, the 95 MB model) before its first frame, about what eight 2-s clips
# take, so spawned workers are started for no fewer than this many clips each.
AUTO_CLIPS_PER_WORKER = 8


@dataclass
class Failure:
    """One clip that could not be used, and why."""

    split: str
    clip_id: str
    path: str
    reason: str
    this_run: bool = True  # False: recorded by an earlier run and skipped now


@dataclass
class PreprocessSummary:
    """What a run did; ``fps`` counts frames decoded and processed per wall-clock second in this run."""

    out: str
    total: int = 0  # clips in this shard of the source
    done: int = 0  # processed in this run (ok or failed)
    skipped: int = 0  # already cached with the same settings
    ok: int = 0  # processed ok in this run
    failed: int = 0  # processed and failed in this run
    frames: int = 0  # frames processed in this run
    face_frames: int = 0
    audio_seconds: float = 0.0
    seconds: float = 0.0
    warnings: int = 0  # ok clips with warnings in this run
    workers: int = 1  # clip workers this run used
    failures: list[Failure] = field(default_factory=list)  # this run's failures and earlier ones still standing
    warned: list[tuple[str, str, list[str]]] = field(default_factory=list)  # (split, clip_id, warnings), this run
    # clips whose source file is absent this run (an unmounted drive, a renamed folder): their finished cached
    # clip is kept, never deleted, and they are listed here
    missing: list[Failure] = field(default_factory=list)
    # cached clips whose source left the folder or list and whose file is gone: marked removed this run
    removed: list[Failure] = field(default_factory=list)
    pruned: list[tuple[str, str]] = field(default_factory=list)  # removed clips erased with prune=True (--prune)
    interrupted: bool = False

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def table(self) -> str:
        """A short human summary: counts, speed and every failure with its reason."""
        rows = [
            ("clips", str(self.total)),
            ("processed", f"{self.done} ({self.ok} ok, {self.failed} failed, {self.warnings} with warnings)"),
            ("skipped (cached)", str(self.skipped)),
            ("frames", f"{self.frames} ({self.face_frames} with a face)"),
            ("audio", f"{self.audio_seconds:.1f} s"),
            ("time", f"{self.seconds:.1f} s ({self.fps:.1f} frames/s)"),
            ("cache", self.out),
        ] + ([("erased (--prune)", f"{len(self.pruned)} removed clip(s): arrays and manifest records")]
             if self.pruned else [])
        w = max(len(k) for k, _ in rows)
        lines = [f"{k:<{w}}  {v}" for k, v in rows]
        if self.warned:
            lines.append(f"ok with warnings ({len(self.warned)}):")
            for split, clip_id, warns in self.warned[:10]:
                lines.append(f"  {split}/{clip_id}: {terminal_text('; '.join(warns), newlines=False)}")
            if len(self.warned) > 10:
                lines.append(f"  ... {len(self.warned) - 10} more (see warnings in manifest.jsonl)")
        if self.failures:
            lines.append(f"failed clips ({len(self.failures)}):")
            for f in self.failures:
                when = "" if f.this_run else " [earlier run; --retry-failed redoes it]"
                lines.append(f"  {f.split}/{f.clip_id}: {terminal_text(f.reason, newlines=False)}{when}")
        for title, listed in (("source missing, cached clip kept", self.missing),
                              ("left out, source deleted, renamed or moved to another split", self.removed)):
            if listed:
                lines.append(f"{title} ({len(listed)}):")
                lines += [f"  {f.split}/{f.clip_id}: {terminal_text(f.path, newlines=False)}" for f in listed[:20]]
                if len(listed) > 20:
                    lines.append(f"  ... {len(listed) - 20} more")
        return "\n".join(lines)


# ---------------------------------------------------------------- one clip


def _process_safe(entry: ClipEntry, settings: PreprocessSettings, overlap_io: bool = True, out: Path | None = None):
    """``process_clip`` that cannot raise for a bad clip (a worker exception would otherwise end the whole pool run).

    With ``out`` (the cache), the clip is written there by this process, its face crops streamed into the
    staging folder as they are made, and the result carries no arrays: nothing of clip length is held in
    memory or sent between processes. A failed write (full disk) raises ``MmferError``: it stops the run.
    """
    t0 = time.perf_counter()
    staged = None
    try:
        try:
            if out is not None:
                staged = staging_dir(out, entry.split, entry.clip_id)
            arrays, meta, rec = process_clip(entry, settings, overlap_io=overlap_io, spool=staged)
        except MemoryError:
            reason = f"{entry.path}: out of memory while processing; try --fps or a smaller --detect-max-side"
        except OSError as e:
            if staged is None:
                raise
            raise _write_error(out, entry, e) from None
        except Exception as e:  # noqa: BLE001
            reason = f"{entry.path}: unexpected error ({type(e).__name__}: {e}); please report it"
        else:
            if staged is None or arrays is None:
                return arrays, meta, rec
            try:
                write_clip(out, entry.split, entry.clip_id, arrays, meta, staged=staged)
            except OSError as e:
                raise _write_error(out, entry, e) from None
            staged = None  # renamed into place
            return None, meta, rec
        return None, {}, _failed_record(entry, settings, reason, seconds=round(time.perf_counter() - t0, 3))
    finally:
        if staged is not None:
            shutil.rmtree(staged, ignore_errors=True)


def _write_error(out: Path, entry: ClipEntry, err: OSError) -> MmferError:
    return MmferError(f"{out}: cannot write clip {entry.split}/{entry.clip_id} ({err}); "
                      "check free disk space and permissions, then re-run to resume")


def _failed_record(entry: ClipEntry, settings: PreprocessSettings, reason: str, *, seconds: float = 0.0) -> ClipRecord:
    """The record of a clip that failed outside ``process_clip`` (an unexpected error, a dead worker)."""
    size, mtime = _source_stat(Path(entry.path))
    return ClipRecord(
        clip_id=entry.clip_id, split=entry.split, label=entry.label, path=os.path.abspath(entry.path),
        status="failed", reason=reason, settings_hash=settings.hash, settings=settings.to_dict(),
        source_size=size, source_mtime=mtime, seconds=seconds,
    )


# ---------------------------------------------------------------- selection and resume


def shard_of(split: str, clip_id: str, n: int) -> int:
    """Stable shard number of a clip (same on every machine and Python run, unlike ``hash``)."""
    digest = hashlib.sha1(f"{split}/{clip_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % n


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> (i, n) with 0 <= i < n."""
    try:
        i_s, n_s = text.split("/")
        i, n = int(i_s), int(n_s)
    except ValueError:
        raise MmferError(f"--shard {text!r}: expected i/n, e.g. 0/4 for the first of four machines") from None
    if n < 1 or not 0 <= i < n:
        raise MmferError(f"--shard {text!r}: need 0 <= i < n (shards are numbered from 0)")
    return i, n


def is_done(entry: ClipEntry, rec: ClipRecord | None, settings: PreprocessSettings, out: str | Path) -> bool:
    """True when the latest record already covers this clip as it is now, with these settings."""
    if rec is None or rec.settings_hash != settings.hash:
        return False
    size, mtime = _source_stat(Path(entry.path))
    if rec.source_size != size or rec.source_mtime != mtime or rec.label != entry.label:
        return False
    if rec.status == "ok":
        problem = clip_problem(out, entry.split, entry.clip_id)
        if problem and (clip_dir(out, entry.split, entry.clip_id) / "meta.json").exists():
            log.warning("%s; redoing the clip", problem)
        return not problem
    return True


# ---------------------------------------------------------------- the run


def auto_workers(n_clips: int, cores: int | None = None, *, start_method: str = "spawn") -> int:
    """Workers for ``workers=0``: one per core and at most one per clip; spawned ones at most one per
    ``AUTO_CLIPS_PER_WORKER`` clips (their start-up costs more than a few clips take)."""
    cores = cores or os.cpu_count() or 1
    per_worker = 1 if start_method == "fork" else AUTO_CLIPS_PER_WORKER
    return max(1, min(cores, -(-n_clips // per_worker)))


# Face backends whose loaded models a forked worker can use: dlib and none hold no thread pools
# (insightface's onnxruntime sessions do, and onnxruntime's pools do not survive a fork).
FORK_SAFE_BACKENDS = ("dlib", "none")


def worker_start_method(face_backend: str = "dlib") -> str:
    """``fork`` on Linux for a fork-safe face backend while neither torch nor onnxruntime is loaded, else ``spawn``.

    A forked worker shares the parent's loaded landmark model and imports, so it starts at once and the
    95 MB model is in memory once. Forking a process whose torch/OpenMP or onnxruntime threads have run can
    leave the child waiting on a lock that no thread will release; preprocessing with dlib needs neither, so
    a process that has loaded one (a training script, a notebook) gets spawned workers instead.
    """
    import sys

    if (sys.platform.startswith("linux") and str(face_backend).lower() in FORK_SAFE_BACKENDS
            and registered_backend(face_backend) is None  # (a built-in name replaced by the user's class)
            and "torch" not in sys.modules and "onnxruntime" not in sys.modules):
        return "fork"
    return "spawn"


def _iter_results(todo: Sequence[ClipEntry], settings: PreprocessSettings, workers: int, start_method: str,
                  out: Path | None = None):
    """Yield (entry, result) as clips finish; a bounded number in flight so Ctrl-C loses few clips.

    If a worker process dies (out of memory, a decoder segfault), the clips that were in flight are
    retried afterwards one at a time, so only the clip that really kills a worker is marked failed.
    """
    if workers <= 1:
        for e in todo:
            yield e, _process_safe(e, settings, True, out)
        return
    suspects: list[ClipEntry] = []
    yield from _pool_results(list(todo), settings, workers, suspects, start_method, out)
    for e in suspects:
        yield from _pool_results([e], settings, 1, None, start_method, out)


def _pool_results(
    todo: list[ClipEntry], settings: PreprocessSettings, workers: int, suspects: list[ClipEntry] | None,
    start_method: str, out: Path | None = None,
):
    """Run ``todo`` on a process pool (restarted after a crash); crashed clips go to ``suspects``, or fail if None."""
    import multiprocessing as mp

    ctx = mp.get_context(start_method)
    overlap_io = workers < (os.cpu_count() or 1)  # helper threads only where a core is free for them
    queue = todo[::-1]
    with _opencv_threads_stopped(start_method == "fork"):
        while queue:
            try:
                pool = ProcessPoolExecutor(
                    max_workers=workers, mp_context=ctx, initializer=_init_worker,
                    initargs=(settings.face_backend, os.getpid(), registered_backend(settings.face_backend))
                )
            except OSError as e:  # its locks live in shared memory (/dev/shm): read-only or absent in a container
                raise MmferError(f"cannot start {workers} worker processes ({e.strerror or e}; in a container, "
                                 "shared memory, /dev/shm, read-only or missing is the usual cause); use --workers 1"
                                 ) from None
            running: dict[Future, ClipEntry] = {}
            try:
                try:  # workers that die as they start are no clip's fault: said as such, no clip marked failed
                    for ready in [pool.submit(os.getpid) for _ in range(workers)]:  # they start side by side
                        ready.result()
                except BrokenProcessPool:
                    raise MmferError(
                        "preprocess: the worker processes died as they started, before any clip (their own error "
                        "is printed above). A script that calls preprocess with workers other than 1 needs the "
                        "call under `if __name__ == \"__main__\":` (spawned workers run the script again); else "
                        "the face backend may not load in a fresh process. workers=1 (--workers 1) runs in this "
                        "process") from None
                broken = False
                while queue or running:
                    while queue and len(running) < workers + 1:
                        e = queue.pop()
                        running[pool.submit(_process_safe, e, settings, overlap_io, out)] = e
                    finished, _ = wait(running, return_when=FIRST_COMPLETED)
                    crashed: list[ClipEntry] = []
                    for fut in finished:
                        e = running.pop(fut)
                        if isinstance(fut.exception(), BrokenProcessPool):
                            crashed.append(e)
                        else:
                            yield e, fut.result()
                    if crashed:
                        crashed += list(running.values())
                        running.clear()
                        broken = True
                    for e in crashed:
                        if suspects is not None:
                            log.warning("%s: a worker process died while this clip was in flight; "
                                        "it will be retried alone", e.path)
                            suspects.append(e)
                        else:
                            yield e, (None, {}, _failed_record(
                                e, settings, f"{e.path}: the worker process died while processing this clip (out of "
                                "memory or decoder crash?); re-run with --retry-failed --workers 1 to retry it alone"))
                    if broken:
                        break
            except BaseException:
                procs = list((getattr(pool, "_processes", None) or {}).values())
                for p in procs:
                    p.terminate()
                for p in procs:  # reaped here, so nothing at interpreter exit waits on them
                    p.join(timeout=5)
                pool.shutdown(wait=False, cancel_futures=True)
                raise
            pool.shutdown(wait=True)


def _check_cache_structure(out: Path, splits: Sequence[str]) -> None:
    """Before any clip: the manifest is a plain file (not a folder, not a link), and every split folder that
    will take clips is a writable folder inside the cache, not a link out of it, so no clip is written
    and then left without its record, and nothing is written outside the cache."""
    from mmfer.data.cache import check_manifest_writable
    from mmfer.outputs import check_inside, check_output_dir

    check_manifest_writable(out)
    for split in splits:
        d = clip_dir(out, split, "x").parent
        check_inside(out, d, what="cached clips")
        check_output_dir(d, option=f"--out (split folder {split})")


def _dangling_link_above(path: str, root: str) -> bool:
    """A folder between ``root`` and ``path`` that is a symbolic link to nothing (a class folder linked to an
    unmounted drive): its clips are missing, not deleted."""
    d = os.path.dirname(os.path.abspath(path))
    while d.startswith(root + os.sep):
        if os.path.islink(d) and not os.path.exists(d):
            return True
        d = os.path.dirname(d)
    return False


def _version(rec: ClipRecord) -> Any:
    return rec.settings.get("cache_version") if isinstance(rec.settings, dict) else None


def _mark_removed(out: Path, latest: dict[tuple[str, str], ClipRecord], entries: Sequence[ClipEntry], *,
                  shard: tuple[int, int], every_split: bool, root: Path | None,
                  all_entries: Sequence[ClipEntry]) -> list[Failure]:
    """Cached clips of this run's splits (and shard) that the source no longer holds: a "removed" record each, so
    that training, scoring and submissions stop seeing them (their arrays stay; a clip whose file comes back is
    processed again). Two cases: the file was deleted or renamed (no longer listed, and gone from a folder that
    is still there, or from under the source ``root`` that is still there: a class folder deleted whole), or a
    list moved the same file to another split (it would be in both; seen across shards, from ``all_entries``, but
    only when the run covers ``every_split``: with --splits the list's other splits are not read). A clip whose
    folder is gone outside the source (an unmounted drive, a folder moved elsewhere) or whose file still exists is
    left alone."""
    listed = {(e.split, e.clip_id) for e in entries}
    split_of_path = {os.path.abspath(e.path): e.split for e in all_entries}
    root_dir = os.path.abspath(root) if root is not None and root.is_dir() else None
    splits = {e.split for e in entries}
    i, n = shard
    gone = []
    for (split, clip_id), rec in sorted(latest.items()):
        if (split, clip_id) in listed or (n > 1 and shard_of(split, clip_id, n) != i):
            continue
        moved_to = split_of_path.get(os.path.abspath(rec.path)) if every_split else None
        if moved_to is not None and moved_to != split:
            why = f"moved to {moved_to} in the list; left out of {split}"
        elif split not in splits:
            continue
        elif _version(rec) != CACHE_VERSION:  # no command of this mmfer could use it, and it blocked the cache
            why = f"cached by an older mmfer (cache_version {_version(rec)!r}) and no longer listed; left out"
        elif not os.path.lexists(rec.path) and (
                os.path.isdir(os.path.dirname(os.path.abspath(rec.path)))
                or (root_dir is not None and os.path.abspath(rec.path).startswith(root_dir + os.sep)
                    and not _dangling_link_above(rec.path, root_dir))):
            why = "source file deleted or renamed; left out of the cache"
        else:
            continue
        append_manifest(out, dataclasses.replace(rec, status="removed", reason=why))
        gone.append(Failure(split, clip_id, rec.path, why, this_run=True))
        del latest[(split, clip_id)]
    if gone:
        log.warning("%s: %d cached clip(s) whose source was deleted, renamed or moved to another split are left out "
                    "from now on (e.g. %s/%s: %s); their arrays are kept (--prune erases them)", out, len(gone), gone[0].split,
                    gone[0].clip_id, gone[0].reason)
    return gone


SAME_CONTENT_KINDS = ("under different labels", "in Train and in another split", "in two splits",
                      "twice in one split")  # worst first


def _same_content_kind(group: Sequence[ClipEntry]) -> str:
    labels, splits = {e.label for e in group if e.label}, {e.split for e in group}  # (Test clips have none)
    return SAME_CONTENT_KINDS[0 if len(labels) > 1 else 1 if "Train" in splits and len(splits) > 1
                              else 2 if len(splits) > 1 else 3]


def _warn_same_content(entries: Sequence[ClipEntry]) -> None:
    """Clips that are one file under several names or labels are said before any work (``same_content``): a
    warning with the worst three, every group at DEBUG (`mmfer -v`) with its files."""
    from mmfer.data.index import same_content

    groups = sorted(((_same_content_kind(g), g) for g in same_content(entries)),
                    key=lambda kg: SAME_CONTENT_KINDS.index(kg[0]))
    if not groups:
        return
    for kind, g in groups:
        log.debug("one file %s: %s", kind, " = ".join(f"{_clip_name(e)} {e.path}" for e in g))
    shown = "; ".join(" = ".join(map(_clip_name, g)) + f" ({kind})" for kind, g in groups[:3])
    log.warning("%d group(s) of clips are the same file (the same bytes), e.g. %s%s. A clip under two emotions "
                "teaches both, and a Val or Test clip that is also in Train makes the Val figures read high: keep "
                "one of each (`mmfer -v preprocess ...` lists every group's files)", len(groups), shown,
                f"; and {len(groups) - 3} more" if len(groups) > 3 else "")


def _clip_name(e: ClipEntry) -> str:
    return f"{e.split}/{e.clip_id}{f' ({e.label})' if e.label else ''}"


def preprocess(
    source: str | Path | Sequence[ClipEntry],
    out: str | Path,
    *,
    splits: Iterable[str] | str | None = None,
    workers: int = 1,
    settings: PreprocessSettings = PreprocessSettings(),
    shard: tuple[int, int] | str = (0, 1),
    strict: bool = False,
    retry_failed: bool = False,
    progress: bool = True,
    same_content_check: bool = True,
    prune: bool = False,
) -> PreprocessSummary:
    """Cache every clip of ``source`` (CSV, AFEW root, folder, video, or a list of ``ClipEntry``) under ``out``.

    Skips clips already cached with the same settings; ``retry_failed`` redoes earlier failures;
    ``strict`` raises ``MmferError`` at the end (after writing everything) if any clip failed.
    ``same_content_check``: say clips that are one file (``index.same_content``), from shard 0. ``prune``
    (``--prune``): erase the cached clips marked removed, this run or before (``cache.prune_removed``): how a
    deleted recording leaves the cache; not in a shard, since it rewrites the manifest.
    ``workers`` 0 means auto: one per CPU core and at most one per clip; spawned workers only when there
    are ``AUTO_CLIPS_PER_WORKER`` clips each to pay for starting them. Workers are forked, or spawned where that is not safe
    (``worker_start_method``); a script that calls this with ``workers`` other than 1 and may spawn needs
    the usual ``if __name__ == "__main__":`` guard. That is why the default here is 1, where ``mmfer preprocess
    --workers`` defaults to 0: a plain script keeps working wherever it runs.
    """

    out = Path(out)
    i, n = parse_shard(shard) if isinstance(shard, str) else shard  # "i/n" as on the command line, or (i, n)
    if n < 1 or not 0 <= i < n:
        raise MmferError(f"shard {i}/{n}: need 0 <= i < n")
    if prune and n > 1:
        raise MmferError(f"--prune with --shard {i}/{n}: pruning rewrites the manifest, which other shards append to; "
                         "run it once the shards are done, without --shard")
    settings.check()
    backend_name(settings.face_backend)  # a mistyped backend is said before the source is indexed
    from mmfer.data.index import check_out_not_read_as_data
    from mmfer.outputs import check_output_dir

    check_output_dir(out, option="--out")  # a file there, or a read-only disk, is said before any clip
    if isinstance(source, (str, Path)):
        check_out_not_read_as_data(out, source, what="the cache's folders", example="cache")
    if isinstance(source, (str, Path)):
        entries = index_source(source, splits=splits)
    else:
        entries = list(source)
        if splits is not None:
            from mmfer.data.index import _normalise_splits

            wanted = _normalise_splits(splits)
            entries = [e for e in entries if e.split in wanted]
    _check_duplicates(entries, folders=True)  # (a list of ClipEntry too)
    all_entries = entries
    if same_content_check and i == 0:  # once, not by every shard
        _warn_same_content(all_entries)
    if n > 1:
        entries = [e for e in entries if shard_of(e.split, e.clip_id, n) == i]
    if workers < 0:
        raise MmferError(f"--workers {workers}: must be 0 (one per CPU core) or more")
    auto = workers == 0
    _check_cache_structure(out, sorted({e.split for e in entries}))

    out.mkdir(parents=True, exist_ok=True)
    stale = remove_stale_temporaries(out)
    if stale:
        log.info("%s: removed %d temporary folder(s) left by an interrupted run", out, len(stale))
    latest = read_manifest(out)
    summary = PreprocessSummary(out=str(out), total=len(entries))
    summary.removed = _mark_removed(out, latest, entries, shard=(i, n), every_split=splits is None,
                                    root=Path(source) if isinstance(source, (str, Path)) else None,
                                    all_entries=all_entries)
    if prune:
        summary.pruned = prune_removed(out)
        if summary.pruned:
            log.info("%s: erased %d removed clip(s) and their manifest records", out, len(summary.pruned))
    todo: list[ClipEntry] = []
    earlier_failures: list[Failure] = []
    replaced: list[tuple[str, str, str]] = []  # (clip, the file it was made from, the file it will be made from)
    older = 0  # clips cached by an older mmfer, made again
    for e in entries:
        rec = latest.get((e.split, e.clip_id))
        if rec is not None and rec.status == "ok" and _source_stat(Path(e.path))[0] < 0:
            # the source is absent for this run (unmounted drive, renamed folder): a finished clip is never
            # deleted for that, nor its record replaced; it is reported, and used as it is
            summary.missing.append(Failure(e.split, e.clip_id, str(e.path), "source file missing; cached clip kept",
                                           this_run=False))
            continue
        if is_done(e, rec, settings, out) and not (retry_failed and rec.status == "failed"):
            summary.skipped += 1
            if rec.path != os.path.abspath(e.path):  # the same file found elsewhere (a folder moved): its record
                append_manifest(out, dataclasses.replace(rec, path=os.path.abspath(e.path)))  # follows, so a later
                # deletion is seen (records hold absolute paths, as process_clip writes them)
            if rec.status == "failed":
                earlier_failures.append(Failure(e.split, e.clip_id, str(e.path), rec.reason, this_run=False))
        else:
            todo.append(e)
            older += rec is not None and _version(rec) != CACHE_VERSION
            if rec is not None and rec.path != os.path.abspath(e.path) and Path(rec.path).is_file():
                replaced.append((f"{e.split}/{e.clip_id}", rec.path, os.path.abspath(e.path)))
    if prune and summary.missing:  # listed, so not removed: a list naming a deleted file keeps its clip
        log.warning("%s: --prune: %d cached clip(s) whose source file is missing are still listed, so not erased (e.g. "
                    "%s/%s); remove their rows from the list and run again", out, len(summary.missing),
                    summary.missing[0].split, summary.missing[0].clip_id)
    if replaced:  # two sources with the same clip ids in one cache: each run would redo the other's clips
        clip, was, now = replaced[0]
        log.warning("%s: %d cached clip(s) will be made from another file than before, which is still there (e.g. "
                    "%s: was %s, now %s); two sources sharing clip ids in one cache replace each other's clips: use "
                    "one cache per source", out, len(replaced), clip, was, now)
    if settings.fps and settings.fit_every > 1 and settings.fps / settings.fit_every < MIN_FITS_PER_SECOND:
        log.warning("--fps %g with --fit-every %d fits landmarks only every %.2f s and interpolates between; "
                    "--fit-every 1 fits every frame", settings.fps, settings.fit_every, settings.fit_every / settings.fps)
    start_method = worker_start_method(settings.face_backend)
    workers = auto_workers(len(todo), start_method=start_method) if auto else max(1, min(workers, len(todo)))
    summary.workers = workers
    # a missing backend is the user's problem to fix before any clip runs; spawned workers load their own
    # copy, forked ones share this process's, as they share the decoding libraries imported here
    if workers == 1 or start_method == "fork":
        get_backend(settings.face_backend)
        from mmfer.data.video import import_decoders
        from mmfer.faces import align, track  # noqa: F401

        import_decoders()
    else:
        check_backend(settings.face_backend)
        check_spawnable(settings.face_backend)
    log.info("%s: %d clip(s), %d cached, %d to process with %d worker(s)%s%s", out, len(entries),
             summary.skipped, len(todo), workers, f" (shard {i}/{n})" if n > 1 else "",
             f" ({older} of them cached by an older mmfer, made again)" if older else "")

    t0 = time.perf_counter()
    bar = progress_bar(desc="preprocess", total=len(todo), unit="clip", enabled=progress and bool(todo))
    results = _iter_results(todo, settings, workers, start_method, out)
    # SIGTERM (kill, timeout, a container stop) ends the run like Ctrl-C: workers stopped, finished clips kept
    old_term = sigterm_as_interrupt()
    try:
        for entry, (arrays, meta, rec) in results:
            if rec.status == "ok":  # written by _process_safe, where it was made
                summary.ok += 1
                summary.frames += rec.frames
                summary.face_frames += rec.face_frames
                summary.audio_seconds += rec.audio_seconds
                if rec.warnings:
                    summary.warnings += 1
                    summary.warned.append((entry.split, entry.clip_id, list(rec.warnings)))
                    log.debug("%s/%s: %s", entry.split, entry.clip_id, "; ".join(rec.warnings))
            else:
                if _source_stat(Path(entry.path))[0] < 0 and (latest.get((entry.split, entry.clip_id)) or rec).status == "ok":
                    # the source vanished while this run went on: the finished clip stays, and so does its record
                    summary.missing.append(Failure(entry.split, entry.clip_id, str(entry.path), rec.reason))
                    summary.done += 1
                    bar.update(1)
                    continue
                remove_clip(out, entry.split, entry.clip_id)  # a stale older version must not look current
                summary.failed += 1
                summary.failures.append(Failure(entry.split, entry.clip_id, str(entry.path), rec.reason))
            append_manifest(out, rec)
            summary.done += 1
            bar.update(1)
            bar.set_postfix(failed=summary.failed, refresh=False)
    except KeyboardInterrupt:
        summary.interrupted = True
        summary.seconds = time.perf_counter() - t0
        bar.close()
        log.warning("interrupted after %d of %d clip(s); they are kept in %s. Re-run the same command to resume "
                    "(finished clips are skipped).", summary.done, len(todo), out)
        raise
    finally:
        results.close()  # stops worker processes at once on any early exit
        remove_stale_temporaries(out)  # the staging folders of clips they had in flight
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
    bar.close()
    summary.seconds = time.perf_counter() - t0
    summary.failures.extend(earlier_failures)
    if summary.missing:
        log.warning("%s: %d clip(s) whose source file is missing were kept as cached (e.g. %s); nothing is deleted "
                    "for a missing source: check the drive or folder", out, len(summary.missing),
                    summary.missing[0].path)
    if strict and summary.failures:
        raise MmferError(
            f"{out}: {len(summary.failures)} clip(s) failed (strict mode):\n"
            + "\n".join(f"  {f.split}/{f.clip_id}: {f.reason}" for f in summary.failures)
        )
    return summary
