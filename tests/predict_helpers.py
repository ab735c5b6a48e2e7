"""Stand-in runs and bundles for predict tests: seeded, untrained models saved like `mmfer train` saves them
(a uniquely named module, imported by tests)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from mmfer.data.cache import PreprocessSettings
from mmfer.engine.checkpoint import save_checkpoint
from mmfer.engine.config import config_to_plain, load_train_config
from mmfer.models.registry import build_model

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

# branch -> (shipped config, small model kwargs, data overrides, where its training data came from)
STANDINS = {
    "face_frame": ("face_frame_fer2013.yaml", {"width": 4}, {}, "image"),
    "audio_cnn": ("audio_ravdess.yaml", {"width": 4}, {}, "audio"),
    "c3d": ("c3d.yaml", {"width": 2, "clip_len": 8, "input_size": 32}, {"clip_len": 8, "stride": 8, "image_size": 32},
            "cache"),
    "cnn_lstm": ("cnn_lstm.yaml", {"width": 4, "hidden": 8}, {"num_frames": 4, "image_size": 32}, "cache"),
    "landmark_brnn": ("landmark_brnn.yaml", {"hidden": 8, "layers": 1}, {}, "cache"),
}
# The cache a stand-in cache-kind branch claims it was trained on (predict decodes videos like it).
STANDIN_CACHE = PreprocessSettings(fps=8.0, crop_size=64)


def standin_run(run: Path, branch: str, *, seed: int = 0, val_accuracy: float = 0.5) -> Path:
    """RUN/best.pt + log.jsonl of a seeded, untrained model with (a shrunk copy of) the shipped config."""
    file, kwargs, data, source = STANDINS[branch]
    cfg = load_train_config(CONFIGS / file)
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, kwargs={**cfg.model.kwargs, **kwargs}),
                              data=dataclasses.replace(cfg.data, **data),
                              optim=dataclasses.replace(cfg.optim, epochs=1))  # finished: its one epoch logged
    torch.manual_seed(seed)
    model = build_model(cfg.model.name, **cfg.model.kwargs)
    with torch.no_grad():  # non-trivial normalisation statistics, so fp16 export and BN paths are exercised
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    preprocess = (STANDIN_CACHE.to_dict() if source == "cache"
                  else {"source": f"{source}_folder", "sample_rate": 16000})
    best = {"epoch": 1, "metric": "accuracy", "value": val_accuracy, "val_accuracy": val_accuracy, "val_uar": 0.4}
    run.mkdir(parents=True, exist_ok=True)
    save_checkpoint(run / "best.pt", model=model, model_name=cfg.model.name, model_kwargs=dict(cfg.model.kwargs),
                    preprocess=preprocess, config=config_to_plain(cfg), epoch=1, best=best,
                    metrics={"epoch": 1, "val_accuracy": val_accuracy})
    (run / "log.jsonl").write_text(json.dumps({"epoch": 1, "val_accuracy": val_accuracy, "seconds": 1.0}) + "\n")
    return run


def standin_bundle(root: Path, *, face_weight: float = 0.6, audio_weight: float = 0.4) -> Path:
    """A bundle folder shaped like the shipped one: a face_frame and an audio_cnn branch, weighted fusion."""
    from mmfer.bundle import write_bundle

    face = standin_run(root / "runs" / "face", "face_frame", seed=1)
    audio = standin_run(root / "runs" / "audio", "audio_cnn", seed=2)
    out = root / "bundle"
    write_bundle(out, [
        {"name": "face", "run": face, "weight": face_weight, "file": "face.pt", "data": "stand-in"},
        {"name": "audio", "run": audio, "weight": audio_weight, "file": "audio.pt"},
    ], provenance={"note": "stand-in for tests"})
    return out


def write_video(path: Path, frames, *, fps: float = 8.0, audio=None, sample_rate: int = 16000) -> Path:
    """An mp4 (mpeg4 video, AAC audio when ``audio`` is given) from RGB frames (T, H, W, 3) uint8."""
    import av
    import numpy as np

    frames = np.asarray(frames, dtype=np.uint8)
    c = av.open(str(path), "w")
    v = c.add_stream("mpeg4", rate=int(round(fps)))
    v.height, v.width = frames.shape[1:3]
    v.pix_fmt = "yuv420p"
    a = None
    if audio is not None:
        a = c.add_stream("aac", rate=sample_rate)
        a.layout = "mono"
    for img in frames:
        for pk in v.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")):
            c.mux(pk)
    for pk in v.encode():
        c.mux(pk)
    _mux_audio(c, a, audio, sample_rate)
    c.close()
    return path


def write_vfr_video(path: Path, times, *, size=(120, 160), audio=None, sample_rate: int = 16000,
                    live_webm: bool = False) -> Path:
    """A variable-frame-rate mkv: one frame at each of ``times`` (s), its header saying 30 frames/s; with
    ``audio`` an AAC track. Frame i is grey level 7 * i % 255. ``live_webm``: VP8 in a WebM muxed live, with no
    duration and no cues, as a browser's MediaRecorder writes it (decord cannot open it)."""
    import fractions

    import av
    import numpy as np

    c = av.open(str(path), "w", format="webm" if live_webm else None, options={"live": "1"} if live_webm else {})
    v = c.add_stream("libvpx" if live_webm else "mpeg4", rate=30)
    v.height, v.width = size
    v.pix_fmt = "yuv420p"
    v.codec_context.time_base = fractions.Fraction(1, 1000)
    a = None
    if audio is not None:  # every stream is added before the first packet
        a = c.add_stream("libopus" if live_webm else "aac", rate=48000 if live_webm else sample_rate)
        a.layout = "mono"
    for i, t in enumerate(times):
        f = av.VideoFrame.from_ndarray(np.full((*size, 3), (i * 7) % 255, np.uint8), format="rgb24")
        f.pts, f.time_base = int(round(t * 1000)), fractions.Fraction(1, 1000)
        for pk in v.encode(f):
            c.mux(pk)
    for pk in v.encode():
        c.mux(pk)
    _mux_audio(c, a, audio, sample_rate)
    c.close()
    return path


def _mux_audio(container, stream, audio, sample_rate: int) -> None:
    """Encode ``audio`` (mono float) into ``stream`` of ``container`` in 1024-sample frames (no-op without a stream)."""
    import av
    import numpy as np

    if stream is None:
        return
    samples = np.asarray(audio, dtype=np.float32).reshape(1, -1)
    for s in range(0, samples.shape[1], 1024):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, s:s + 1024]), format="fltp", layout="mono")
        frame.sample_rate = sample_rate
        for pk in stream.encode(frame):
            container.mux(pk)
    for pk in stream.encode():
        container.mux(pk)
