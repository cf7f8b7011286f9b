"""What a forked child must not inherit: objects register a reset to run in it.

A child of ``fork`` gets copies of the parent's locks (possibly held by
threads that do not exist in the child), sockets and flights. Each resolver
registers itself with ``reset_in_child(obj, reset)``; in the child, every
``reset(obj)`` still alive runs, in the order the objects registered.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable
from typing import Any

__all__ = ["reset_in_child"]

_resets: weakref.WeakKeyDictionary[Any, Callable[[Any], None]] = weakref.WeakKeyDictionary()


def reset_in_child(obj: object, reset: Callable[[Any], None]) -> None:
    """Call ``reset(obj)`` in a forked child, as long as ``obj`` lives."""
    _resets[obj] = reset


def _reset_all() -> None:
    for obj, reset in list(_resets.items()):
        reset(obj)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_all)
