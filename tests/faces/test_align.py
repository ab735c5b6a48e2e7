"""Template placement and similarity alignment of real landmarks."""

from __future__ import annotations

import numpy as np
import pytest

from mmfer.faces.align import (
    MOUTH,
    TEMPLATE_68,
    align_face,
    align_frames,
    alignment_matrices,
    alignment_matrix,
    eye_centres,
    similarity_transform,
    similarity_transforms,
    template_68,
    transform_points,
)


def test_template_constants():
    assert TEMPLATE_68.shape == (68, 2) and TEMPLATE_68.dtype == np.float32
    assert TEMPLATE_68.min() == 0 and TEMPLATE_68.max() == 1
    t = template_68(112)
    assert t.shape == (68, 2) and t.dtype == np.float32
    assert (t > 5).all() and (t < 107).all()  # whole face inside with a margin
    eyes = eye_centres(t)
    assert 0.35 <= eyes[:, 1].mean() / 112 <= 0.40
    assert eyes[0, 0] < 56 < eyes[1, 0] and abs(eyes[0, 1] - eyes[1, 1]) < 2  # level eyes, either side of centre
    np.testing.assert_allclose(template_68(224), t * 2, rtol=1e-5)
    assert eye_centres(np.stack([t, t])).shape == (2, 2, 2)


def test_similarity_recovers_known_transform(rng):
    src = rng.uniform(0, 100, size=(21, 2))
    a, s, tx = 0.3, 1.7, np.array([12.0, -4.0])
    m_true = np.hstack([s * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]), tx[:, None]])
    dst = src @ m_true[:, :2].T + m_true[:, 2]
    np.testing.assert_allclose(similarity_transform(src, dst), m_true, atol=1e-9)
    mirrored = dst * [-1, 1]  # a reflection is not a similarity: the fit must not mirror the face
    assert np.linalg.det(similarity_transform(src, mirrored)[:, :2]) > 0


def test_alignment_puts_real_eyes_on_template(clip_frames, clip_tracks):
    tmpl = eye_centres(template_68(112))
    n = 0
    for frames, track in zip(clip_frames, clip_tracks):
        for i in np.flatnonzero(track.mask)[::3]:
            m = alignment_matrix(track.landmarks[i], 112)
            warped = transform_points(track.landmarks[i], m)
            assert np.abs(eye_centres(warped) - tmpl).max() < 3.0
            n += 1
    assert n >= 8


def test_mouth_does_not_move_alignment(clip_tracks):
    pts = clip_tracks[0].landmarks[np.flatnonzero(clip_tracks[0].mask)[0]].copy()
    m = alignment_matrix(pts, 112)
    pts[MOUTH] += [0, 15]  # an open mouth
    np.testing.assert_allclose(alignment_matrix(pts, 112), m)


def test_align_frames_batch(clip_frames, clip_tracks):
    frames, track = clip_frames[0][:6], clip_tracks[0]
    mask = track.mask[:6].copy()
    mask[2] = False
    crops = align_frames(frames, track.landmarks[:6], mask, crop_size=112)
    assert crops.shape == (6, 112, 112, 3) and crops.dtype == np.uint8
    assert crops[2].max() == 0 and crops[0].mean() > 30
    i = 0
    np.testing.assert_array_equal(crops[i], align_face(frames[i], track.landmarks[i], 112))
    # the aligned crop is the face: its centre is skin-bright, unlike the frame's dark background corners
    assert crops[0][40:80, 35:77].mean() > 1.2 * frames[0][:40, :40].mean()
    assert align_frames(frames, track.landmarks[:6], mask, crop_size=64).shape == (6, 64, 64, 3)
    with pytest.raises(ValueError):
        similarity_transform(np.zeros((5, 2)), np.ones((5, 2)))


def test_batched_matrices_match_one_by_one(clip_tracks, rng):
    pts = clip_tracks[0].landmarks[np.flatnonzero(clip_tracks[0].mask)[:10]]
    batch = alignment_matrices(pts, 112)
    assert batch.shape == (10, 2, 3)
    np.testing.assert_allclose(batch, np.stack([alignment_matrix(p, 112) for p in pts]), atol=1e-9)
    src = rng.uniform(0, 50, size=(3, 21, 2))
    dst = rng.uniform(0, 50, size=(3, 21, 2))
    np.testing.assert_allclose(similarity_transforms(src, dst)[1], similarity_transform(src[1], dst[1]), atol=1e-9)
    src[2] = 7.0  # all points at one place: no transform, NaN instead of an error for the whole batch
    assert np.isnan(similarity_transforms(src, dst)[2]).all() and np.isfinite(similarity_transforms(src, dst)[:2]).all()


def test_align_frames_leaves_degenerate_landmarks_black(clip_frames, clip_tracks):
    frames, track = clip_frames[0][:3], clip_tracks[0]
    pts = track.landmarks[:3].copy()
    pts[1] = 5.0  # a collapsed fit
    crops = align_frames(frames, pts, np.ones(3, bool), crop_size=64)
    assert crops[1].max() == 0 and crops[0].mean() > 30 and crops[2].mean() > 30
