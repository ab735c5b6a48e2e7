"""`mmfer predict` stopped and run again: rows saved as files finish, `--resume`, the run record beside `--out`
(the same command after a kill goes on; rows of another model or options are refused), SIGTERM, and that a stop
never empties an earlier `--out` (with a stand-in bundle on the real CREMA-D fixtures)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch
import pytest

from mmfer.errors import MmferError
from mmfer.predict import Predictor, predict, read_predictions
from predict_helpers import standin_bundle


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return standin_bundle(tmp_path_factory.mktemp("standin"))


class _Analysed(list):
    """The names of the files ``Predictor.predict_file`` analyses, in order; ``watch(kill_at=n)``: the machine
    goes down as the n-th file starts."""

    def __init__(self, monkeypatch):
        super().__init__()
        self.monkeypatch, self.real = monkeypatch, Predictor.predict_file

    def watch(self, kill_at: int | None = None) -> None:
        self.clear()
        real = self.real

        def predict_file(predictor, path, *args, **kwargs):
            self.append(Path(path).name)
            if len(self) == kill_at:
                raise RuntimeError("the machine went down")
            return real(predictor, path, *args, **kwargs)

        self.monkeypatch.setattr(Predictor, "predict_file", predict_file)

    def killed(self, *args, at: int, **kwargs) -> None:
        """``predict(*args, **kwargs)`` with the machine going down as its ``at``-th file starts."""
        self.watch(kill_at=at)
        with pytest.raises(RuntimeError, match="went down"):
            predict(*args, **kwargs)


def test_an_interrupted_or_killed_run_resumes_without_analysing_finished_files(bundle, tmp_path, cremad_videos,
                                                                                cremad_audio, monkeypatch):
    """--out is saved as files finish, so a killed run keeps them; --resume keeps those rows and analyses the
    rest, and the result is the whole run's. Outputs that need every file analysed cannot go with it."""
    import mmfer.inference.run as run

    inputs = [*cremad_videos[:2], *cremad_audio[:2]]
    whole = predict(inputs, model=bundle, out=tmp_path / "whole.csv", progress=False)
    analysed = _Analysed(monkeypatch)
    monkeypatch.setattr(run, "SAVE_EVERY_S", 0.0)
    analysed.watch(kill_at=3)
    with pytest.raises(RuntimeError, match="went down"):
        predict(inputs, model=bundle, out=tmp_path / "p.csv", progress=False)
    assert len(read_predictions(tmp_path / "p.csv")) == 2  # saved before the third file started
    analysed.watch()
    again = predict(inputs, model=bundle, out=tmp_path / "p.csv", progress=False, resume=True)
    assert analysed == [p.name for p in inputs[2:]]
    assert (tmp_path / "p.csv").read_text() == (tmp_path / "whole.csv").read_text()
    assert [p.predicted for p in again.predictions] == [p.predicted for p in whole.predictions]
    # all done: no model loaded, no file analysed, --out not rewritten
    before = (tmp_path / "p.csv").stat().st_mtime_ns
    analysed.clear()
    monkeypatch.setattr(run, "Predictor", None)  # loading a model would fail
    still = predict(inputs, model=bundle, out=tmp_path / "p.csv", progress=False, resume=True)
    assert analysed == [] and (tmp_path / "p.csv").stat().st_mtime_ns == before
    assert [p.predicted for p in still.predictions] == [p.predicted for p in whole.predictions]
    monkeypatch.setattr(run, "Predictor", Predictor)
    for kwargs, why in (({"frames": tmp_path / "f.csv"}, "cannot write --frames too"),
                        ({"out": None}, "--resume needs --out")):
        with pytest.raises(MmferError, match=why):
            predict(inputs, model=bundle, progress=False, resume=True, **{"out": tmp_path / "p.csv", **kwargs})
    # an error row (a file copied empty, since re-copied) is tried again; the others are kept
    broken = tmp_path / "late.mp3"
    broken.write_bytes(b"")
    predict([*inputs, broken], model=bundle, out=tmp_path / "q.csv", progress=False)
    assert "file is empty (0 bytes)" in read_predictions(tmp_path / "q.csv")[-1]["warning"]
    broken.write_bytes(cremad_audio[3].read_bytes())
    analysed.clear()
    fixed = predict([*inputs, broken], model=bundle, out=tmp_path / "q.csv", progress=False, resume=True)
    assert analysed == ["late.mp3"] and fixed.predictions[-1].ok and fixed.predictions[-1].predicted


def test_the_same_command_after_a_kill_goes_on_and_resume_refuses_rows_of_another_model(bundle, tmp_path,
                                                                                          cremad_audio, monkeypatch,
                                                                                          caplog):
    """A requeued job runs the same command again, without --resume: it replaced the rows of the killed run (and,
    killed again, emptied them). The record beside --out says what wrote it: the same model and options go on
    from its rows; --resume with other options is refused; rows written with paths relative to another working
    folder are found; a last row cut short is analysed again."""
    import os

    import mmfer.inference.run as run
    from mmfer.inference.resume import record_path

    inputs = cremad_audio[:3]
    whole = predict(inputs, model=bundle, out=tmp_path / "whole.csv", progress=False)
    out = tmp_path / "p.csv"
    analysed = _Analysed(monkeypatch)
    monkeypatch.setattr(run, "SAVE_EVERY_S", 0.0)
    analysed.watch(kill_at=3)
    with pytest.raises(RuntimeError, match="went down"):
        predict(inputs, model=bundle, out=out, progress=False)
    assert len(read_predictions(out)) == 2 and record_path(out).is_file()
    analysed.watch()
    with caplog.at_level(logging.WARNING):
        predict(inputs, model=bundle, out=out, progress=False)  # the same command, no --resume
    assert analysed == [inputs[2].name] and out.read_text() == (tmp_path / "whole.csv").read_text()
    assert "left by an interrupted run of this same model and options" in caplog.text
    analysed.clear()
    predict(inputs, model=bundle, out=out, progress=False)  # it finished: the command replaces it, as asked
    assert analysed == [p.name for p in inputs]
    with pytest.raises(MmferError, match=r"another model or options \(frame_pooling None then, 'confidence' now"):
        predict(inputs, model=bundle, out=out, progress=False, resume=True, frame_pooling="confidence")
    # the model's own pooling named is the same run as without the option, from the command line or a Predictor
    # (it was refused: "frame_pooling None then, 'mean' now")
    analysed.clear()
    predict(inputs, model=bundle, out=out, progress=False, resume=True, frame_pooling="mean")
    assert analysed == []
    from mmfer.inference.resume import read_record

    cli = read_record(out)["settings"]
    predict(inputs, model=Predictor(bundle, frame_pooling="mean"), out=out, progress=False, resume=True)
    assert analysed == [] and read_record(out)["settings"] == cli and cli["frame_pooling"] is None
    # killed again, then --out rewritten by something else (a merge, a spreadsheet): its record is not trusted
    analysed.watch(kill_at=3)
    with pytest.raises(RuntimeError, match="went down"):
        predict(inputs, model=bundle, out=out, progress=False, start=np.float32(0.0))  # (numpy numbers recorded)
    out.write_text(out.read_text())
    analysed.watch()
    predict(inputs, model=bundle, out=out, progress=False)
    assert analysed == [p.name for p in inputs]
    # a loaded Predictor's own options are what its rows were made with
    from mmfer.inference.resume import run_settings

    quiet = run_settings(model=Predictor(bundle, speech_check=False), frame_pooling=None, speech_check=True)
    assert quiet["speech_check"] is False and quiet["model"] == str(Path(bundle).resolve())
    # written from another working folder, with relative paths; continued from here
    monkeypatch.chdir(tmp_path)
    predict([os.path.relpath(p) for p in inputs], model=bundle, out="r.csv", progress=False)
    assert not read_predictions("r.csv")[0]["path"].startswith("/")
    monkeypatch.chdir(tmp_path.parent)
    analysed.clear()
    predict(inputs, model=bundle, out=tmp_path / "r.csv", progress=False, resume=True)
    assert analysed == []
    # a last row cut short (a kill mid-write, a full disk) is analysed again, not taken for another file
    text = out.read_text()
    out.write_text(text[: text.rindex("\n", 0, len(text) - 1) + 6])
    analysed.clear()
    predict(inputs, model=bundle, out=out, progress=False, resume=True)
    assert analysed == [inputs[2].name] and out.read_text() == (tmp_path / "whole.csv").read_text()
    assert [p.predicted for p in whole.predictions] == [r["predicted"] for r in read_predictions(out)]


def test_a_record_of_an_older_mmfer_is_read_for_what_it_can_tell(bundle, tmp_path, cremad_audio, monkeypatch,
                                                                 caplog):
    """A record of an older format used to be taken for none: --resume kept rows of other options saying there was
    no record to check, and merge joined a shard that never finished. Now what it can tell is compared."""
    import json

    import mmfer.inference.run as run
    from mmfer.inference.merge import merge_csvs
    from mmfer.inference.resume import read_record, record_path

    inputs = cremad_audio[:3]
    out = tmp_path / "p.csv"
    analysed = _Analysed(monkeypatch)
    monkeypatch.setattr(run, "SAVE_EVERY_S", 0.0)
    analysed.killed(inputs, model=bundle, out=out, progress=False, at=3)

    def as_older(fmt: int, **settings) -> None:
        record = json.loads(record_path(out).read_text())
        record["format"] = fmt
        record["settings"].update(settings)
        record_path(out).write_text(json.dumps(record))

    # format 3, from a Predictor: its frame pooling a list; the rest as now, so the same command goes on
    as_older(3, frame_pooling=["mean"])
    analysed.watch()
    predict(inputs, model=bundle, out=out, progress=False)
    assert analysed == [inputs[2].name]
    # format 2: its weights by sizes and times, so they cannot be checked
    analysed.killed(inputs, model=bundle, out=out, progress=False, at=3)
    as_older(2, weights="sizes and times", start=0.0)
    with pytest.raises(MmferError, match=r"start 0.0 then, 0.5 now\) \(its record, .p.csv.run.json, is of an older "
                                         r"mmfer that cannot tell device or weights\)"):
        predict(inputs, model=bundle, out=out, progress=False, resume=True, start=0.5)
    with pytest.raises(MmferError, match=r"did not finish .*older mmfer"):
        merge_csvs([out], tmp_path / "m.csv")
    with caplog.at_level(logging.WARNING):
        analysed.watch()
        predict(inputs, model=bundle, out=out, progress=False, resume=True)
    assert analysed == [inputs[2].name] and "its rows are kept as asked" in caplog.text
    assert "no record of its run" not in caplog.text
    assert read_record(out)["format"] == read_record(out, older=True)["format"] > 3  # written anew
    # the same command after a format-2 run's kill: its model cannot be checked, so it is redone, and said so
    analysed.killed(inputs, model=bundle, out=out, progress=False, at=3)
    as_older(2, weights="sizes and times")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        analysed.watch()
        predict(inputs, model=bundle, out=out, progress=False)
    assert analysed == [p.name for p in inputs] and "add --resume to keep its rows" in caplog.text


def test_rows_of_a_gpu_run_never_mix_with_a_cpu_run(bundle, tmp_path, cremad_audio, monkeypatch, caplog):
    """A GPU's figures differ from a CPU's in the last digits: a run stopped on one kind of device and continued
    on the other would mix them unsaid. The record names the device type; a Predictor's own counts."""
    import json

    import mmfer.inference.run as run
    from mmfer.inference.resume import record_path, run_settings

    assert run_settings(model=bundle, frame_pooling=None, speech_check=True)["device"] == (
        "cuda" if torch.cuda.is_available() else "cpu")
    assert run_settings(model=Predictor(bundle, device="cpu"), frame_pooling=None, speech_check=True,
                        device="cuda")["device"] == "cpu"  # the loaded Predictor's, whatever is passed
    inputs = cremad_audio[:3]
    out = tmp_path / "p.csv"
    analysed = _Analysed(monkeypatch)
    monkeypatch.setattr(run, "SAVE_EVERY_S", 0.0)
    analysed.killed(inputs, model=bundle, out=out, progress=False, device="cpu", at=3)
    record = json.loads(record_path(out).read_text())
    assert record["settings"]["device"] == "cpu"
    record["settings"]["device"] = "cuda"  # as if stopped on a GPU machine
    record_path(out).write_text(json.dumps(record))
    with pytest.raises(MmferError, match=r"device 'cuda' then, 'cpu' now"):
        predict(inputs, model=bundle, out=out, progress=False, device="cpu", resume=True)
    analysed.watch()
    with caplog.at_level(logging.WARNING):
        predict(inputs, model=bundle, out=out, progress=False, device="cpu")  # the same command: rows replaced
    assert analysed == [p.name for p in inputs]
    assert "left by an interrupted run of other settings (device 'cuda' then, 'cpu' now): it is replaced" in caplog.text


def test_a_pooling_named_is_recorded_one_way_from_a_bundle_a_run_or_a_predictor(bundle, tmp_path):
    """Audio branches were counted as pooling frames the default way, so a bundle whose face branches pool
    otherwise recorded its own pooling as a change from the command line and as none from a Predictor; a
    format-3 record of `--frame-pooling mean` on the model that pools so stopped the same command going on."""
    import json
    import shutil

    from mmfer.inference.bundle import declared_frame_poolings
    from mmfer.inference.resume import read_record, record_path, run_settings, write_record

    other = tmp_path / "log_mean"
    shutil.copytree(bundle, other)
    info = json.loads((other / "bundle.json").read_text())
    info["branches"]["face"]["options"]["frame_pooling"] = "log_mean"
    (other / "bundle.json").write_text(json.dumps(info))
    assert declared_frame_poolings(other) == {"log_mean"} and declared_frame_poolings(bundle) == {"mean"}
    run = Path(bundle).parent / "runs" / "face"
    assert declared_frame_poolings(run) == {"mean"} and declared_frame_poolings(tmp_path / "nothing") is None

    def recorded(model, pooling):
        return run_settings(model=model, frame_pooling=pooling, speech_check=True)["frame_pooling"]

    for model, own, other_pooling in ((other, "log_mean", "mean"), (bundle, "mean", "confidence"), (run, "mean", "log_mean")):
        for pooling in (own, other_pooling):
            assert recorded(model, pooling) == recorded(
                Predictor(model, frame_pooling=pooling, speech_check=True), None), (model, pooling)
    # the same command after a format-3 run that named the model's own pooling goes on
    out = tmp_path / "p.csv"
    out.write_text("path\n")
    write_record(out, run_settings(model=other, frame_pooling="log_mean", speech_check=True), finished=False)
    record = json.loads(record_path(out).read_text())
    record["format"], record["settings"]["frame_pooling"] = 3, "log_mean"
    record_path(out).write_text(json.dumps(record))
    assert read_record(out, older=True)["settings"]["frame_pooling"] is None


def test_out_is_saved_while_a_long_file_is_analysed(bundle, tmp_path, cremad_audio, monkeypatch):
    """A long recording after short ones does not hold their rows back: --out is saved from the long file's progress
    once SAVE_EVERY_S has passed, so a kill during it keeps them (it was saved only when a file started)."""
    import types

    import mmfer.inference.run as run

    now = [0.0]
    monkeypatch.setattr(run, "time", types.SimpleNamespace(monotonic=lambda: now[0], perf_counter=time.perf_counter))
    real, seen = Predictor.predict_file, []

    def long_second_file(self, path, *args, **kwargs):
        if seen:  # the second file: 70 s into the run, some of it analysed, then the machine goes down
            now[0] = 70.0
            kwargs["progress"](5.0, 600.0)
            seen.append(len(read_predictions(tmp_path / "p.csv")))
            raise RuntimeError("the machine went down")
        seen.append(path)
        now[0] = 10.0  # the first file ends 10 s in: not yet time to save
        return real(self, path, *args, **kwargs)

    monkeypatch.setattr(Predictor, "predict_file", long_second_file)
    with pytest.raises(RuntimeError, match="went down"):
        predict(cremad_audio[:2], model=bundle, out=tmp_path / "p.csv", progress=False)
    assert seen[1] == 1  # the first file's row, saved during the second


def test_sigterm_ends_predict_as_ctrl_c_does(bundle, tmp_path, cremad_videos, monkeypatch, capsys):
    """kill / timeout / a container stop: the finished rows are written and the command exits 130 saying how to
    resume (SIGTERM ended the process where it stood, with no rows)."""
    import os
    import signal

    from mmfer.cli import main

    real = Predictor.predict_file
    calls = []

    def stopped_at_the_second(self, path, *a, **k):
        calls.append(path)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(self, path, *a, **k)

    monkeypatch.setattr(Predictor, "predict_file", stopped_at_the_second)
    before = signal.getsignal(signal.SIGTERM)
    code = main(["predict", *map(str, cremad_videos[:3]), "--model", str(bundle), "--out", str(tmp_path / "p.csv"),
                 "--no-progress", "--quiet"])
    assert code == 130 and signal.getsignal(signal.SIGTERM) == before
    assert [r["clip_id"] for r in read_predictions(tmp_path / "p.csv")] == [cremad_videos[0].stem]
    assert "run the same command again to analyse only the others" in capsys.readouterr().err


def test_a_stop_keeps_the_resumed_rows_of_files_not_reached_and_never_empties_an_earlier_out(bundle, tmp_path,
                                                                                              cremad_audio, monkeypatch):
    """--resume stopped on a file before others it had kept: the kept rows of those were dropped from --out. A stop
    before any file finished wrote an empty --out over an earlier run's."""
    from mmfer.inference.resume import record_path
    from mmfer.predict import write_predictions

    whole = predict(cremad_audio[:3], model=bundle, progress=False)
    out = tmp_path / "p.csv"
    write_predictions(out, [whole.predictions[0], whole.predictions[2]])  # the second file still to do

    def stop(self, path, *a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(Predictor, "predict_file", stop)
    with pytest.raises(KeyboardInterrupt) as stopped:
        predict(cremad_audio[:3], model=bundle, out=out, progress=False, resume=True)
    assert [r["clip_id"] for r in read_predictions(out)] == [cremad_audio[0].stem, cremad_audio[2].stem]
    assert stopped.value.out_written
    before = out.read_bytes()
    record_path(out).unlink()  # an --out of a run that left no record: a run without --resume replaces it
    with pytest.raises(KeyboardInterrupt) as stopped:
        predict(cremad_audio[:3], model=bundle, out=out, progress=False)
    assert out.read_bytes() == before and not stopped.value.out_written
