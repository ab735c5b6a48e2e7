"""mmfer: multimodal video emotion recognition in the style of the EmotiW audio-video challenge."""

__version__ = "0.1.0"

from mmfer.errors import MmferError  # noqa: E402
from mmfer.labels import EMOTIONS  # noqa: E402

__all__ = ["EMOTIONS", "MmferError", "__version__"]
