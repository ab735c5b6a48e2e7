"""Face image files read one way for training, scoring and predict (mmfer.data.images)."""

from __future__ import annotations

import numpy as np
import pytest

from mmfer.data.containers import cut_short
from mmfer.data.images import read_image_rgb
from mmfer.errors import MmferError


def _face(h=40, w=30):
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (h, w, 3), dtype=np.uint8)


def test_transparent_pngs_read_upright_over_white_like_their_opaque_twins(tmp_path):
    """An RGBA PNG with an EXIF orientation was read unturned (OpenCV's unchanged read ignores orientation), and
    with orientation 90 its transparency was dropped (shapes differed)."""
    from PIL import Image

    face = _face()
    for orientation in (1, 3, 6, 8):
        exif = Image.Exif()
        exif[0x0112] = orientation
        Image.fromarray(face).save(tmp_path / f"rgb{orientation}.png", exif=exif)
        rgba = np.dstack([face, np.full(face.shape[:2], 255, np.uint8)])
        rgba[:5, :, 3] = 0  # a transparent band
        rgba[:5, :, :3] = 0  # black under it
        Image.fromarray(rgba).save(tmp_path / f"rgba{orientation}.png", exif=exif)
        opaque, clear = read_image_rgb(tmp_path / f"rgb{orientation}.png"), read_image_rgb(tmp_path / f"rgba{orientation}.png")
        assert opaque.shape == clear.shape
        turned_white = (clear == 255).all(axis=2)
        assert turned_white.sum() >= 5 * 30  # the band shows white, wherever the turn put it
        assert np.array_equal(opaque[~turned_white], clear[~turned_white])
    with pytest.raises(MmferError, match="not a readable image"):
        (tmp_path / "x.png").write_bytes(b"not an image")
        read_image_rgb(tmp_path / "x.png")


def test_a_cut_jpeg_or_png_is_told_from_one_with_a_thumbnail_or_trailing_bytes(tmp_path):
    """The JPEG's segments are walked: an EXIF thumbnail's own end marker near the end of a cut file is not taken
    for the image's, and a phone's bytes after the end (a motion clip) are not taken for a cut."""
    from PIL import Image

    big = np.kron(_face(60, 80), np.ones((4, 4, 1), np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 1
    thumb = Image.fromarray(big[::8, ::8])
    Image.fromarray(big).save(tmp_path / "photo.jpg", quality=90, exif=exif.tobytes())
    whole = (tmp_path / "photo.jpg").read_bytes()
    assert cut_short(tmp_path / "photo.jpg") == ""
    (tmp_path / "motion.jpg").write_bytes(whole + b"\x00" * 10_000 + b"ftypmp42" * 100)
    assert cut_short(tmp_path / "motion.jpg") == ""
    (tmp_path / "cut.jpg").write_bytes(whole[: len(whole) // 2])
    assert "no end marker" in cut_short(tmp_path / "cut.jpg")
    import io

    buf = io.BytesIO()
    thumb.save(buf, "JPEG")
    app1 = b"\xff\xe1" + (len(buf.getvalue()) + 2).to_bytes(2, "big") + buf.getvalue()  # a thumbnail-like segment
    with_thumb = whole[:2] + app1 + whole[2:]
    (tmp_path / "thumb_cut.jpg").write_bytes(with_thumb[: len(app1) + 400])  # cut just after the thumbnail
    assert "no end marker" in cut_short(tmp_path / "thumb_cut.jpg")
    Image.fromarray(big).save(tmp_path / "p.png")
    png = (tmp_path / "p.png").read_bytes()
    (tmp_path / "p_cut.png").write_bytes(png[: len(png) * 2 // 3])
    (tmp_path / "p_tail.png").write_bytes(png + b"\x00" * 8000)
    assert cut_short(tmp_path / "p.png") == "" and cut_short(tmp_path / "p_tail.png") == ""
    assert "chunk runs to byte" in cut_short(tmp_path / "p_cut.png")


def test_an_image_too_large_to_decode_is_refused_from_its_header(tmp_path, monkeypatch):
    """Training and scoring read images with no size check (a 140-KB PNG of 12000x12000 took 1.3 GB per loader
    worker), and a file Pillow cannot identify was decoded by OpenCV by its content, whatever its size."""
    import cv2
    from PIL import Image

    from mmfer.data import images

    Image.new("L", (12000, 12000)).save(tmp_path / "bomb.png")  # flat: a few hundred KB
    decoded = []
    monkeypatch.setattr(cv2, "imread", lambda *a, **k: decoded.append(a) or None)
    with pytest.raises(MmferError, match="12000x12000 pixels, over the 50 megapixels"):
        read_image_rgb(tmp_path / "bomb.png")
    Image.new("RGB", (9000, 6000)).save(tmp_path / "bomb.jpg", quality=50)
    with pytest.raises(MmferError, match="9000x6000 pixels"):
        read_image_rgb(tmp_path / "bomb.jpg")
    Image.new("RGB", (8000, 8000)).save(tmp_path / "bomb.webp", lossless=True)
    with pytest.raises(MmferError, match="8000x8000 pixels"):
        read_image_rgb(tmp_path / "bomb.webp")
    Image.new("RGB", (8000, 8000)).save(tmp_path / "bomb.tif")  # read by Pillow's header
    with pytest.raises(MmferError, match="8000x8000 pixels"):
        read_image_rgb(tmp_path / "bomb.tif")
    (tmp_path / "hdr.png").write_bytes(b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 9000 +X 9000\n" + b"\0" * 64)
    with pytest.raises(MmferError, match="not a readable image"):
        read_image_rgb(tmp_path / "hdr.png")
    assert decoded == []  # none of them decoded
    monkeypatch.undo()
    # the header's size is the image's: PNG, JPEG (past an EXIF block) and others
    exif = Image.Exif()
    exif[0x010E] = "x" * 2000
    Image.fromarray(_face(37, 53)).save(tmp_path / "ok.jpg", exif=exif.tobytes())
    Image.fromarray(_face(37, 53)).save(tmp_path / "ok.png")
    Image.fromarray(_face(37, 53)).save(tmp_path / "ok.webp", lossless=True)  # VP8L
    Image.fromarray(_face(37, 53)).save(tmp_path / "lossy.webp", quality=80)  # VP8
    Image.fromarray(_face(37, 53)).convert("RGBA").save(tmp_path / "alpha.webp", exif=exif.tobytes())  # VP8X
    Image.fromarray(_face(37, 53)).save(tmp_path / "ok.bmp")
    for name in ("ok.jpg", "ok.png", "ok.webp", "lossy.webp", "alpha.webp", "ok.bmp"):
        head = (tmp_path / name).read_bytes()[:4096]
        assert images._declared_size(head) == (53, 37)
        assert read_image_rgb(tmp_path / name).shape == (37, 53, 3)


def test_training_says_why_an_image_is_refused(tmp_path):
    """The face-image dataset turned every refusal into "not a readable image; delete or replace it", a valid
    photo too large to decode among them (it needs downscaling, not deleting)."""
    from PIL import Image

    from mmfer.data.config import DataConfig
    from mmfer.data.datasets import build_dataset
    from mmfer.data.sources import media_folder_records

    (tmp_path / "Train" / "Happy").mkdir(parents=True)
    Image.new("L", (12000, 12000)).save(tmp_path / "Train" / "Happy" / "big.png")
    Image.fromarray(_face()).save(tmp_path / "Train" / "Happy" / "ok.png")
    (tmp_path / "Train" / "Happy" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    records = media_folder_records(tmp_path, "Train", "face_image")
    ds = build_dataset("face_image", cache=tmp_path, records=records, train=False, data=DataConfig(image_size=32))
    said = {}
    for i, rec in enumerate(records):
        try:
            ds[i]
        except MmferError as e:
            said[rec.clip_id.rsplit("/", 1)[-1]] = str(e)
    assert set(said) == {"big", "bad"}
    assert "12000x12000 pixels" in said["big"] and "downscale it first" in said["big"] and "delete" not in said["big"]
    assert "not a readable image" in said["bad"] and "delete or replace it" in said["bad"]
