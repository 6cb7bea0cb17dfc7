"""Pause Python's cycle collector while building data that lasts the whole run."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def building_lasting_data() -> Iterator[None]:
    """Run the block with the cycle collector paused, then resume it.

    Reading a 10,000-entry file or the PBX's list of 10,000 extensions makes
    hundreds of thousands of objects that live until the run ends. The
    collector scanned them again and again, and they form no cycles. In a
    plan at 10,000 that took about 0.1 s of CPU, and 0.03 s with this pause
    (measured with gc.callbacks). Collection resumes afterwards, so a long
    apply still frees its cycles.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
