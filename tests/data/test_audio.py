"""Speech pre-processing: trimming, sanitising, each augmentation, and the utterance statistics."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from mmfer.data import audio as A

SR = 16000


def _tone(seconds: float, freq: float = 200.0, amp: float = 0.5, harmonics: int = 4) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amp * sum(np.sin(2 * np.pi * freq * k * t) / k for k in range(1, harmonics + 1))).astype(np.float32)


def _speechlike(rng: np.random.Generator) -> np.ndarray:
    """Half a second of near-silence, 1 s of a voiced tone with a pitch glide, half a second of near-silence."""
    t = np.arange(SR) / SR
    f0 = 150 + 60 * t
    voiced = 0.4 * np.sin(2 * np.pi * np.cumsum(f0) / SR) + 0.2 * np.sin(4 * np.pi * np.cumsum(f0) / SR)
    quiet = lambda n: 1e-4 * rng.standard_normal(n)  # noqa: E731
    return np.concatenate([quiet(SR // 2), voiced, quiet(SR // 2)]).astype(np.float32)


def test_trim_silence_cuts_the_pauses_around_speech_only():
    rng = np.random.default_rng(0)
    a = _speechlike(rng)
    t = A.trim_silence(a, sample_rate=SR)
    assert abs(len(t) - SR) <= 0.05 * SR  # the voiced second, to within two 25 ms frames
    # a pause inside the utterance stays
    inner = np.concatenate([_tone(0.5), np.zeros(SR // 2, np.float32), _tone(0.5)])
    assert len(A.trim_silence(inner, sample_rate=SR)) == len(inner)
    # nothing but silence, or a click shorter than the minimum, is returned whole
    silence = np.zeros(SR, np.float32)
    assert len(A.trim_silence(silence, sample_rate=SR)) == SR
    click = np.zeros(SR, np.float32)
    click[100:200] = 0.9
    assert len(A.trim_silence(click, sample_rate=SR)) == SR


def test_sanitise_audio_names_what_it_changed():
    a = np.array([0.1, np.inf, -np.nan, 3.0, -0.2], np.float32)
    out, note = A.sanitise_audio(a)
    assert np.isfinite(out).all() and np.abs(out).max() <= 1.0
    assert out[1] == 0 and out[2] == 0 and out[3] == 1.0 and out[0] == pytest.approx(0.1)
    assert "2 non-finite" in note and "1 audio sample" in note
    clean, note = A.sanitise_audio(np.zeros(4, np.float32))
    assert note == ""


def test_resampling_overshoot_is_clipped_without_a_warning():
    """A 16-bit recording reaching full scale, resampled, peaks a little over 1: not the file's fault, no warning
    (a helper found 23 of 138 ordinary wav files so flagged)."""
    out, note = A.sanitise_audio(np.array([0.5, 1.05, -1.08], np.float32))
    assert note == "" and np.abs(out).max() == 1.0
    assert "up to 2.5" in A.sanitise_audio(np.array([2.5, 0.1], np.float32))[1]


def test_speed_noise_and_eq_do_what_they_say():
    rng = np.random.default_rng(1)
    a = _tone(1.0)
    assert len(A.change_speed(a, 1.25)) == int(round(SR / 1.25))
    for snr in (5.0, 20.0):
        noisy = A.add_noise(a, rng=rng, snr_db=snr)
        noise = noisy - a
        measured = 10 * np.log10(np.mean(a.astype(np.float64) ** 2) / np.mean(noise.astype(np.float64) ** 2))
        assert measured == pytest.approx(snr, abs=0.5)
    eq = A.random_eq(a, rng=rng, sample_rate=SR)
    assert eq.shape == a.shape and np.isfinite(eq).all() and not np.allclose(eq, a, atol=1e-3)
    for exponent in (0.0, 1.0, 2.0):
        n = A.coloured_noise(10_001, rng=rng, exponent=exponent)
        assert len(n) == 10_001 and np.sqrt(np.mean(n**2)) == pytest.approx(1.0, rel=0.05)


def test_reverb_leaves_a_tail_after_the_sound_stops():
    rng = np.random.default_rng(2)
    a = np.concatenate([_tone(0.3), np.zeros(SR // 2, np.float32)])
    wet = A.add_reverb(a, rng=rng, sample_rate=SR, rt60=0.6)
    assert wet.shape == a.shape and np.abs(wet).max() <= np.abs(a).max() + 1e-6
    after = slice(int(0.35 * SR), int(0.45 * SR))
    assert np.abs(a[after]).max() == 0 and np.abs(wet[after]).max() > 1e-3


def test_codec_round_trip_keeps_the_signal_in_place():
    rng = np.random.default_rng(3)
    a = _tone(1.0, amp=0.3)
    for _ in range(2):  # mp3 or AAC at random; either must come back aligned
        out = A.codec_round_trip(a, rng=rng, sample_rate=SR)
        assert out.shape == a.shape
        core = slice(2000, 14000)
        assert np.corrcoef(a[core], out[core])[0, 1] > 0.9


def test_augment_waveform_all_on_and_all_off():
    rng = np.random.default_rng(4)
    a = _speechlike(rng)
    on = SimpleNamespace(speed=(0.9, 1.1), reverb=1.0, eq=1.0, noise=1.0, noise_snr=(10.0, 20.0), codec=1.0)
    outs = [A.augment_waveform(a, rng=np.random.default_rng(s), sample_rate=SR, augment=on) for s in range(3)]
    for o in outs:
        assert np.isfinite(o).all() and 0.09 <= np.abs(o).max() <= 0.95 + 1e-6
        assert 0.85 * len(a) <= len(o) <= 1.15 * len(a)
    assert not np.allclose(outs[0][:1000], outs[1][:1000])
    off = SimpleNamespace(speed=(1.0, 1.0), reverb=0.0, eq=0.0, noise=0.0, noise_snr=(10.0, 20.0), codec=0.0)
    same = A.augment_waveform(a, rng=rng, sample_rate=SR, augment=off)
    np.testing.assert_allclose(same / np.abs(same).max(), a / np.abs(a).max(), atol=1e-6)  # only the level changed


def test_utterance_features_pitch_and_gain_invariance():
    names = A.utterance_feature_names()
    a = _tone(1.5, freq=200.0, amp=0.3)
    f = A.utterance_features(a, sample_rate=SR)
    assert f.shape == (len(names),) and f.dtype == np.float32 and np.isfinite(f).all()
    f0 = A._yin(a.astype(np.float64), sample_rate=SR, fmin=60, fmax=500, frame=1024, hop=160)
    assert np.nanmedian(f0) == pytest.approx(200.0, rel=0.02)
    assert f[names.index("voiced_ratio")] > 0.8 and abs(f[names.index("f0_range")]) < 0.5  # a steady tone
    quieter = A.utterance_features(a * 0.05, sample_rate=SR)
    level_free = [i for i, n in enumerate(names) if not n.startswith("contrast")]
    # only the bands with next to no energy (below the 1e-10 floor) move, and by little
    np.testing.assert_allclose(quieter[level_free], f[level_free], rtol=1e-2, atol=0.05)
    np.testing.assert_allclose(quieter, f, rtol=0.05, atol=0.05)
    # a lower voice with the same (no) movement gives the same pitch statistics: the level is not in them
    low = A.utterance_features(_tone(1.5, freq=120.0, amp=0.3), sample_rate=SR)
    pitch = [names.index(n) for n in ("f0_std", "f0_range", "f0_slope")]
    np.testing.assert_allclose(low[pitch], f[pitch], atol=0.2)
    assert not any(n in names for n in ("f0_mean", "f0_p50"))
    # the envelope follows where the energy is: a 2 kHz tone puts it in a higher band than a 200 Hz one
    env = [i for i, n in enumerate(names) if n.startswith("envelope") and n.endswith("_mean")]
    high = A.utterance_features(_tone(1.5, freq=2000.0, amp=0.3), sample_rate=SR)
    assert len(env) == A.N_ENVELOPE and np.argmax(high[env]) > np.argmax(f[env])
    # silence and very short input still give a finite vector of the same length
    for quiet in (np.zeros(SR, np.float32), np.zeros(10, np.float32)):
        v = A.utterance_features(quiet, sample_rate=SR)
        assert v.shape == f.shape and np.isfinite(v).all()


def _timed_sound_video(path, *, audio_from: float, hole: tuple[float, float] | None = None, drop_every: int = 0):
    """A 4-s mkv (black 8-fps picture from 0 s) whose PCM sound, a 440-Hz tone, starts at ``audio_from`` s and
    has no packets in ``hole``: the timestamps say where the sound belongs."""
    import fractions

    import av

    c = av.open(str(path), "w", format="matroska")
    v = c.add_stream("mpeg4", rate=8)
    v.height, v.width, v.pix_fmt = 48, 64, "yuv420p"
    a = c.add_stream("pcm_s16le", rate=16000)
    a.layout = "mono"
    for i in range(32):
        f = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
        f.pts, f.time_base = i, fractions.Fraction(1, 8)
        for pk in v.encode(f):
            c.mux(pk)
    for pk in v.encode():
        c.mux(pk)
    n = 1600  # 0.1-s frames
    for k in range(int((4.0 - audio_from) * 10)):
        t = audio_from + k * 0.1
        if hole and hole[0] <= t < hole[1] or drop_every and k % drop_every == drop_every - 1:
            continue
        tone = (0.5 * np.sin(2 * np.pi * 440 * (t + np.arange(n) / 16000)) * 32767).astype(np.int16)
        f = av.AudioFrame.from_ndarray(tone[None], format="s16", layout="mono")
        f.sample_rate, f.pts, f.time_base = 16000, int(round(t * 16000)), fractions.Fraction(1, 16000)
        for pk in a.encode(f):
            c.mux(pk)
    for pk in a.encode():
        c.mux(pk)
    c.close()
    return path


def test_sound_is_placed_by_its_timestamps(tmp_path):
    """Sound that comes in 1 s after the picture, or stops for 0.5 s, is heard where its timestamps put it (silence
    before and in between), not moved up against the first sample: it stays in step with the faces."""
    from mmfer.data.video import iter_audio_chunks, read_audio

    late = _timed_sound_video(tmp_path / "late.mkv", audio_from=1.0)
    notes: list[str] = []
    a = np.concatenate(list(iter_audio_chunks(late, notes=notes)))
    assert len(a) == pytest.approx(4 * 16000, abs=160)
    assert np.abs(a[: 15900]).max() == 0 and np.abs(a[16100:17000]).max() > 0.4
    assert notes == ["the sound comes in at 1.00 s: heard as silence there, so the sound stays in step with the "
                     "picture"], notes
    notes = []
    holed = np.concatenate(list(iter_audio_chunks(_timed_sound_video(tmp_path / "hole.mkv", audio_from=0.0,
                                                                     hole=(2.0, 2.5)), notes=notes)))
    assert notes == ["its timestamps stop for 0.50 s in 1 place(s): heard as silence there, so the sound stays in "
                     "step with the picture"], notes
    assert len(holed) == pytest.approx(4 * 16000, abs=160)
    assert np.abs(holed[32100:39900]).max() == 0 and np.abs(holed[40100:41000]).max() > 0.4
    # after the hole, the tone is where it was: the phase of a 440-Hz tone at 3 s matches an unbroken one
    whole = read_audio(_timed_sound_video(tmp_path / "whole.mkv", audio_from=0.0))
    assert np.allclose(holed[48000:49000], whole[48000:49000], atol=1e-3)
    assert np.abs(whole[32100:39900]).max() > 0.4  # the unbroken file has no gap, and none is put in
    # dropouts under 0.1 s each that add up (every 4th 0.1-s frame missing): filled once the shortfall passes 0.1 s,
    # so the sound never falls more than 0.1 s behind its clock (its last frame, stamped 3.8 s, ended at 3.0 s)
    drops = read_audio(_timed_sound_video(tmp_path / "drops.mkv", audio_from=0.0, drop_every=4))
    assert 3.9 * 16000 - len(drops) <= 0.1 * 16000 + 16


def test_the_clock_starts_with_the_streams_analysed():
    """A subtitle or second sound stream that starts earlier does not move time 0: the first video and sound
    streams set it (sound would otherwise get silence in front and play late against the faces)."""
    from fractions import Fraction
    from types import SimpleNamespace as NS

    from mmfer.data.video import clock_origin

    tb = Fraction(1, 1000)
    c = NS(streams=NS(video=(NS(start_time=500, time_base=tb),),
                      audio=(NS(start_time=500, time_base=tb), NS(start_time=0, time_base=tb))))
    assert clock_origin(c) == pytest.approx(0.5)
    c.streams.audio = (NS(start_time=200, time_base=tb),)
    assert clock_origin(c) == pytest.approx(0.2)
    c.streams.video, c.streams.audio = (), (NS(start_time=None, time_base=tb),)
    assert clock_origin(c) is None
