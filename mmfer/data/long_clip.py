"""A long synthetic video with a face and speech, made from a short real clip: what ``mmfer bench --long-clip``
measures memory and whole-video predict speed on."""

from __future__ import annotations

from pathlib import Path

from mmfer.errors import MmferError

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "assets" / "cremad"

LONG_CLIP_SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}


def make_long_clip(path: str | Path, *, seconds: float, fps: int = 25, size: tuple[int, int] = (1920, 1080),
                   source: Path | None = None) -> Path:
    """A long H.264 + AAC clip from a short real one (default: the first CREMA-D fixture): its frames,
    enlarged onto a ``size`` canvas and played back and forth with a slow drift, its sound looped. Encoded a
    frame at a time, so making a 10-minute clip takes minutes of one core but little memory."""
    import av
    import cv2
    import numpy as np

    from mmfer.data.video import read_audio, read_frames

    if not seconds > 0:
        raise MmferError(f"--long-clip {seconds}: give a length in seconds above 0")
    if source is None:
        found = sorted(FIXTURES.glob("*.flv"))
        if not found:  # an installed wheel carries no tests/
            raise MmferError(f"--long-clip is made from the CREMA-D fixtures in a source checkout ({FIXTURES}), "
                             "not found here; run it from a clone of the repository")
        source = found[0]
    frames, _ = read_frames(source)
    audio = read_audio(source, sample_rate=16000)
    w, h = size
    scale = 0.6 * h / frames.shape[1]
    faces = [cv2.resize(f, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR) for f in frames]
    fh, fw = faces[0].shape[:2]
    cycle = list(range(len(faces))) + list(range(len(faces) - 2, 0, -1))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = int(round(seconds * fps))
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "crf": "28"})
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        a = c.add_stream("aac", rate=16000)
        a.layout = "mono"
        canvas = np.full((h, w, 3), 96, np.uint8)
        for i in range(n):
            x = int((w - fw) / 2 + (w - fw) / 3 * np.sin(2 * np.pi * i / (fps * 20)))
            y = (h - fh) // 2
            canvas[:] = 96
            canvas[y:y + fh, x:x + fw] = faces[cycle[i % len(cycle)]]
            for pk in v.encode(av.VideoFrame.from_ndarray(canvas, format="rgb24")):
                c.mux(pk)
        for pk in v.encode():
            c.mux(pk)
        total, step, start = int(seconds * 16000), 1024, 0
        while start < total:
            idx = np.arange(start, min(start + step, total)) % len(audio)
            frame = av.AudioFrame.from_ndarray(audio[idx].reshape(1, -1).astype(np.float32), format="fltp",
                                               layout="mono")
            frame.sample_rate = 16000
            for pk in a.encode(frame):
                c.mux(pk)
            start += step
        for pk in a.encode():
            c.mux(pk)
    return path
