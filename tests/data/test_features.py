"""Input features: landmark invariances and interpolation, log-mel shapes, SpecAugment, face tensors."""

from __future__ import annotations

import numpy as np
import pytest

from mmfer.data.config import AugmentConfig
from mmfer.data.features import (
    FACE_MEAN,
    FACE_STD,
    LANDMARK_FEATURES,
    augment_faces,
    augment_log_mel,
    face_tensor,
    landmark_features,
    log_mel,
    spec_augment,
    warp_frequency,
)
from mmfer.errors import MmferError
from mmfer.faces.align import template_68

MOUTH = slice(48, 68)


def _track(rng: np.random.Generator, t: int = 12) -> np.ndarray:
    """A face in 160-pixel frame coordinates whose mouth opens over time, plus landmark jitter."""
    base = template_68(160).astype(np.float64)
    frames = []
    for i in range(t):
        p = base + rng.normal(0, 0.5, base.shape)
        p[MOUTH, 1] += (p[MOUTH, 1] - p[MOUTH, 1].mean()) * 0.05 * i
        frames.append(p)
    return np.stack(frames).astype(np.float32)


def _similarity(points: np.ndarray, angle: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    r = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return (points.astype(np.float64) @ r.T * scale + np.asarray(shift)).astype(np.float32)


def test_landmark_features_shape_and_invariance(rng: np.random.Generator) -> None:
    lm = _track(rng)
    mask = np.ones(len(lm), dtype=bool)
    feats, out_mask = landmark_features(lm, mask)
    assert feats.shape == (12, LANDMARK_FEATURES) and feats.dtype == np.float32
    assert out_mask.all() and np.isfinite(feats).all()
    assert np.abs(feats[:, 136:]).max() > 1e-3  # the mouth moves
    assert np.abs(feats[0, 136:]).max() == 0  # no motion before the first frame
    for angle, scale, shift in [(0.0, 1.0, (37.0, -12.0)), (0.0, 3.7, (0, 0)), (0.6, 1.0, (0, 0)), (-2.5, 0.4, (500, 80))]:
        moved, _ = landmark_features(_similarity(lm, angle, scale, shift), mask)
        np.testing.assert_allclose(moved, feats, atol=1e-4)
    # ...but an expression change is not removed
    smile = lm.copy()
    smile[:, 48, 1] -= 6
    smile[:, 54, 1] -= 6
    other, _ = landmark_features(smile, mask)
    assert np.abs(other - feats)[:, :136].max() > 0.05
    # each frame's pose is removed separately: rotating only one frame changes nothing
    one = lm.copy()
    one[5] = _similarity(lm[5], 0.3, 1.2, (10, 10))
    np.testing.assert_allclose(landmark_features(one, mask)[0], feats, atol=1e-4)


def test_landmark_interpolation(rng: np.random.Generator) -> None:
    lm = _track(rng)
    mask = np.ones(12, dtype=bool)
    mask[[0, 1, 5, 6, 7, 11]] = False
    lm[~mask] = np.nan
    mask[6] = True  # a frame claimed valid but holding NaN counts as missing
    feats, out = landmark_features(lm, mask)
    assert out.tolist() == [False, False] + [True] * 9 + [False]
    assert np.isfinite(feats).all()
    pos = feats[:, :136]
    # interior gap 5..7 lies on the line between frames 4 and 8
    for i, t in enumerate((5, 6, 7), start=1):
        np.testing.assert_allclose(pos[t], pos[4] + (pos[8] - pos[4]) * i / 4, atol=1e-5)
    # edges copy the nearest valid frame; motion is the frame-to-frame difference
    np.testing.assert_allclose(pos[0], pos[2])
    np.testing.assert_allclose(pos[11], pos[10])
    np.testing.assert_allclose(feats[1:, 136:], pos[1:] - pos[:-1], atol=1e-6)
    # the valid frames themselves match the features of the full track
    full, _ = landmark_features(_track(np.random.default_rng(0)), np.ones(12, dtype=bool))
    np.testing.assert_allclose(pos[[2, 3, 4, 8, 9, 10]], full[[2, 3, 4, 8, 9, 10], :136], atol=1e-5)


def test_landmark_no_interpolation_and_no_face(rng: np.random.Generator) -> None:
    lm = _track(rng, 6)
    mask = np.array([True, True, False, True, True, True])
    lm[2] = np.nan
    feats, out = landmark_features(lm, mask, interpolate=False)
    assert out.tolist() == mask.tolist()
    assert not feats[2].any()
    assert not feats[3, 136:].any()  # no motion across the gap
    assert feats[4, 136:].any()
    feats, out = landmark_features(np.full((5, 68, 2), np.nan, np.float32), np.zeros(5, dtype=bool))
    assert feats.shape == (5, 272) and not feats.any() and not out.any()
    feats, out = landmark_features(np.zeros((0, 68, 2), np.float32), np.zeros(0, dtype=bool))
    assert feats.shape == (0, 272) and out.shape == (0,)
    with pytest.raises(MmferError, match=r"expected \(T, 68, 2\)"):
        landmark_features(np.zeros((5, 5, 2)), np.ones(5, dtype=bool))


def test_log_mel_shapes_and_frequencies() -> None:
    sr = 16000
    t = np.arange(3 * sr) / sr
    spec = log_mel(np.sin(2 * np.pi * 440 * t).astype(np.float32))
    assert spec.shape == (64, 301) and spec.dtype == np.float32 and np.isfinite(spec).all()
    high = log_mel(np.sin(2 * np.pi * 4000 * t).astype(np.float32))
    assert high.mean(1).argmax() > spec.mean(1).argmax() + 10
    for n in (0, 1, 10, 399):
        s = log_mel(np.zeros(n, np.float32), n_mels=40)
        assert s.shape[0] == 40 and s.shape[1] >= 1 and np.isfinite(s).all()
    assert log_mel(np.zeros(8000, np.float32), sample_rate=8000, hop_ms=20).shape == (64, 51)
    with pytest.raises(MmferError, match="mono"):
        log_mel(np.zeros((2, 100), np.float32))


def test_spec_augment_masks_bins(rng: np.random.Generator) -> None:
    spec = rng.normal(size=(64, 200)).astype(np.float32)
    before = spec.copy()
    out = spec_augment(spec, rng=np.random.default_rng(1), freq_width=8, time_width=20)
    np.testing.assert_array_equal(spec, before)  # input untouched
    fill = spec.mean()
    rows = np.isclose(out, fill).all(axis=1)
    cols = np.isclose(out, fill).all(axis=0)
    assert 1 <= rows.sum() <= 16 and 1 <= cols.sum() <= 40
    changed = out != spec
    assert np.array_equal(changed, (rows[:, None] | cols[None, :]) & changed)  # only whole rows/columns
    np.testing.assert_array_equal(out, spec_augment(spec, rng=np.random.default_rng(1)))  # seeded
    np.testing.assert_array_equal(spec_augment(spec, rng=rng, freq_masks=0, time_masks=0), spec)
    for t in (1, 3):  # variable length: short spectrograms are safe
        short = spec_augment(spec[:, :t], rng=rng, time_width=20)
        assert short.shape == (64, t)


def test_warp_frequency_moves_a_tone_as_a_longer_or_shorter_vocal_tract_would() -> None:
    t = np.arange(16000, dtype=np.float32) / 16000
    tone = {f: log_mel(np.sin(2 * np.pi * f * t).astype(np.float32)) for f in (1000, 1200, 833)}
    peak = {f: int(s.mean(1).argmax()) for f, s in tone.items()}
    assert peak[833] < peak[1000] < peak[1200]
    # 1000 Hz scaled by 1.2 sits where a 1200 Hz tone sits, and by 1 / 1.2 where an 833 Hz one does
    assert abs(int(warp_frequency(tone[1000], 1.2).mean(1).argmax()) - peak[1200]) <= 1
    assert abs(int(warp_frequency(tone[1000], 1 / 1.2).mean(1).argmax()) - peak[833]) <= 1
    spec = tone[1000]
    np.testing.assert_array_equal(warp_frequency(spec, 1.0), spec)
    out = warp_frequency(spec, 0.9)
    assert out.shape == spec.shape and out.dtype == np.float32 and np.isfinite(out).all()
    assert out[-1].max() <= spec.max() + 1e-5  # read by interpolation: nothing louder than the input
    with pytest.raises(MmferError, match="factor"):
        warp_frequency(spec, 0.0)
    with pytest.raises(MmferError, match="n_mels, T"):
        warp_frequency(spec[0], 1.1)


def test_augment_log_mel_applies_the_configured_warp_then_masks(rng: np.random.Generator) -> None:
    spec = rng.normal(size=(64, 50)).astype(np.float32)
    plain = AugmentConfig(spec_augment=False)
    np.testing.assert_array_equal(augment_log_mel(spec, rng=rng, augment=plain), spec)  # the default warps nothing
    fixed = AugmentConfig(spec_augment=False, freq_warp=(1.1, 1.1))  # a one-value range is that factor
    np.testing.assert_allclose(augment_log_mel(spec, rng=rng, augment=fixed), warp_frequency(spec, 1.1))
    both = AugmentConfig(freq_warp=(0.9, 1.1))
    a = augment_log_mel(spec, rng=np.random.default_rng(3), augment=both)
    np.testing.assert_array_equal(a, augment_log_mel(spec, rng=np.random.default_rng(3), augment=both))  # seeded
    assert a.shape == spec.shape and not np.allclose(a, spec)
    with pytest.raises(MmferError, match="freq_warp"):
        AugmentConfig(freq_warp=(1.1, 0.9))


def test_face_tensor() -> None:
    faces = np.zeros((2, 5, 40, 40, 3), np.uint8)
    faces[..., 0] = 255  # pure red
    faces[:, :, :20] //= 2
    x = face_tensor(faces)
    assert x.shape == (2, 5, 3, 40, 40) and x.dtype == np.float32
    assert x[0, 0, 0, 30, 0] == pytest.approx((1 - FACE_MEAN) / FACE_STD)
    assert x[0, 0, 1].max() == pytest.approx(-FACE_MEAN / FACE_STD)
    g = face_tensor(faces, size=24, grayscale=True)
    assert g.shape == (2, 5, 1, 24, 24)
    assert g[0, 0, 0, 20, 5] == pytest.approx((76 / 255 - FACE_MEAN) / FACE_STD, abs=0.02)  # 0.299 * 255
    # equalisation stretches a dim, low-contrast face to the full range
    dim = np.random.default_rng(0).integers(40, 60, (3, 32, 32, 3)).astype(np.uint8)
    plain, eq = face_tensor(dim, grayscale=True), face_tensor(dim, grayscale=True, equalize=True)
    assert np.ptp(eq) > 3 * np.ptp(plain)
    assert face_tensor(dim, equalize=True).shape == (3, 3, 32, 32)
    with pytest.raises(MmferError, match="RGB"):
        face_tensor(np.zeros((4, 32, 32), np.uint8))


def test_augment_faces_is_the_same_for_every_frame(rng: np.random.Generator) -> None:
    frame = face_tensor(np.random.default_rng(5).integers(0, 255, (1, 32, 32, 3)).astype(np.uint8))
    clip = np.repeat(frame, 6, axis=0)
    outs = [augment_faces(clip, rng=np.random.default_rng(s)) for s in range(4)]
    for out in outs:
        assert out.shape == clip.shape and out.dtype == np.float32
        np.testing.assert_allclose(out, np.repeat(out[:1], 6, axis=0))  # one transform per clip
    assert not np.allclose(outs[0], outs[1])
    # flip only: the result is the clip or its mirror image
    seen = set()
    for s in range(8):
        o = augment_faces(clip, rng=np.random.default_rng(s), crop_scale=(1.0, 1.0), brightness=0, contrast=0)
        if np.array_equal(o, clip):
            seen.add("same")
        else:
            np.testing.assert_array_equal(o, clip[..., ::-1])
            seen.add("mirror")
    assert seen == {"same", "mirror"}
    batch = augment_faces(np.zeros((2, 3, 1, 16, 16), np.float32), rng=rng, flip=False)
    assert batch.shape == (2, 3, 1, 16, 16)


def test_augment_faces_rotation_shift_and_erasing(rng: np.random.Generator) -> None:
    frame = face_tensor(np.random.default_rng(6).integers(0, 255, (1, 24, 24, 3)).astype(np.uint8), grayscale=True)
    clip = np.repeat(frame, 3, axis=0)
    kw = dict(flip=False, crop_scale=(1.0, 1.0), brightness=0, contrast=0)
    # a pure rotation keeps the centre pixel's neighbourhood and moves the corners; one warp for every frame
    rot = augment_faces(clip, rng=np.random.default_rng(0), rotation=30, **kw)
    np.testing.assert_allclose(rot, np.repeat(rot[:1], 3, axis=0))
    assert not np.allclose(rot, clip) and np.isfinite(rot).all()
    # erasing with probability 1 blanks one rectangle (2-25% of the face) with noise, the same on every frame
    er = augment_faces(clip, rng=np.random.default_rng(1), erasing=1.0, **kw)
    changed = (er[0, 0] != clip[0, 0])
    assert 0.02 * 24 * 24 * 0.5 <= changed.sum() <= 0.25 * 24 * 24 * 1.2
    rows, cols = np.nonzero(changed)
    assert changed[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].mean() > 0.9  # a rectangle
    np.testing.assert_array_equal(er[0], er[2])
    # shift only: content moves, the transform is a translation (corner pixels come from the reflected border)
    sh = augment_faces(clip, rng=np.random.default_rng(2), translate=0.2, **kw)
    assert not np.allclose(sh, clip)
    assert np.array_equal(augment_faces(clip, rng=np.random.default_rng(3), erasing=0.0, **kw), clip)
    # a covered lower face: the bottom 25-45% rows one grey level on every frame, the rest untouched
    for seed in range(5):
        oc = augment_faces(clip, rng=np.random.default_rng(seed), occlusion=1.0, **kw)
        covered = [r for r in range(24) if not np.array_equal(oc[0, 0, r], clip[0, 0, r])]
        assert covered == list(range(covered[0], 24)) and 0.25 * 24 - 1 <= len(covered) <= 0.45 * 24 + 1
        assert np.unique(oc[:, :, covered[0]:]).size == 1 and np.array_equal(oc[:, :, :covered[0]], clip[:, :, :covered[0]])
    assert np.array_equal(augment_faces(clip, rng=np.random.default_rng(3), occlusion=0.0, **kw), clip)


def test_crop_views_mirror_and_ten_crop():
    from mmfer.data.features import crop_views

    x = np.arange(2 * 1 * 20 * 20, dtype=np.float32).reshape(2, 1, 20, 20)
    one, two, ten = crop_views(x, views=1), crop_views(x, views=2), crop_views(x, views=10)
    assert one.shape == (2, 1, 1, 20, 20) and np.array_equal(one[:, 0], x)
    assert two.shape == (2, 2, 1, 20, 20) and np.array_equal(two[:, 1], x[..., ::-1])
    assert ten.shape == (2, 10, 1, 20, 20)
    # crops come from different places: top-left darker than centre darker than bottom-right here
    assert ten[:, 0].mean() < ten[:, 4].mean() < ten[:, 3].mean()
    np.testing.assert_allclose(ten[:, 5:], ten[:, :5][..., ::-1])  # the last five are the mirrors
    with pytest.raises(MmferError, match="views=5"):
        crop_views(x, views=5)
