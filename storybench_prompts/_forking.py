"""What a forked child must not inherit from threads that do not exist in it."""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

__all__ = ["forget_imports_of_other_threads_after_fork"]


def _forget_imports_of_other_threads() -> None:
    """A thread that was importing a module at the fork does not exist in the child, but the
    module's import lock came along held (and the module half made): the child's next import
    of it would wait forever. Forget both, so the child imports it afresh."""
    try:
        from importlib import _bootstrap

        locks: dict[str, Any] = _bootstrap._module_locks  # type: ignore[attr-defined]
    except (ImportError, AttributeError):
        return
    me = threading.get_ident()
    for name, ref in list(locks.items()):
        lock = ref() if callable(ref) else ref
        owner = getattr(lock, "owner", None)
        if owner is None or owner == me:
            continue
        locks.pop(name, None)
        module = sys.modules.get(name)
        if getattr(getattr(module, "__spec__", None), "_initializing", False):
            sys.modules.pop(name, None)


_registered = False


def forget_imports_of_other_threads_after_fork() -> None:
    """Have every forked child forget the imports other threads were making (once)."""
    global _registered
    if not _registered and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_forget_imports_of_other_threads)
        _registered = True
