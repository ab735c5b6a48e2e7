"""What a media file's own structure says about its length in bytes: a copy cut off before its end.

A truncated AVI or FLV decodes without an error and, since FFmpeg re-derives durations from what is there,
often declares no more than it holds. Its byte structure still tells: a RIFF (AVI, WAV) or Matroska header
declares the size of everything after it, and an MP4 box, an FLV tag or an Ogg page that runs past the end of
the file was cut. ``cut_short`` reads only headers (no decoding) and says nothing when it cannot tell.
"""

from __future__ import annotations

import stat
import struct
from pathlib import Path
from typing import BinaryIO

__all__ = ["cut_short", "no_stream_reason"]

# RIFF sizes at or above this are placeholders of writers that could not seek back (streams, RF64), not sizes
_RIFF_PLACEHOLDER = 0x7FFF0000
_RIFF_SLACK = 8  # bytes a whole file may lack against its RIFF size (known writer slips), not a cut
_MP4_TOP_BOXES = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"styp", b"pdin", b"moof", b"uuid"}
# a box that runs past the end is a cut only for these types; another is more likely bytes appended to the file
_CUT_BOXES = _MP4_TOP_BOXES | {b"meta", b"mfra", b"sidx", b"ssix", b"emsg", b"prft", b"udta"}
_MKV_SEGMENT = 0x18538067
_MAX_WALK = 2_000_000  # FLV tags / Ogg pages / MP4 boxes walked at most (a 10-minute FLV has about 40,000 tags)


def cut_short(path: str | Path) -> str:
    """``""`` when the file is whole or its format does not say; else what its structure declares beyond its
    end, e.g. "its AVI header declares 67,584 bytes and the file holds 33,792"."""
    path = Path(path)
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):  # a FIFO would block the open; a device has no size
            return ""
        size = st.st_size
        with open(path, "rb") as f:
            head = f.read(64)
            for check in (_riff, _matroska, _mp4, _flv, _ogg, _jpeg, _png):
                found = check(f, head, size)
                if found is not None:
                    return found
    except (OSError, ValueError, struct.error):
        return ""
    return ""


def no_stream_reason(path: str | Path, reason: str, fix: str) -> tuple[str, str]:
    """(reason, fix) for a file in which FFmpeg found no stream it wanted: a copy cut off in its first bytes
    (its header declared the streams) is said as truncated, not as a file of another kind."""
    cut = cut_short(path)
    return (f"file looks truncated: {cut}", "re-copy the file") if cut else (reason, fix)


def _holds(declared: int, size: int, what: str) -> str:
    """A header that declares the whole file's size."""
    if declared <= size:
        return ""
    missing = 100 * (declared - size) / declared
    share = "under 1" if missing < 1 else f"{missing:.0f}"
    return f"{what} declares {declared:,} bytes and the file holds {size:,} ({share}% missing)"


def _runs_past(end: int, size: int, what: str) -> str:
    """A piece whose own length takes it past the end of the file."""
    return f"{what} runs to byte {end:,} and the file ends at {size:,}" if end > size else ""


def _riff(f: BinaryIO, head: bytes, size: int) -> str | None:
    if head[:4] != b"RIFF" or len(head) < 12:
        return None
    declared = struct.unpack("<I", head[4:8])[0]
    if declared == 0 or declared >= _RIFF_PLACEHOLDER:
        return ""
    form = head[8:12].decode("latin-1").strip().upper() or "RIFF"
    if declared + 8 - size <= _RIFF_SLACK:  # writers' slips: the size counted the 8-byte header, or an unwritten pad
        return ""
    return _holds(declared + 8, size, f"its {form} header")


def _vint(f: BinaryIO, *, keep_marker: bool) -> tuple[int, int, bool]:
    """An EBML variable-length integer: (value, its length in bytes, all value bits set = 'unknown size')."""
    first = f.read(1)
    if not first:
        raise struct.error("end of file")
    b = first[0]
    n = 1
    while n <= 8 and not b & (0x80 >> (n - 1)):
        n += 1
    if n > 8:
        raise struct.error("bad EBML integer")
    rest = f.read(n - 1)
    if len(rest) < n - 1:
        raise struct.error("end of file")
    value = b if keep_marker else b & (0xFF >> n)
    for c in rest:
        value = (value << 8) | c
    unknown = not keep_marker and value == (1 << (7 * n)) - 1
    return value, n, unknown


def _matroska(f: BinaryIO, head: bytes, size: int) -> str | None:
    if head[:4] != b"\x1a\x45\xdf\xa3":
        return None
    f.seek(4)
    header_size, _, _ = _vint(f, keep_marker=False)
    f.seek(header_size, 1)
    element, _, _ = _vint(f, keep_marker=True)
    if element != _MKV_SEGMENT:
        return ""
    segment_size, _, unknown = _vint(f, keep_marker=False)
    if unknown:  # a live recording's segment has no size
        return ""
    return _holds(f.tell() + segment_size, size, "its Matroska header")


def _mp4(f: BinaryIO, head: bytes, size: int) -> str | None:
    if head[4:8] not in _MP4_TOP_BOXES:
        return None
    offset = 0
    for _ in range(_MAX_WALK):
        f.seek(offset)
        header = f.read(8)
        if len(header) < 8:  # the end of the file, or the first bytes of a box header (its size, part of its type)
            cut = len(header) >= 5 and _box_type(header[4:])
            return _runs_past(offset + 8, size, "its last box") if cut else ""
        box, kind = struct.unpack(">I4s", header)
        if not _box_type(kind):
            return ""  # not a box: data appended after the last one (a tag, a vendor's trailer, padding)
        least = 8
        if box == 1:
            box, least = struct.unpack(">Q", f.read(8))[0], 16
        elif box == 0:  # runs to the end of the file by definition
            return ""
        if box < least:
            return ""  # not a box structure this reader understands
        if offset + box > size:  # a cut copy ends inside its media or index boxes; other types are likely a trailer
            return _runs_past(offset + box, size, f"its '{kind.decode('latin-1')}' box") if kind in _CUT_BOXES else ""
        offset += box
    return ""


def _box_type(kind: bytes) -> bool:
    """Four printable characters (or the copyright sign of QuickTime's metadata): a box type, not a trailer."""
    return all(32 <= c < 127 or c == 0xA9 for c in kind)


def _flv(f: BinaryIO, head: bytes, size: int) -> str | None:
    if head[:3] != b"FLV" or len(head) < 9:
        return None
    offset = struct.unpack(">I", head[5:9])[0]  # the header's own size, then PreviousTagSize0 and the tags
    tags = 0
    for _ in range(_MAX_WALK):
        if offset + 4 >= size:  # ends on a complete tag (its trailing size field may be all that is left)
            return _runs_past(offset + 4, size, f"the FLV tag after its {tags:,} complete ones")
        f.seek(offset + 4)
        tag = f.read(11)
        if (tag[:1] and (tag[0] & 0x1F) not in (8, 9, 18)) or any(tag[8:11]):  # types: sound, video, script
            return ""  # not a tag (or its StreamID, always 0, is not): bytes appended after the last one
        if len(tag) < 11:
            return _runs_past(offset + 4 + 11, size, f"its FLV tag {tags + 1:,}")
        data = int.from_bytes(tag[1:4], "big")
        end = offset + 4 + 11 + data
        if end > size:
            return _runs_past(end + 4, size, f"its FLV tag {tags + 1:,}")
        offset, tags = end, tags + 1
    return ""


def _ogg(f: BinaryIO, head: bytes, size: int) -> str | None:
    if head[:4] != b"OggS":
        return None
    offset = 0
    for _ in range(_MAX_WALK):
        if offset >= size:
            return ""
        f.seek(offset)
        page = f.read(27)
        if page[:4] != b"OggS"[: len(page)]:
            return ""  # not a page: bytes appended after the last one
        if len(page) < 27:
            return _runs_past(offset + 27, size, "its last Ogg page")
        lacing = f.read(page[26])
        end = offset + 27 + page[26] + sum(lacing)
        if len(lacing) < page[26] or end > size:
            return _runs_past(max(end, offset + 27 + page[26]), size, "its last Ogg page")
        offset = end
    return ""


def _jpeg(f: BinaryIO, head: bytes, size: int) -> str | None:
    """A JPEG's image data ends with an end-of-image marker (FF D9). Its segments are walked from the start, so an
    EXIF thumbnail's own end marker (inside a header segment) is not taken for the image's, and bytes after the end
    (a phone's appended motion clip, padding) are not taken for a cut. OpenCV decodes a cut JPEG with the missing
    part grey, and says so only on stderr."""
    if head[:3] != b"\xff\xd8\xff":
        return None
    f.seek(0)
    data = f.read(_JPEG_MAX_READ)
    cut = "its JPEG image data has no end marker"
    pos = 2
    while True:
        if pos + 2 > len(data):
            return cut if len(data) >= size else ""  # (a file beyond the read limit: not judged)
        if data[pos] != 0xFF:
            return ""  # not a marker where one belongs: a layout this walk does not know; say nothing
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
        elif marker == 0xD9:
            return ""
        elif 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            pos += 2
        else:
            if pos + 4 > len(data):
                return cut if len(data) >= size else ""
            pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
            if marker == 0xDA:  # start of scan: entropy-coded data up to the next real marker
                while True:
                    k = data.find(b"\xff", pos)
                    if k < 0 or k + 1 >= len(data):
                        return cut if len(data) >= size else ""  # (a file beyond the read limit: not judged)
                    if data[k + 1] == 0x00 or 0xD0 <= data[k + 1] <= 0xD7:  # stuffed byte, restart marker
                        pos = k + 2
                    elif data[k + 1] == 0xFF:  # fill before a marker
                        pos = k + 1
                    else:
                        pos = k
                        break


_JPEG_MAX_READ = 64 << 20  # a JPEG is read whole up to this (a photo is a few MB)


def _png(f: BinaryIO, head: bytes, size: int) -> str | None:
    """A PNG is a chain of chunks (length, type, data, CRC) ending with IEND; walked by their lengths."""
    if head[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    offset = 8
    for _ in range(_MAX_WALK):
        f.seek(offset)
        chunk = f.read(8)
        if len(chunk) < 8:
            return "its PNG data has no IEND chunk"
        if chunk[4:8] == b"IEND":
            return ""
        end = offset + 12 + struct.unpack(">I", chunk[:4])[0]
        if end > size:
            return _runs_past(end, size, f"its PNG {chunk[4:8].decode('latin-1')} chunk")
        offset = end
    return ""


