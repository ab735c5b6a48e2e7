"""Cache datasets: shapes, masks, windows, sampling, skipping, determinism and padding."""

from __future__ import annotations

import time

import pytest
import torch

from mmfer.data.cache import split_records
from mmfer.data.datasets import build_dataset, collate_for, pad_collate
from mmfer.data.config import AugmentConfig, DataConfig
from synthetic import make_synthetic_cache
from mmfer.errors import MmferError


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return make_synthetic_cache(tmp_path_factory.mktemp("c"), modality="faces",
                                per_class={"Train": 1, "Val": 1}, frames=(10, 30), seed=3)


def _ds(cache, kind, split, train, **data):
    return build_dataset(kind, cache=cache, records=split_records(cache, split), train=train,
                         data=DataConfig(**data), augment=AugmentConfig(), seed=5)


def test_failed_and_empty_clips_are_skipped_with_reasons(cache):
    for kind in ("face_window", "face_sequence", "landmarks", "logmel"):
        ds = _ds(cache, kind, "Val", False)
        skipped = dict(ds.skipped)
        assert "failed" in skipped["val_failed"]
        assert skipped["val_empty"] in ("no face in any frame", "no landmarks in any frame", "no audio")
        assert len(ds.records) == 7


def test_face_windows_train_and_eval(cache):
    tr = _ds(cache, "face_window", "Train", True, clip_len=16)
    item = tr[0]
    assert item["x"].shape == (3, 16, 32, 32) and item["mask"].shape == (16,)
    assert item["mask"].any()
    assert torch.all(item["x"][:, ~item["mask"]] == 0)  # no-face frames are zeros
    ev = _ds(cache, "face_window", "Val", False, clip_len=16, stride=4)
    for c, rec in enumerate(ev.records):
        starts = [s for (cc, s) in ev.items if cc == c]
        T = rec.frames
        if T <= 16:
            assert starts == [0]
        else:
            assert starts[0] >= 0 and starts[-1] <= T - 16 and all(b - a <= 4 for a, b in zip(starts, starts[1:]))
    short = [c for c, r in enumerate(ev.records) if r.frames < 16]
    if short:
        it = ev[[i for i, (c, _) in enumerate(ev.items) if c == short[0]][0]]
        assert not it["mask"][ev.records[short[0]].frames:].any()  # padding is masked


def test_randomness_is_seeded_by_epoch(cache):
    ds = _ds(cache, "face_window", "Train", True, clip_len=8)
    a = ds[3]["x"]
    assert torch.equal(a, ds[3]["x"])  # same epoch, same item: same window and jitter
    ds.set_epoch(1)
    assert not torch.equal(a, ds[3]["x"])
    ds.set_epoch(0)
    assert torch.equal(a, ds[3]["x"])


def test_face_sequence_segment_sampling(cache):
    ds = _ds(cache, "face_sequence", "Val", False, num_frames=8, image_size=24, grayscale=True, equalize=True)
    it = ds[0]
    assert it["x"].shape == (8, 1, 24, 24) and it["mask"].dtype == torch.bool
    tr = _ds(cache, "face_sequence", "Train", True, num_frames=8)
    assert tr[0]["x"].shape == (8, 3, 32, 32)


def test_landmarks_crop_and_logmel_crop(cache):
    lm = _ds(cache, "landmarks", "Train", True, max_len=6)
    assert all(lm[i]["x"].shape[0] <= 6 and lm[i]["x"].shape[1] == 272 for i in range(len(lm)))
    lm_eval = _ds(cache, "landmarks", "Val", False, max_len=6)
    assert max(lm_eval[i]["x"].shape[0] for i in range(len(lm_eval))) > 6  # whole clips in evaluation
    mel = _ds(cache, "logmel", "Train", True, n_mels=32, audio_seconds=0.5)
    x = mel[0]["x"]
    assert x.shape[:2] == (1, 32) and 45 <= x.shape[2] <= 55  # 0.5 s at a 10 ms hop
    full = _ds(cache, "logmel", "Val", False, n_mels=32)[0]["x"]
    assert full.shape[2] > 90  # the whole 1 s clip


def test_collate_pads_and_masks(cache):
    items = [{"x": torch.ones(3, 272), "mask": torch.tensor([True, False, True]), "label": 1, "clip": 0},
             {"x": torch.ones(5, 272), "mask": None, "label": 2, "clip": 1}]
    b = pad_collate(items, time_axis=0)
    assert b["x"].shape == (2, 5, 272) and b["x"][0, 3:].abs().sum() == 0
    assert b["mask"].tolist() == [[True, False, True, False, False], [True] * 5]
    mel = _ds(cache, "logmel", "Val", False, n_mels=16)
    batch = collate_for("logmel")([mel[i] for i in range(3)])
    lengths = [mel[i]["x"].shape[-1] for i in range(3)]
    assert batch["x"].shape == (3, 1, 16, max(lengths))
    assert batch["mask"].sum(1).tolist() == lengths


def test_unknown_kind_is_an_error(cache):
    with pytest.raises(MmferError, match="'video'.*known: face_image"):
        build_dataset("video", cache=cache, records=[], train=True, data=DataConfig())
    # face images come from an image tree; a preprocess cache's records are its videos ("not a readable image")
    with pytest.raises(MmferError, match="a preprocess cache, but face_image reads an image folder tree"):
        build_dataset("face_image", cache=cache, train=True, data=DataConfig())


def test_options_given_as_yaml_would_give_them_are_read_and_a_split_name_is_not_records(cache):
    """data as a plain dict is a DataConfig with its keys checked; records="Train" (a split name) is said."""
    recs = split_records(cache, "Train")
    ds = build_dataset("landmarks", cache=cache, records=recs, train=False, data={"max_len": 12})
    assert ds.data == DataConfig(max_len=12) and len(ds) == len(recs)
    with pytest.raises(MmferError, match="data: unknown key 'maxlen'"):
        build_dataset("landmarks", cache=cache, records=recs, train=False, data={"maxlen": 12})
    with pytest.raises(MmferError, match="records must be ClipRecords, e.g. split_records"):
        build_dataset("landmarks", cache=cache, records="Train", train=False, data=DataConfig())


def test_audio_stats_copies_are_made_once_and_drawn_per_epoch(tmp_path):
    cache = make_synthetic_cache(tmp_path / "a", modality="audio", per_class={"Train": 1}, frames=(10, 12), seed=1)
    aug = AugmentConfig(speed=(0.8, 1.2), stats_copies=2)

    def ds(train: bool):
        return build_dataset("audio_stats", cache=cache, records=split_records(cache, "Train"), train=train,
                             data=DataConfig(), augment=aug, seed=5)

    clean = ds(False)[0]["x"]
    tr = ds(True)
    seen = []
    for epoch in range(12):
        tr.set_epoch(epoch)
        seen.append(tr[0]["x"])
    distinct = {tuple(torch.round(x, decimals=4).tolist()) for x in seen}
    assert len(distinct) == 3 and any(torch.equal(x, clean) for x in seen)  # the clip and its two copies
    again = ds(True)  # the copies do not depend on the dataset object or the epoch that made them
    for epoch in range(12):
        again.set_epoch(epoch)
        assert torch.equal(again[0]["x"], seen[epoch])
    slower = next(x for x in seen if not torch.equal(x, clean))
    assert not torch.allclose(slower, clean)


def test_video_degradation_augments_faces_seeded(cache):
    """augment.video: a degradation draw changes the faces, is seeded (one draw per clip), and is off at 0."""
    import numpy as np

    from mmfer.data.features import draw_degradation, video_degrade

    def item(video, seed=5):
        ds = build_dataset("face_sequence", cache=cache, records=split_records(cache, "Train"), train=True,
                           data=DataConfig(num_frames=4), seed=seed,
                           augment=AugmentConfig(flip=False, crop_scale=(1.0, 1.0), brightness=0, contrast=0,
                                                 video=video))
        return ds[0]["x"].numpy()

    plain, degraded = item(0.0), item(1.0)
    assert plain.shape == degraded.shape and not np.allclose(plain, degraded)
    np.testing.assert_array_equal(degraded, item(1.0))  # seeded
    rng = np.random.default_rng(0)
    face = rng.integers(0, 256, (40, 40, 3)).astype(np.uint8)
    d = {**draw_degradation(np.random.default_rng(1)), "jpeg": 30, "blur": 1.0}
    a = video_degrade(face, np.random.default_rng(7), **d)
    b = video_degrade(face, np.random.default_rng(7), **d)
    np.testing.assert_array_equal(a, b)
    assert a.shape == face.shape and a.dtype == np.uint8 and np.abs(a.astype(int) - face).mean() > 5
    with pytest.raises(MmferError, match="video"):
        AugmentConfig(video=1.5)


def _time_reversed(item):
    """A researcher's own transform: module-level, so loader workers can unpickle it."""
    return {**item, "x": item["x"].flip(1), "reversed": True}


def test_a_transform_gets_each_item_and_its_output_is_the_item(cache):
    from torch.utils.data import DataLoader

    plain = _ds(cache, "face_window", "Val", False, clip_len=8)
    ds = build_dataset("face_window", cache=cache, records=split_records(cache, "Val"), train=False,
                       data=DataConfig(clip_len=8), augment=AugmentConfig(), seed=5, transform=_time_reversed)
    assert len(ds) == len(plain)
    for i in (0, len(ds) - 1):
        assert ds[i]["reversed"] and torch.equal(ds[i]["x"], plain[i]["x"].flip(1))
    batch = next(iter(DataLoader(ds, batch_size=2, num_workers=1, collate_fn=lambda b: b)))  # pickled to a worker
    assert all(it["reversed"] for it in batch)


LOADER_STOPPED_BY_GROUP = """
import sys, time
import torch
from torch.utils.data import DataLoader, Dataset
from mmfer.data.datasets import seed_worker
from mmfer.signals import sigterm_as_interrupt

class Slow(Dataset):
    def __len__(self):
        return 10_000
    def __getitem__(self, i):
        time.sleep(0.05)
        return torch.zeros(2)

sigterm_as_interrupt()
try:
    for n, batch in enumerate(DataLoader(Slow(), batch_size=2, num_workers=2, worker_init_fn=seed_worker)):
        if n == 0:
            print("started", flush=True)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(130)
"""


@pytest.mark.skipif(not hasattr(__import__("os"), "killpg"), reason="process groups are POSIX")
def test_a_stop_sent_to_the_process_group_ends_loading_as_ctrl_c_does(tmp_path):
    """systemd, Slurm and `kill -- -PGID` send SIGTERM to every process of the group. Loader workers (seed_worker)
    ignore it, so the main process stops as after Ctrl-C (exit 130), not on torch's "worker killed" error."""
    import os
    import signal
    import subprocess
    import sys

    script = tmp_path / "loader.py"
    script.write_text(LOADER_STOPPED_BY_GROUP)
    p = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         start_new_session=True)
    try:
        assert p.stdout.readline().strip() == "started"
        time.sleep(0.3)
        os.killpg(p.pid, signal.SIGTERM)
        out, _ = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    assert p.returncode == 130 and "interrupted" in out and "killed by signal" not in out, out


def _worker_that_hangs(ready):
    from mmfer.data.datasets import seed_worker

    seed_worker(0)
    ready.set()
    time.sleep(60)


@pytest.mark.skipif(not hasattr(__import__("os"), "killpg"), reason="POSIX signals")
def test_a_loader_worker_lets_one_sigterm_pass_and_ends_on_the_second():
    """The first SIGTERM (a stop sent to the process group) passes; the terminate() that torch and multiprocessing
    send a hung worker at shutdown still ends it, so the command can exit."""
    import multiprocessing as mp
    import os
    import signal

    ctx = mp.get_context("fork")
    ready = ctx.Event()
    w = ctx.Process(target=_worker_that_hangs, args=(ready,), daemon=True)
    w.start()
    try:
        assert ready.wait(30)
        os.kill(w.pid, signal.SIGTERM)
        w.join(0.5)
        assert w.is_alive()
        os.kill(w.pid, signal.SIGTERM)
        w.join(10)
        assert not w.is_alive() and w.exitcode == -signal.SIGTERM
    finally:
        if w.is_alive():
            w.kill()


HUNG_WORKER_AT_EXIT = """
import ctypes, multiprocessing as mp, os, sys
import torch
from torch.utils.data import DataLoader, Dataset
from mmfer.data.datasets import seed_worker
from mmfer.signals import start_iter

class HangsInC(Dataset):
    def __len__(self):
        return 4
    def __getitem__(self, i):
        libc = ctypes.CDLL(None)
        m = ctypes.create_string_buffer(64)  # a zeroed glibc mutex
        libc.pthread_mutex_lock(m)
        print(os.getpid(), flush=True)
        libc.pthread_mutex_lock(m)  # deadlocked in C: the Python SIGTERM handler never runs
        return torch.zeros(1)

# a daemon of the user's own, which the exit hook must leave to multiprocessing
def wait():
    import time
    time.sleep(60)

if __name__ == "__main__":
    own = mp.get_context("fork").Process(target=wait, daemon=True)
    own.start()
    print("own", own.pid, flush=True)
    it = start_iter(DataLoader(HangsInC(), num_workers=1, worker_init_fn=seed_worker, batch_size=1))
    import time
    time.sleep(1.5)  # the worker is stuck in its first item
"""


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="glibc mutex layout")
def test_a_worker_hung_in_c_does_not_hang_the_exit(tmp_path):
    """multiprocessing's exit sends terminate() (SIGTERM) and joins; a loader worker hung in C code never runs
    seed_worker's handler, so the exit waited forever. mmfer's exit hook kills it first (only a loader's workers)."""
    import os
    import subprocess
    import sys

    script = tmp_path / "hung.py"
    script.write_text(HUNG_WORKER_AT_EXIT)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr
    words = done.stdout.split()
    worker = int(next(w for w in words[2:] if w.isdigit()))
    time.sleep(0.2)
    assert not os.path.exists(f"/proc/{worker}") or "Z" in open(f"/proc/{worker}/stat").read().split()[2]
