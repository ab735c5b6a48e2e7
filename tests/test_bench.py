"""`mmfer bench` on one real fixture clip with tiny step counts: the JSON's keys, figures and tables.

No timing is asserted: only that every stage ran, measured something and reported it.
"""

from __future__ import annotations

import json

import pytest

from mmfer.bench import BRANCHES, bench, bench_entries, format_markdown, format_table
from mmfer.cli import main
from mmfer.errors import MmferError


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and x > 0


@pytest.fixture(scope="module")
def small_run(cremad_dir):
    """Every stage on one clip; the lightest branch, one timed step of batch 2 (each stage is its own process,
    and torch's first step in a process is slow, so one branch keeps this test short)."""
    return bench(cremad_dir, max_clips=1, branches=("landmark_brnn",), steps=1, warmup=1, batch_size=2,
                 progress=False)


def test_json_has_every_figure(small_run):
    r = small_run
    json.dumps(r)  # plain types only
    for key in ("decode_fps", "preprocess_fps", "predict_seconds_per_clip", "train_clips_per_second", "peak_rss_mb"):
        assert key in r
    assert r["clips"] == 1 and _positive(r["decode_fps"]) and _positive(r["preprocess_fps"])
    assert set(r["train_clips_per_second"]) == {"landmark_brnn"}
    assert all(_positive(v) for v in r["train_clips_per_second"].values())
    pre = r["stages"]["preprocess"]
    assert pre["frames"] == r["stages"]["decode"]["frames"] > 30 and pre["face_frames"] > 0.9 * pre["frames"]
    assert pre["workers"] >= 1 and pre["failed"] == 0
    for branch in ("landmark_brnn",):
        t = r["stages"][f"train:{branch}"]
        assert t["steps"] == 1 and t["batch_size"] == 2 and t["device"] == "cpu"
        from mmfer.engine.device import cpu_has_native_bf16

        assert t["precision"] == ("bf16" if cpu_has_native_bf16() else "fp32")  # the configs' amp on a CPU
        assert 0 <= t["data_wait_fraction"] <= 1 and _positive(t["compute_seconds"])
        assert _positive(t["forward_ms_per_item"])
        assert t["config"].endswith(f"configs/{branch}.yaml")
    # predict runs with the shipped bundle, or says why it could not
    if r["predict_seconds_per_clip"] is None:
        assert r["errors"]["predict"] and r["stages"]["predict"]["error"] == r["errors"]["predict"]
    else:
        q = r["stages"]["predict"]
        assert _positive(r["predict_seconds_per_clip"]) and q["clips"] == 1
        assert _positive(q["warm_seconds_per_clip"]) and _positive(q["warm_seconds_per_3s_clip"])
    rss = r["peak_rss_mb"]
    assert all(_positive(rss[s]) for s in ("decode", "preprocess", "predict"))
    assert set(rss["train"]) == {"landmark_brnn"} and _positive(rss["train"]["landmark_brnn"])
    assert all(_positive(s["process_seconds"]) for s in r["stages"].values())
    m = r["machine"]
    assert m["cores"] >= 1 and m["torch"] and m["cpu"] and "gpu" not in m


def test_tables_show_each_stage(small_run):
    table = format_table(small_run)
    for word in ("decode", "preprocess", "predict", "train landmark_brnn", "frames/s", "clips/s", "% of decode"):
        assert word in table
    md = format_markdown(small_run).splitlines()
    assert "| stage | speed | peak RSS |" in md and sum(line.startswith("| train ") for line in md) == 1
    assert sum(line.startswith("|") for line in md) == 2 + 4  # head, rule, one row per stage
    assert all(f"- {key}: " in "\n".join(md) for key in small_run["errors"])  # reasons listed under the table
    # a short preprocessing run (one clip, a second) says so, and how to measure throughput instead; a long one
    # does not (the run's own seconds are set here: how long one clip takes depends on the machine's load)
    def with_seconds(seconds):
        return {**small_run, "stages": {**small_run["stages"],
                                        "preprocess": {**small_run["stages"]["preprocess"], "seconds": seconds}}}

    short = with_seconds(1.0)
    assert "--repeat 8" in format_table(short) and "--repeat 8" in format_markdown(short)
    assert "--repeat 8" not in format_table(with_seconds(30.0))


def test_cli_writes_json_and_markdown(tmp_path, cremad_dir, capsys, caplog):
    out = tmp_path / "b" / "bench.json"
    with caplog.at_level("INFO", logger="mmfer.bench"):
        assert main(["bench", "--videos", str(cremad_dir), "--stages", "decode", "--max-clips", "2", "--out",
                     str(out), "--markdown", "--no-progress"]) == 0
    assert "bench: stage 1 of 1, decode" in caplog.text  # no bar: a log line says which stage runs
    printed = capsys.readouterr().out
    r = json.loads(out.read_text())
    assert r["clips"] == 2 and _positive(r["decode_fps"]) and r["preprocess_fps"] is None
    assert r["command"] == f"mmfer bench --videos {cremad_dir} --stages decode --max-clips 2" and "| decode |" in printed
    # global options go before the subcommand, as the command line takes them (was "--imports []")
    assert main(["--import", "json", "bench", "--videos", str(cremad_dir), "--stages", "decode", "--max-clips", "1",
                 "--out", str(out), "--no-progress"]) == 0
    assert json.loads(out.read_text())["command"].startswith("mmfer --import json bench --videos ")


def test_bad_requests_are_errors(tmp_path, cremad_dir):
    import torch

    with pytest.raises(MmferError, match="no such folder"):
        bench(tmp_path / "missing", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(MmferError, match="no video files"):
        bench(tmp_path / "empty", progress=False)
    with pytest.raises(MmferError, match="train needs preprocess"):
        bench(cremad_dir, stages=("decode", "train"), progress=False)
    with pytest.raises(MmferError, match=r"no config .*nope\.yaml"):
        bench(cremad_dir, branches=("nope",), progress=False)
    with pytest.raises(MmferError, match="face_frame_fer2013: a face_image model trains on an image tree"):
        bench(cremad_dir, branches=("landmark_brnn", "face_frame_fer2013"), progress=False)  # said before any stage
    with pytest.raises(MmferError, match="choose cpu, cuda or cuda:N"):
        bench(cremad_dir, device="tpu", progress=False)
    if not torch.cuda.is_available():  # a GPU of several, named as the other commands name it
        with pytest.raises(MmferError, match=r"--device cuda:1: torch sees no CUDA device"):
            bench(cremad_dir, device="cuda:1", progress=False)
    with pytest.raises(MmferError, match="leave out --videos"):
        bench(cremad_dir, long_clip=5, progress=False)
    import mmfer.bench

    with pytest.MonkeyPatch.context() as m:  # an installed package: no fixtures beside it
        m.setattr(mmfer.bench, "FIXTURES", tmp_path / "site-packages" / "tests" / "assets" / "cremad")
        with pytest.raises(MmferError, match="no --videos given, and this install has no CREMA-D fixtures"):
            bench(progress=False)

    if not torch.cuda.is_available():
        with pytest.raises(MmferError, match="--device cuda: torch sees no CUDA device"):
            bench(cremad_dir, device="cuda", stages=("decode",), progress=False)


def test_branches_are_checked_only_for_the_train_stage(cremad_dir):
    """Decoding or predict needs no train config (an install without the configs could not time them)."""
    r = bench(cremad_dir, max_clips=1, branches=("nope",), stages=("decode",), progress=False)
    assert _positive(r["decode_fps"]) and r["train_clips_per_second"] == {} and list(r["stages"]) == ["decode"]


def test_entries_all_train_with_labels(cremad_dir, tmp_path):
    entries = bench_entries(cremad_dir)
    assert len(entries) == 6 and {e.split for e in entries} == {"Train"} and all(e.label for e in entries)
    assert len({e.clip_id for e in entries}) == 6
    # one empty or broken file is left out, not a failed benchmark
    import shutil

    mixed = tmp_path / "videos"
    shutil.copytree(cremad_dir, mixed)
    (mixed / "empty.mp4").write_bytes(b"")
    (mixed / "text.avi").write_text("not a video")
    assert sorted(e.clip_id for e in bench_entries(mixed)) == sorted(e.clip_id for e in entries)


@pytest.mark.benchmark
def test_full_bench_on_fixtures(cremad_dir):
    """The whole default run (all clips, every branch, default steps): minutes on a CPU, so not in CI."""
    r = bench(cremad_dir, progress=False)
    assert set(r["train_clips_per_second"]) == set(BRANCHES)
    assert all(_positive(v) for v in r["train_clips_per_second"].values())
    print(format_table(r))


def test_long_clip_is_1080p_with_sound_and_runs_through_decode(tmp_path):
    from mmfer.bench import make_long_clip
    from mmfer.data.video import probe_video, read_audio

    info = probe_video(make_long_clip(tmp_path / "long.mp4", seconds=2))
    assert (info.width, info.height, info.fps, info.frames) == (1920, 1080, 25.0, 50) and info.has_audio
    assert abs(len(read_audio(info.path)) / 16000 - 2.0) < 0.15  # AAC adds up to two 1024-sample frames
    r = bench(long_clip=1, stages=("decode",), progress=False)
    assert r["clips"] == 1 and "long_1080p_1s" in r["videos"] and r["decode_fps"] > 0


def test_the_machine_line_names_the_cpus_vector_units(small_run, monkeypatch):
    """Predict's budget was met on hosts with AVX-512 and not on one with AVX2 alone: figures name which."""
    from mmfer.engine import device

    assert small_run["machine"]["cpu_vectors"] == device.cpu_vector_units()
    for flags, said in (({"avx2", "fma"}, "AVX2"), ({"avx2", "avx512f", "avx512_bf16", "amx_bf16"},
                                                   "AVX-512, AMX, AVX512-BF16"), (set(), "")):
        monkeypatch.setattr(device, "_cpu_flags", lambda flags=flags: flags)
        assert device.cpu_vector_units() == said
    run = {**small_run, "machine": {**small_run["machine"], "cpu_vectors": "AVX2"}}
    assert f"{run['machine']['cpu']} (AVX2), " in format_table(run)
