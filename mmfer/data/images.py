"""Reading a face image file the one way training, scoring and predict share: RGB, upright by its EXIF orientation,
transparent pixels shown over white (as a page or viewer shows them: what lies under them must not change the face
read)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmfer.errors import MmferError

_PNG = b"\x89PNG\r\n\x1a\n"
# Largest image mmfer decodes: 50 megapixels (150 MB as RGB); a face needs far fewer.
MAX_IMAGE_PIXELS = 50_000_000
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _declared_size(head: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's, JPEG's, WebP's or BMP's first bytes, as the file declares it (read without
    Pillow, whose header read costs more than the decode of a small crop); None for other formats or a JPEG
    whose frame header lies further on."""
    le = lambda a, b: int.from_bytes(head[a:b], "little")  # noqa: E731
    if head[:8] == _PNG and len(head) >= 24:
        return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP" and len(head) >= 30:
        chunk = head[12:16]
        if chunk == b"VP8 " and head[23:26] == b"\x9d\x01\x2a":
            return le(26, 28) & 0x3FFF, le(28, 30) & 0x3FFF
        if chunk == b"VP8L" and head[20] == 0x2F:
            bits = le(21, 25)
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        if chunk == b"VP8X":
            return le(24, 27) + 1, le(27, 30) + 1
        return None
    if head[:2] == b"BM" and len(head) >= 26:
        if le(14, 18) == 12:  # the oldest header: 16-bit sizes
            return le(18, 20), le(20, 22)
        return abs(int.from_bytes(head[18:22], "little", signed=True)), abs(int.from_bytes(head[22:26], "little",
                                                                                             signed=True))
    if head[:2] == b"\xff\xd8":
        i = 2
        while i + 9 <= len(head) and head[i] == 0xFF:
            marker, length = head[i + 1], int.from_bytes(head[i + 2:i + 4], "big")
            if marker in _JPEG_SOF:
                return int.from_bytes(head[i + 7:i + 9], "big"), int.from_bytes(head[i + 5:i + 7], "big")
            i += 2 + length
    return None


def check_image_size(path: str | Path, head: bytes | None = None) -> None:
    """Refuse an image too large to decode safely, from its header alone (a 140-KB PNG of 12000x12000 is 430 MB
    decoded), before any pixel is read; a file Pillow cannot identify either is not an image mmfer reads (OpenCV
    would decode it by its content, whatever its name says)."""
    if head is None:
        with open(path, "rb") as f:
            head = f.read(4096)
    size = _declared_size(head)
    if size is None:  # other formats: Pillow reads the header (slower, so PNG and JPEG are read above)
        from PIL import Image

        try:
            with Image.open(path) as im:
                size = im.size
        except Image.DecompressionBombError as e:  # PIL's own, larger limit
            raise MmferError(f"image too large to decode safely ({e}); downscale it first") from None
        except Exception:  # noqa: BLE001 - no image format Pillow knows (a file named .png that is something else)
            raise MmferError("not a readable image (corrupt, or not the format its extension says)") from None
    w, h = size
    if w * h > MAX_IMAGE_PIXELS:
        raise MmferError(f"image is {w}x{h} pixels, over the {MAX_IMAGE_PIXELS // 1_000_000} megapixels mmfer "
                         "decodes; downscale it first")


def read_image_rgb(path: str | Path) -> np.ndarray:
    """RGB uint8 (H, W, 3). OpenCV reads it (EXIF orientation applied); a PNG with transparency is composited over
    white by Pillow, turned by its EXIF orientation the same way (OpenCV's unchanged read, which keeps the alpha,
    ignores the orientation). One too large to decode safely is refused first (``check_image_size``)."""
    import cv2

    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError as e:
        raise MmferError(f"cannot be read ({e.strerror or e})") from None
    check_image_size(path, head)
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise MmferError("not a readable image (corrupt, or not the format its extension says)")
    # a PNG that can be transparent: grey+alpha or RGBA (IHDR's colour type, byte 25), or a tRNS chunk (it comes
    # before the image data); others skip Pillow (training reads tens of thousands of opaque crops an epoch)
    if head[:8] == _PNG and len(head) > 25 and (head[25] in (4, 6) or b"tRNS" in head.split(b"IDAT")[0]):
        from PIL import Image, ImageOps

        with Image.open(path) as im:  # 8-bit modes only: Pillow clips a 16-bit grey one to white in RGBA
            if im.mode in ("RGBA", "LA", "PA", "P", "L", "RGB") and (im.mode in ("RGBA", "LA", "PA")
                                                                     or "transparency" in im.info):
                rgba = np.asarray(ImageOps.exif_transpose(im).convert("RGBA"), dtype=np.float32)
                alpha = rgba[..., 3:] / 255.0
                over_white = np.clip(rgba[..., :3] * alpha + 255.0 * (1.0 - alpha) + 0.5, 0, 255).astype(np.uint8)
                if over_white.shape[:2] == img.shape[:2]:
                    return np.ascontiguousarray(over_white)
    return np.ascontiguousarray(img[..., ::-1])
