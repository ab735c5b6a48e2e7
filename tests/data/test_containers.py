"""containers.cut_short: copies cut off before their end are named by what their bytes declare; whole files,
formats without a declared length and writers' placeholders say nothing."""

import struct

import numpy as np
import pytest
import soundfile as sf

from mmfer.data.containers import cut_short
from predict_helpers import write_video


def _frames(n: int = 12) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (n, 48, 64, 3), dtype=np.uint8)


def _sound(seconds: float = 1.0) -> np.ndarray:
    return np.random.default_rng(1).normal(0, 0.1, int(16000 * seconds)).astype(np.float32)


def _write(kind: str, tmp_path, cremad_videos):
    if kind in ("avi", "mkv", "mp4"):
        return write_video(tmp_path / f"whole.{kind}", _frames(), audio=_sound(1.5))
    if kind == "flv":
        return cremad_videos[0]
    path = tmp_path / f"whole.{kind}"
    sf.write(path, _sound(), 16000, **({"format": "OGG", "subtype": "VORBIS"} if kind == "ogg" else {}))
    return path


@pytest.mark.parametrize("kind, says", [
    ("avi", "its AVI header declares"),
    ("mkv", "its Matroska header declares"),
    ("mp4", "box runs to byte"),
    ("flv", "its FLV tag"),
    ("wav", "its WAVE header declares"),
    ("ogg", "its last Ogg page runs to byte"),
])
def test_a_copy_cut_off_is_named_and_the_whole_file_is_not(kind, says, tmp_path, cremad_videos):
    whole = _write(kind, tmp_path, cremad_videos)
    assert cut_short(whole) == ""
    data = whole.read_bytes()
    for fraction in (0.3, 0.6, 0.9):
        cut = tmp_path / f"cut{fraction}{whole.suffix}"
        cut.write_bytes(data[: int(len(data) * fraction)])
        found = cut_short(cut)
        assert says in found and f"{cut.stat().st_size:,}" in found, (kind, fraction, found)
    if "declares" in says:  # a header that declares the whole size also says how much is missing
        assert "(40% missing)" in cut_short(tmp_path / f"cut0.6{whole.suffix}")


def test_formats_that_declare_no_length_and_placeholders_say_nothing(tmp_path, cremad_audio):
    flac = tmp_path / "a.flac"
    sf.write(flac, _sound(), 16000)
    cut_flac = tmp_path / "cut.flac"
    cut_flac.write_bytes(flac.read_bytes()[:2000])
    mp3_cut = tmp_path / "cut.mp3"
    mp3_cut.write_bytes(cremad_audio[0].read_bytes()[:3000])
    wav = tmp_path / "a.wav"
    sf.write(wav, _sound(), 16000)
    data = bytearray(wav.read_bytes())
    placeholders = []
    for size in (0, 0xFFFFFFFF):  # writers that could not seek back leave these in the RIFF header
        data[4:8] = struct.pack("<I", size)
        p = tmp_path / f"riff_{size}.wav"
        p.write_bytes(bytes(data[:5000]))
        placeholders.append(p)
    # a live Matroska recording: the segment's size is 'unknown' (all value bits set)
    live = tmp_path / "live.mkv"
    live.write_bytes(b"\x1a\x45\xdf\xa3\x80" + b"\x18\x53\x80\x67" + b"\x01" + b"\xff" * 7 + bytes(100))
    empty = tmp_path / "empty.avi"
    empty.write_bytes(b"")
    noise = tmp_path / "noise.avi"
    noise.write_bytes(np.random.default_rng(2).bytes(4000))
    for path in (flac, cut_flac, mp3_cut, *placeholders, live, empty, noise, tmp_path / "missing.avi", tmp_path):
        assert cut_short(path) == "", path


def test_a_box_or_tag_header_cut_in_two_still_counts(tmp_path, cremad_videos):
    """The file ends inside the few bytes that give the next piece's length."""
    data = cremad_videos[0].read_bytes()
    flv = tmp_path / "c.flv"
    flv.write_bytes(data[:9 + 4 + 5])  # FLV header, PreviousTagSize0 and half a tag header
    assert "its FLV tag 1 runs to byte" in cut_short(flv)
    mp4 = write_video(tmp_path / "w.mp4", _frames(4))
    first = struct.unpack(">I", mp4.read_bytes()[:4])[0]
    cut = tmp_path / "c.mp4"
    cut.write_bytes(mp4.read_bytes()[: first + 5])  # the whole first box and 5 bytes of the second's header
    assert "its last box runs to byte" in cut_short(cut)


@pytest.mark.parametrize("kind", ["avi", "mkv", "mp4", "flv", "wav", "ogg"])
def test_bytes_appended_to_a_whole_file_are_no_cut(kind, tmp_path, cremad_videos):
    """A stray newline, zero padding, an ID3v1 tag or a vendor's trailer after the last box, tag or page is not
    the start of a piece that was cut (a helper found each of these flagged)."""
    whole = _write(kind, tmp_path, cremad_videos).read_bytes()
    id3v1 = b"TAG" + b"title".ljust(125, b"\0")
    for n, tail in enumerate((b"\n", bytes(3), bytes(16), bytes(512), id3v1, b"vendor trailer v1.2\r\n")):
        path = tmp_path / f"tail{n}.{kind}"
        path.write_bytes(whole + tail)
        assert cut_short(path) == "", (kind, tail[:8])


def test_writer_slips_odd_paths_and_small_cuts(tmp_path):
    import os

    wav = tmp_path / "a.wav"
    sf.write(wav, _sound(), 16000)
    data = bytearray(wav.read_bytes())
    data[4:8] = struct.pack("<I", len(data))  # a writer that counted the 8-byte header in the RIFF size
    slip = tmp_path / "slip.wav"
    slip.write_bytes(bytes(data))
    assert cut_short(slip) == ""
    small = tmp_path / "small.wav"
    small.write_bytes(wav.read_bytes()[:-100])  # 100 of 32,044 bytes
    assert "(under 1% missing)" in cut_short(small)
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    assert cut_short(fifo) == "" and cut_short("a\0b.wav") == ""  # no hang on a pipe, no error on a NUL


def test_a_copy_cut_in_its_first_bytes_is_truncated_not_another_kind_of_file(tmp_path, cremad_videos):
    """An FLV cut after 3,000 bytes holds no whole stream: it was said to be audio only (use it as an audio
    file) or no media file at all, where its header says it was cut."""
    from mmfer.data.video import read_audio, probe_video
    from mmfer.errors import MmferError

    flv = next(p for p in cremad_videos if p.suffix == ".flv")
    cut = tmp_path / "cut.flv"
    cut.write_bytes(flv.read_bytes()[:3000])
    for read in (probe_video, read_audio):
        with pytest.raises(MmferError, match=r"cut\.flv: file looks truncated: its FLV tag .*; re-copy the file"):
            read(cut)
