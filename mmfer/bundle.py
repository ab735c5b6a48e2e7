"""Moved: model bundles (load, fuse, write) are ``mmfer.inference.bundle``.

``import mmfer.bundle`` still works and gives that same module (so patching a name here patches it there),
without a warning; new code imports ``mmfer.inference.bundle``. The README's "Where things moved" lists this
and the other moves of issue 22.
"""

import sys

from mmfer.inference import bundle as _bundle

sys.modules[__name__] = _bundle
