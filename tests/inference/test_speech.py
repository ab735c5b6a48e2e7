"""The speech check before the voice models: speech is heard in real speech, not in noise, hum or silence;
predict leaves sound without speech to the faces, says so, and reads it again when the check is off."""

from __future__ import annotations

import numpy as np
import pytest

from mmfer.data.video import read_audio, read_frames
from mmfer.errors import MmferError
from mmfer.inference.speech import SPEECH_EVIDENCE, holds_speech, speech_probability
from mmfer.predict import predict

from predict_helpers import standin_bundle, write_video

pytestmark = pytest.mark.speech_check


def _noises(n: int, rate: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    t = np.arange(n) / rate
    return {
        "noise floor": rng.normal(0, 5e-5, n),  # about -86 dBFS: read as Fear 0.73 before the check
        "room noise": rng.normal(0, 0.001, n),
        "mains hum": 0.01 * np.sin(2 * np.pi * 50 * t),
        "rumble": np.convolve(rng.normal(0, 0.05, n), np.ones(64) / 64, mode="same"),
        "dc": np.full(n, 0.02),
    }


def test_speech_is_heard_in_speech_and_not_in_noise(cremad_audio) -> None:
    speech = read_audio(cremad_audio[0])
    assert speech_probability(speech, 16000) > 0.5 and holds_speech(speech, 16000)
    for name, sound in _noises(3 * 16000, 16000).items():
        assert speech_probability(sound.astype(np.float32), 16000) < SPEECH_EVIDENCE, name
    # other rates: 8 kHz is read as it is, others resampled to 16 kHz
    assert holds_speech(read_audio(cremad_audio[0], sample_rate=8000), 8000)
    assert holds_speech(read_audio(cremad_audio[0], sample_rate=44100), 44100)
    assert speech_probability(np.zeros(0, np.float32), 16000) == 0.0
    assert speech_probability(np.full(300, 0.1, np.float32) + np.sin(np.arange(300)).astype(np.float32), 16000) == 0.0
    # a DC offset is no speech, and takes none away
    assert speech_probability(np.full(16000, 0.02, np.float32), 16000) == 0.0
    assert holds_speech(speech + np.float32(0.05), 16000)
    with pytest.raises(MmferError, match="mono"):
        speech_probability(np.zeros((2, 100), np.float32), 16000)


def test_predict_leaves_sound_without_speech_to_the_faces(tmp_path, cremad_videos, cremad_audio) -> None:
    bundle = standin_bundle(tmp_path / "standin")
    frames, fps = read_frames(cremad_videos[3], fps=8)
    noise = _noises(int(len(frames) / fps * 16000), 16000)["room noise"].astype(np.float32)
    write_video(tmp_path / "fan.mp4", frames, fps=fps, audio=noise)
    import soundfile as sf

    sf.write(tmp_path / "hum.wav", _noises(3 * 16000, 16000)["mains hum"], 16000)
    inputs = [tmp_path / "fan.mp4", tmp_path / "hum.wav", cremad_audio[0]]
    fan, hum, voice = predict(inputs, model=bundle, progress=False).predictions
    assert fan.modalities == "face" and fan.warning.startswith("no speech heard in the sound (a very quiet one, peak")
    assert "--no-speech-check, speech_check=False, reads it): face only" in fan.warning  # -47 dBFS: the row says speech may be missed
    assert hum.modalities == "" and hum.warning.startswith("no speech heard in the sound: uniform probabilities")
    assert voice.modalities == "audio" and not voice.warning
    # the check off: any sound that is not silent is read, as before
    fan, hum, _ = predict(inputs, model=bundle, progress=False, speech_check=False).predictions
    assert fan.modalities == "face+audio" and hum.modalities == "audio" and not hum.warning


def test_the_speech_check_leaves_torch_threads_as_they_were() -> None:
    """Importing silero_vad sets torch to one thread for the process: face models and a caller's own torch work
    ran on one core after the first Predictor (found by a reviewer)."""
    import torch

    from mmfer.inference import speech

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        speech._model.cache_clear()
        import sys

        sys.modules.pop("silero_vad", None)
        sys.modules.pop("silero_vad.model", None)
        speech._model()
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_the_command_line_turns_the_check_off(tmp_path) -> None:
    import csv

    import soundfile as sf

    from mmfer.cli import main

    bundle = standin_bundle(tmp_path / "standin")
    sf.write(tmp_path / "hum.wav", _noises(3 * 16000, 16000)["mains hum"], 16000)
    for flag, modalities in (([], ""), (["--no-speech-check"], "audio")):
        out = tmp_path / f"p{len(flag)}.csv"
        assert main(["predict", str(tmp_path / "hum.wav"), "--model", str(bundle), "--out", str(out), "--quiet",
                     "--no-progress", *flag]) == 0
        assert [r["modalities"] for r in csv.DictReader(out.open())] == [modalities]
