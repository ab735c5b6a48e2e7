"""``mmfer bench``: what each stage of the system costs on real clips, measured in one run on the same cores.

Stages, each run in a fresh Python process (``python -m mmfer.bench``) so that its peak memory is its own
and nothing is left warm by another stage:

* **decode**: every frame to RGB in 32-frame batches, through preprocessing's decoder (decord; PyAV one frame
  at a time for clips too large to buffer). The floor that no preprocessing can beat.
* **preprocess**: :func:`mmfer.data.preprocess.preprocess` (what ``mmfer preprocess`` runs) into a temporary
  cache, default settings. The face model is loaded before the clock starts (a corpus run pays it once);
  worker processes, when asked for, start inside the timed call.
* **predict**: :func:`mmfer.predict.predict` with the default bundle (or ``model``) on the same clips:
  seconds per clip, model loading apart. Without the bundle the figure is null and the reason recorded.
* **train**: for each branch, a few optimisation steps of its committed ``configs/<branch>.yaml`` on the
  temporary cache, through the same dataset, collate, optimisation step and loader workers as ``mmfer train``
  (batches drawn with replacement, no class weights). The time spent waiting for a batch is kept apart from
  compute, which shows whether training waits on data. Clips without a label get placeholder ones (for the loss).

``peak_rss_mb`` is each stage process's peak resident set (``ru_maxrss``). Worker processes (the preprocessing
pool, DataLoader workers) are reported apart as the largest one: they share pages with their parent.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from mmfer.data.long_clip import LONG_CLIP_SIZES, make_long_clip  # noqa: F401 - bench makes its long clip
from mmfer.errors import MmferError
from mmfer.labels import EMOTIONS
from mmfer.process_stats import ChildPeaks, cpu_seconds, loadavg, peak_rss_mb
from mmfer.progress import draw_bars
from mmfer.signals import start_iter

log = logging.getLogger(__name__)


BRANCHES = ("c3d", "cnn_lstm", "landmark_brnn", "audio_cnn")
STAGES = ("decode", "preprocess", "predict", "train")
FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "assets" / "cremad"  # a checkout's; an install has none
DECODE_BATCH = 32
TRAIN_SPLIT = "Train"
REFERENCE_CLIP_SECONDS = 3.0  # the predict target is stated for a 3-s clip


# ---------------------------------------------------------------- the run
def bench(
    videos: str | Path | None = None,
    *,
    device: str = "cpu",
    workers: int = 0,
    repeat: int = 1,
    steps: int = 3,
    warmup: int = 1,
    batch_size: int | None = None,
    branches: Sequence[str] = BRANCHES,
    stages: Sequence[str] = STAGES,
    max_clips: int | None = None,
    model: str | Path = "default",
    configs: str | Path | None = None,
    long_clip: float | None = None,
    long_size: str = "1080p",
    progress: bool = True,
) -> dict[str, Any]:
    """Benchmark every stage on the videos in ``videos`` (default: the bundled CREMA-D clips); returns the
    result dict that ``--out`` writes (see :func:`format_table` for the human form).

    ``workers``: preprocessing workers (default 0, auto, as ``mmfer preprocess``); ``repeat`` lists every
    clip that many times (as distinct clips), for a corpus-sized run in which starting worker processes is
    paid once over many clips; ``steps`` timed training steps per branch after ``warmup`` untimed ones;
    ``batch_size`` overrides the configs' (for quick runs); ``max_clips`` takes the first clips only;
    ``model`` is what predict loads (``mmfer predict --model``: default, a bundle, RUN or FUSE folder).
    ``long_clip``: instead of ``videos``, one synthetic 25-fps clip of that many seconds at ``long_size``
    (720p or 1080p; see :func:`make_long_clip`), to measure that memory does not grow with clip length and
    what predict costs per second of video, stage by stage.
    """
    from tqdm.auto import tqdm

    work = Path(tempfile.mkdtemp(prefix="mmfer-bench-"))
    if long_clip is not None:
        if videos is not None:
            raise MmferError("--long-clip makes its own video: leave out --videos")
        if long_size not in LONG_CLIP_SIZES:
            raise MmferError(f"--long-size {long_size!r}: choose {' or '.join(LONG_CLIP_SIZES)}")
        videos = make_long_clip(work / "long" / f"long_{long_size}_{long_clip:g}s.mp4", seconds=long_clip,
                                size=LONG_CLIP_SIZES[long_size])
    try:
        return _bench(videos, work, device=device, workers=workers, repeat=repeat, steps=steps, warmup=warmup,
                      batch_size=batch_size, branches=branches, stages=stages, max_clips=max_clips, model=model,
                      configs=configs, progress=progress, tqdm=tqdm)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _bench(videos, work: Path, *, device, workers, repeat, steps, warmup, batch_size, branches, stages, max_clips,
           model, configs, progress, tqdm) -> dict[str, Any]:
    entries = bench_entries(videos, max_clips=max_clips, repeat=repeat)
    stages = _check_stages(stages)
    branches = _check_branches(branches, configs) if "train" in stages else []
    from mmfer.engine.config import is_device_name

    if not is_device_name(device, auto=False):  # no auto: a figure says which device it is of
        raise MmferError(f"--device {device!r}: choose cpu, cuda or cuda:N")
    if steps < 1 or warmup < 0:
        raise MmferError(f"--steps {steps} / --warmup {warmup}: need at least one timed step and no negative warm-up")
    machine = machine_info(device)
    result: dict[str, Any] = {
        "videos": str(videos or FIXTURES),
        "clips": len(entries),
        "repeat": repeat,
        "model": str(model),
        "device": device,
        "machine": machine,
        "command": None,  # the CLI fills in the command line
        "decode_fps": None,
        "preprocess_fps": None,
        "predict_seconds_per_clip": None,
        "train_clips_per_second": {},
        "peak_rss_mb": {},
        "stages": {},
        "errors": {},
    }
    todo = [s for s in stages if s != "train"] + [f"train:{b}" for b in branches if "train" in stages]
    bar = tqdm(todo, desc="bench", unit="stage", disable=not draw_bars(progress))
    for i, name in enumerate(bar, 1):
        bar.set_postfix_str(name, refresh=True)
        if not draw_bars(progress):  # no bar: a line a stage, so a log shows where a long bench is
            log.info("bench: stage %d of %d, %s", i, len(todo), name)
        stage, _, branch = name.partition(":")
        args = {"entries": [[e.clip_id, e.split, e.label, str(e.path)] for e in entries], "device": device,
                "cache": str(work / "cache"), "workers": workers, "steps": steps, "warmup": warmup,
                "batch_size": batch_size, "branch": branch, "model": str(model),
                "config": str(_branch_config(branch, configs)) if branch else None}
        out = run_stage(stage, args, work=work)
        _record(result, stage, branch, out)
    machine["load_average_after"] = loadavg()
    return result


def bench_entries(videos: str | Path | None, *, max_clips: int | None = None, repeat: int = 1):
    """The clips to time: every video under ``videos`` (or the bundled fixtures), ``repeat`` times, all in
    split Train."""
    from mmfer.data.index import ClipEntry, index_source

    source = Path(videos) if videos is not None else FIXTURES
    if not source.exists():
        if videos is None:  # an installed package: the fixtures stay in the source tree
            raise MmferError(f"no --videos given, and this install has no CREMA-D fixtures ({FIXTURES}, in a source "
                             "checkout): give --videos DIR, a folder of videos")
        raise MmferError(f"{source}: no such folder; check the path (a folder of video files, searched recursively)")
    if max_clips is not None and max_clips < 1:
        raise MmferError(f"--max-clips {max_clips}: must be at least 1 (or left out for every clip)")
    entries = _readable(list(index_source(source)))
    entries.sort(key=lambda e: (e.split, e.clip_id))
    if max_clips is not None:
        entries = entries[: int(max_clips)]
    if not entries:
        raise MmferError(f"{source}: no video files found; give --videos a folder holding .mp4/.avi/.flv/... clips")
    if repeat < 1:
        raise MmferError(f"--repeat {repeat}: must be at least 1")
    entries = [e for _ in range(repeat) for e in entries]
    # one split, unique ids, and a label for the loss (a benchmark does not care which)
    seen: dict[str, int] = {}
    out = []
    for i, e in enumerate(entries):
        n = seen.get(e.clip_id, 0)
        seen[e.clip_id] = n + 1
        clip_id = e.clip_id if n == 0 else f"{e.clip_id}__{n}"
        out.append(ClipEntry(clip_id=clip_id, split=TRAIN_SPLIT, label=e.label or EMOTIONS[i % len(EMOTIONS)],
                             path=Path(e.path)))
    return out


def _readable(entries: list) -> list:
    """The entries whose video probes (an empty or broken file is left out with a warning, not a failed bench)."""
    from mmfer.data.video import probe_video

    kept = []
    for e in entries:
        try:
            info = probe_video(e.path)
            if info.frames < 1:
                raise ValueError("no frames")
        except Exception as err:  # noqa: BLE001 - any unreadable file is left out, named
            log.warning("%s: left out of the benchmark (%s)", e.path, err)
            continue
        kept.append(e)
    return kept


def _check_stages(stages: Sequence[str]) -> list[str]:
    stages = [s.strip() for s in (stages.split(",") if isinstance(stages, str) else stages) if s.strip()]
    bad = [s for s in stages if s not in STAGES]
    if bad or not stages:
        raise MmferError(f"--stages {','.join(stages)}: choose from {', '.join(STAGES)}")
    if "train" in stages and "preprocess" not in stages:
        raise MmferError("--stages: train needs preprocess (it trains on the cache preprocess writes)")
    return [s for s in STAGES if s in stages]


def _branch_config(branch: str, configs: str | Path | None) -> Path:
    """``configs``/<branch>.yaml, or the shipped config of that name (mmfer.engine.config.shipped_config_dir)."""
    from mmfer.engine.config import shipped_config_dir

    folder = Path(configs) if configs is not None else (shipped_config_dir() or Path("configs"))
    return folder / f"{branch}.yaml"


def _check_branches(branches: Sequence[str], configs: str | Path | None) -> list[str]:
    """The branches to time training of (only asked for with the train stage), each with a config that loads."""
    branches = [b.strip() for b in (branches.split(",") if isinstance(branches, str) else branches) if b.strip()]
    for b in branches:
        path = _branch_config(b, configs)
        if not path.is_file():
            raise MmferError(f"--branches {b}: no config {path}; the committed branches are {', '.join(BRANCHES)}")
        from mmfer.engine.config import load_train_config
        from mmfer.models.registry import build_model

        config = load_train_config(path)
        if build_model(config.model.name, **dict(config.model.kwargs)).input_kind == "face_image":
            raise MmferError(f"--branches {b}: a face_image model trains on an image tree, and bench times training "
                             "on the cache it makes from the clips; time it with `mmfer train` on its images")
    return branches


def _record(result: dict[str, Any], stage: str, branch: str, out: dict[str, Any]) -> None:
    key = f"train:{branch}" if branch else stage
    result["stages"][key] = out
    rss = result["peak_rss_mb"]
    if stage == "train":
        rss.setdefault("train", {})[branch] = out.get("peak_rss_mb")
        if out.get("workers_peak_rss_mb"):
            rss.setdefault("train_loader_workers", {})[branch] = out["workers_peak_rss_mb"]
    else:
        rss[stage] = out.get("peak_rss_mb")
        if out.get("workers_peak_rss_mb"):
            rss[f"{stage}_workers"] = out["workers_peak_rss_mb"]
    if out.get("error"):
        result["errors"][key] = out["error"]
    if stage == "decode":
        result["decode_fps"] = out.get("fps")
    elif stage == "preprocess":
        result["preprocess_fps"] = out.get("fps")
    elif stage == "predict":
        result["predict_seconds_per_clip"] = out.get("seconds_per_clip")
    elif stage == "train":
        result["train_clips_per_second"][branch] = out.get("clips_per_second")


def run_stage(stage: str, args: dict[str, Any], *, work: Path) -> dict[str, Any]:
    """Run one stage in a fresh ``python -m mmfer.bench`` process; its result dict (with its peak memory)."""
    work.mkdir(parents=True, exist_ok=True)
    tag = f"{stage}-{args.get('branch') or 'all'}"
    arg_file, out_file = work / f"{tag}.args.json", work / f"{tag}.out.json"
    arg_file.write_text(json.dumps(args), encoding="utf-8")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "mmfer.bench", stage, str(arg_file), str(out_file)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0 or not out_file.is_file():
        tail = "\n".join((proc.stderr or proc.stdout or "").strip().splitlines()[-15:])
        raise MmferError(f"bench stage {tag} failed (exit {proc.returncode}):\n{tail}")
    out = json.loads(out_file.read_text(encoding="utf-8"))
    out["process_seconds"] = round(time.perf_counter() - t0, 2)  # the whole stage process, start-up included
    return out


# ---------------------------------------------------------------- stages (each in its own process)
def stage_decode(args: dict[str, Any]) -> dict[str, Any]:
    """Every frame of every clip to RGB in batches, through the decoder preprocessing uses (decord, or PyAV
    one frame at a time for clips too large to buffer): the decoding floor."""
    from mmfer.data.video import iter_frame_batches, probe_video

    paths = [e[3] for e in args["entries"]]

    def one_pass() -> tuple[int, float, float]:
        frames, seconds = 0, 0.0
        t0 = time.perf_counter()
        cpu0.clear()
        cpu0.append(cpu_seconds())
        for p in paths:
            info = probe_video(p)
            seconds += info.frames / (info.fps or 25.0)
            for _, batch in iter_frame_batches(p, batch_size=DECODE_BATCH):
                frames += len(batch)
        return frames, seconds, time.perf_counter() - t0

    cpu0: list[float] = []
    one_pass()  # warm-up: library load and the files into the page cache
    frames, video_seconds, wall = one_pass()
    cpu = cpu_seconds() - cpu0[0]
    return {"frames": frames, "seconds": round(wall, 3), "fps": round(frames / wall, 1),
            "cpu_seconds": round(cpu, 3), "cpu_ms_per_frame": round(1000 * cpu / frames, 3),
            "video_seconds": round(video_seconds, 3), "mean_clip_seconds": round(video_seconds / len(paths), 3)}


def stage_preprocess(args: dict[str, Any]) -> dict[str, Any]:
    """``preprocess`` of every clip into the bench cache (kept for the train stage)."""
    from mmfer.data.cache import PreprocessSettings
    from mmfer.data.preprocess import preprocess
    from mmfer.data.video import import_decoders
    from mmfer.faces.backends import get_backend

    settings = PreprocessSettings()
    t0 = time.perf_counter()
    get_backend(settings.face_backend)  # once per run, like the decode stage's warm-up: not timed
    import_decoders()
    load = time.perf_counter() - t0
    t0, cpu0 = time.perf_counter(), cpu_seconds()
    summary = preprocess(_entries(args), args["cache"], settings=settings, workers=int(args["workers"]), progress=False,
                         same_content_check=False)  # --repeat lists each file several times, by design
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    return {"frames": summary.frames, "face_frames": summary.face_frames, "clips": summary.total,
            "failed": summary.failed, "seconds": round(wall, 3), "fps": round(summary.frames / wall, 1),
            "cpu_seconds": round(cpu, 3), "cpu_ms_per_frame": round(1000 * cpu / max(1, summary.frames), 3),
            "workers": summary.workers, "model_load_seconds": round(load, 3), "settings": settings.to_dict()}


def stage_predict(args: dict[str, Any]) -> dict[str, Any]:
    """``mmfer predict`` with the default bundle over the clips (each file once, whatever --repeat says); null
    figures with the reason when it cannot run."""
    paths = list(dict.fromkeys(e[3] for e in args["entries"]))
    from mmfer.predict import predict

    t0 = time.perf_counter()
    try:
        result = predict(paths, model=args.get("model", "default"), device=args["device"], progress=False)
    except MmferError as e:
        return {"error": str(e), "seconds_per_clip": None}
    wall = time.perf_counter() - t0
    load = float(result.load_seconds)
    per_clip = (wall - load) / len(paths)  # what a clip costs once the model is loaded, CSV writing aside
    clip_seconds = _mean_clip_seconds(paths)
    # the same files again in the same process: a long folder's clips cost this (the first pass also pays each
    # library's first use, about 20% more in a 6-clip run)
    t1 = time.perf_counter()
    again = predict(paths, model=args.get("model", "default"), device=args["device"], progress=False)
    warm = (time.perf_counter() - t1 - float(again.load_seconds)) / len(paths)
    stages: dict[str, float] = {}
    for p in result.predictions:
        for k, v in p.stages.items():
            stages[k] = round(stages.get(k, 0.0) + v, 3)
    media = stages.pop("media_seconds", 0.0)
    return {"clips": len(paths), "seconds": round(wall, 3), "load_seconds": round(load, 3),
            "seconds_per_clip": round(per_clip, 3), "mean_clip_seconds": round(clip_seconds, 3),
            "seconds_per_3s_clip": round(per_clip * REFERENCE_CLIP_SECONDS / clip_seconds, 3) if clip_seconds else None,
            "warm_seconds_per_clip": round(warm, 3),
            "warm_seconds_per_3s_clip": round(warm * REFERENCE_CLIP_SECONDS / clip_seconds, 3) if clip_seconds else None,
            "max_seconds_per_clip": round(max(p.seconds for p in result.predictions), 3),
            # the whole stream against the length analysed (issue 21's 0.15x target), and where the time went:
            # stage seconds overlap where decoding runs in its own thread, so they need not add up to the wall
            "media_seconds": media, "times_real_time": round((wall - load) / media, 4) if media else None,
            "stage_seconds": stages, "warnings": sorted({p.warning for p in result.predictions if p.warning}),
            "errors": len(result.errors), "model": result.model}


def stage_train(args: dict[str, Any]) -> dict[str, Any]:
    """A few optimisation steps of one branch's config on the bench cache, data wait timed apart from compute."""
    import torch
    from torch.utils.data import DataLoader, RandomSampler

    from mmfer.data.datasets import collate_for, seed_worker

    from mmfer.data.sources import source_records
    from mmfer.engine.checks import check_consistency
    from mmfer.engine.config import load_train_config
    from mmfer.engine.device import resolve_device
    from mmfer.engine.steps import optimisation_step, training_pieces
    from mmfer.engine.train import build_run_model, data_source, make_dataset

    cfg = load_train_config(args["config"])
    dev = resolve_device(args["device"])
    model, kind = build_run_model(cfg)  # training's own setup: seeded, the kind checked
    model = model.to(dev)
    cache = args["cache"]
    source = data_source(cache, kind, TRAIN_SPLIT)
    check_consistency(cfg, source.settings, kind)
    ds = make_dataset(cfg, data=cache, kind=kind, records=source_records(cache, TRAIN_SPLIT, kind), train=True,
                      sample_rate=source.sample_rate)
    if len(ds) == 0:
        return {"error": f"no usable clips for {kind} ({ds.describe_skipped()})", "clips_per_second": None}
    bs = int(args.get("batch_size") or cfg.data.batch_size)
    warmup, steps = int(args["warmup"]), int(args["steps"])
    sampler = RandomSampler(ds, replacement=True, num_samples=(warmup + steps) * bs,
                            generator=torch.Generator().manual_seed(cfg.seed))
    loader = DataLoader(ds, batch_size=bs, sampler=sampler, num_workers=cfg.data.workers, collate_fn=collate_for(kind),
                        worker_init_fn=seed_worker, pin_memory=dev.type == "cuda")
    pieces = training_pieces(cfg, model, dev, ds.labels)
    precision = pieces["precision"]
    mixing = (cfg.augment.mixup, cfg.augment.cutmix) if cfg.augment.enabled else (0.0, 0.0)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    model.train()
    wait = compute = 0.0
    clips = 0
    first_batch = None
    batches = start_iter(loader)  # a stop during the workers' fork is not lost
    for step in range(warmup + steps):
        t0 = time.perf_counter()
        batch = next(batches)
        t1 = time.perf_counter()
        y, _, _ = optimisation_step(model, batch, device=dev, precision=precision, criterion=pieces["criterion"],
                                    optimizer=pieces["optimizer"], scaler=pieces["scaler"],
                                    grad_clip=cfg.optim.grad_clip, mixup=mixing[0], cutmix=mixing[1])
        sync()
        t2 = time.perf_counter()
        if first_batch is None:
            first_batch = t1 - t0  # includes starting the loader workers
        if step >= warmup:
            wait, compute, clips = wait + t1 - t0, compute + t2 - t1, clips + int(y.shape[0])
    del batches, loader  # joins the loader workers, so their peak memory is counted below
    forward_ms = _forward_ms(model, ds, dev, dev.type == "cuda" and cfg.amp)
    total = wait + compute
    return {"config": args["config"], "model": cfg.model.name, "input_kind": kind, "device": str(dev), "precision": precision,
            "batch_size": bs, "steps": steps, "warmup": warmup, "loader_workers": cfg.data.workers,
            "clips_per_second": round(clips / total, 2), "data_wait_seconds": round(wait, 4),
            "compute_seconds": round(compute, 4), "data_wait_fraction": round(wait / total, 4),
            "first_batch_seconds": round(first_batch or 0.0, 3), "forward_ms_per_item": forward_ms,
            "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 3),
            "threads": torch.get_num_threads(),
            # a distilled run's teachers also run forward on every training step; they are not timed here
            **({"teachers_not_timed": len(cfg.distill.teachers)} if cfg.distill.teachers else {}),
            # an adversary's head (a small MLP on the pooled features) is not timed either
            **({"adversary_not_timed": True} if cfg.adversary.scale else {})}


def _forward_ms(model, ds, dev, use_amp: bool, repeats: int = 5) -> float:
    """Inference milliseconds for one item (batch 1) of the dataset: what scoring a clip or window costs."""
    import torch

    from mmfer.engine.device import autocast

    item = ds[0]
    x = item["x"].unsqueeze(0).to(dev)
    mask = item["mask"].unsqueeze(0).to(dev) if item["mask"] is not None else None
    model.eval()
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    with torch.inference_mode(), autocast(dev, use_amp):
        model(x, mask=mask)
        sync()
        t0 = time.perf_counter()
        for _ in range(repeats):
            model(x, mask=mask)
        sync()
    return round((time.perf_counter() - t0) / repeats * 1000, 2)


def _entries(args: dict[str, Any]):
    from mmfer.data.index import ClipEntry

    return [ClipEntry(clip_id=c, split=s, label=lab, path=Path(p)) for c, s, lab, p in args["entries"]]


def _mean_clip_seconds(paths: Sequence[str]) -> float:
    from mmfer.data.video import probe_video

    return sum(probe_video(p).duration for p in paths) / max(1, len(paths))


STAGE_FUNCTIONS = {"decode": stage_decode, "preprocess": stage_preprocess, "predict": stage_predict,
                   "train": stage_train}


def _stage_main(argv: Sequence[str]) -> int:
    """``python -m mmfer.bench STAGE ARGS.json OUT.json``: one stage in this fresh process."""
    stage, arg_file, out_file = argv
    logging.basicConfig(level=logging.WARNING)
    args = json.loads(Path(arg_file).read_text(encoding="utf-8"))
    with ChildPeaks() as children:
        out = STAGE_FUNCTIONS[stage](args)
    out["peak_rss_mb"] = peak_rss_mb()
    out["workers_peak_rss_mb"] = children.peak
    Path(out_file).write_text(json.dumps(out), encoding="utf-8")
    return 0


# ---------------------------------------------------------------- machine and tables
def machine_info(device: str = "cpu") -> dict[str, Any]:
    """What the figures were measured on: CPU model, cores, memory, library versions, load at the start."""
    import torch

    from mmfer.engine.device import cpu_vector_units

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise MmferError(f"--device {device}: torch sees no CUDA device here (torch.cuda.is_available() is False); "
                         "use --device cpu or run on a machine with a GPU and a CUDA build of torch")
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        ram_gb = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        ram_gb = None
    info: dict[str, Any] = {
        "cpu": cpu, "cpu_vectors": cpu_vector_units(), "cores": os.cpu_count(), "ram_gb": ram_gb, "python": platform.python_version(),
        "platform": platform.platform(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "load_average_before": loadavg(),
    }
    for mod in ("decord", "cv2", "dlib", "numpy"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - a version string is nice to have, never needed
            info[mod] = None
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def _rows(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(stage, speed, peak memory) rows shared by the plain and the markdown table."""
    st, rss = result.get("stages", {}), result.get("peak_rss_mb", {})

    def mb(v: Any) -> str:
        return "-" if v is None else f"{v:.0f} MB"

    rows = []
    d = st.get("decode")
    if d:
        rows.append(("decode", f"{d['fps']:.0f} frames/s ({d['cpu_ms_per_frame']:.2f} ms CPU/frame)",
                     mb(rss.get("decode"))))
    p = st.get("preprocess")
    if p:
        share = f", {100 * p['fps'] / d['fps']:.0f}% of decode" if d and d.get("fps") else ""
        workers = f"; workers {mb(rss['preprocess_workers'])} each" if rss.get("preprocess_workers") else ""
        rows.append((f"preprocess ({p['workers']} worker{'s' if p['workers'] != 1 else ''})",
                     f"{p['fps']:.0f} frames/s{share} ({p['cpu_ms_per_frame']:.2f} ms CPU/frame)",
                     mb(rss.get("preprocess")) + workers))
    q = st.get("predict")
    if q:
        model = result.get("model", "default")
        name = "predict (default model)" if model == "default" else f"predict ({model})"
        if q.get("seconds_per_clip") is None:
            rows.append((name, "n/a (see below)", mb(rss.get("predict"))))
        else:
            rows.append((name,
                         f"{q['seconds_per_clip']:.2f} s/clip ({q['mean_clip_seconds']:.1f}-s clips; "
                         f"{q['seconds_per_3s_clip']:.2f} s per 3-s clip, {q['warm_seconds_per_3s_clip']:.2f} s on a "
                         f"second pass; load {q['load_seconds']:.1f} s)",
                         mb(rss.get("predict"))))
            if q.get("times_real_time") is not None and q["mean_clip_seconds"] >= LONG_CLIP_ROW_SECONDS:
                split = ", ".join(f"{k} {v:.1f} s" for k, v in (q.get("stage_seconds") or {}).items())
                rows.append(("  predict, per second of video", f"{q['times_real_time']:.3f}x real time ({split})", ""))
    for key, t in st.items():
        if not key.startswith("train:"):
            continue
        branch = key.split(":", 1)[1]
        if t.get("clips_per_second") is None:
            rows.append((f"train {branch}", "n/a (see below)", mb(rss.get("train", {}).get(branch))))
            continue
        rows.append((f"train {branch} (batch {t['batch_size']}, {t.get('precision', 'fp32')})",
                     f"{t['clips_per_second']:.1f} clips/s, data wait {100 * t['data_wait_fraction']:.1f}%; "
                     f"forward {t['forward_ms_per_item']:.1f} ms/item",
                     mb(rss.get("train", {}).get(branch))))
    return rows


def _header(result: dict[str, Any]) -> str:
    m = result.get("machine", {})
    gpu = f", {m['gpu']}" if m.get("gpu") else ""
    load = m.get("load_average_before")
    load_txt = f"; load average {load[0]:.1f} at start" if load else ""
    frames = (result.get("stages", {}).get("decode") or {}).get("frames")
    n, rep = result.get("clips"), result.get("repeat", 1)
    clips = f"{n} clip{'s' if n != 1 else ''}" + (f" ({n // rep} listed {rep} times)" if rep > 1 else "")
    return (f"{clips}{f', {frames} frames' if frames else ''} from {result.get('videos')}; "
            f"{m.get('cpu')}{f' ({vectors})' if (vectors := m.get('cpu_vectors')) else ''}, {m.get('cores')} cores, "
            f"{m.get('ram_gb')} GB{gpu}; device {result.get('device')}; "
            f"torch {m.get('torch')}{load_txt}")


# A preprocessing run shorter than this mostly times starting the workers and their first clip.
SHORT_PREPROCESS_SECONDS = 2.0


def _notes(result: dict[str, Any]) -> list[str]:
    """What a reader of the figures should know: the errors, and a preprocessing run too short to trust."""
    notes = [f"{key}: {err}" for key, err in result.get("errors", {}).items()]
    p = (result.get("stages") or {}).get("preprocess")
    if p and p.get("seconds") is not None and p["seconds"] < SHORT_PREPROCESS_SECONDS:
        notes.append(f"preprocess ran for {p['seconds']:.2f} s only, so starting workers and their first clip weigh "
                     "in; --repeat 8 (or --videos with more clips) measures corpus throughput")
    return notes


LONG_CLIP_ROW_SECONDS = 30.0  # clips this long (--long-clip) get a row of predict's cost per second of video


def format_table(result: dict[str, Any]) -> str:
    """The short human summary ``mmfer bench`` prints."""
    rows = _rows(result)
    w0 = max([len("stage")] + [len(r[0]) for r in rows])
    w1 = max([len("speed")] + [len(r[1]) for r in rows])
    lines = [_header(result), f"{'stage':<{w0}}  {'speed':<{w1}}  peak RSS"]
    lines += [f"{a:<{w0}}  {b:<{w1}}  {c}" for a, b, c in rows]
    lines += _notes(result)
    return "\n".join(lines)


def format_markdown(result: dict[str, Any]) -> str:
    """The same table as markdown, to paste into BENCHMARKS.md."""
    lines = [f"_{_header(result)}_", "", "| stage | speed | peak RSS |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in _rows(result)]
    notes = _notes(result)
    if notes:
        lines.append("")
        lines += [f"- {note}" for note in notes]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(_stage_main(sys.argv[1:]))
