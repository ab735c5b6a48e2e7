"""Reading a face image file the one way training, scoring and predict share: RGB, upright by its EXIF orientation,
transparent pixels shown over white (as a page or viewer shows them: what lies under them must not change the face
read)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmfer.errors import MmferError

_PNG = b"\x89PNG\r\n\x1a\n"


def read_image_rgb(path: str | Path) -> np.ndarray:
    """RGB uint8 (H, W, 3). OpenCV reads it (EXIF orientation applied); a PNG with transparency is composited over
    white by Pillow, turned by its EXIF orientation the same way (OpenCV's unchanged read, which keeps the alpha,
    ignores the orientation)."""
    import cv2

    path = Path(path)
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise MmferError("not a readable image (corrupt, or not the format its extension says)")
    with open(path, "rb") as f:
        head = f.read(4096)
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
