"""Moved: the cache (preprocessing settings, the clip record, clip ids, all cache I/O) is ``mmfer.data.cache``.

``import mmfer.cache`` still works and gives that same module (so patching a name here patches it there),
without a warning, for code written before the move; new code imports ``mmfer.data.cache``. The README's "Where things moved" lists this and the other moves of issue 22.
"""

import sys

from mmfer.data import cache as _cache

sys.modules[__name__] = _cache
