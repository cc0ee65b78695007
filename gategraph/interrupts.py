"""A Ctrl-C in the `gategraph` program is never lost, and a handled one ends it with status 130.

CPython 3.11 mishandles a KeyboardInterrupt in two places the program passes through:

- Raised inside a callback from C (llvmlite's object cache while Numba compiles, any ctypes callback), it is
  "ignored": printed as an unraisable exception and dropped, and the program runs on as if no key was pressed.
  `keep_lost()` hooks `sys.unraisablehook` so that such a KeyboardInterrupt interrupts the main thread again,
  as soon as Python code runs there (and, if that is still inside a callback, again after it).
- Raised inside `exec()` of a string (a dataclass or a namedtuple being made while a module loads), it sets the
  interpreter's mark of an unhandled Ctrl-C even when the program catches it; at exit the process then kills
  itself with SIGINT instead of returning its status. `handled()` clears that mark.

Imports: nothing from gategraph.
"""

import _thread
import ctypes
import signal
import sys
import time

_hooking = []  # non-empty while _raise_again runs


def _interrupt_main_once_the_hook_returned() -> None:
    """In a thread of its own: a Ctrl-C raised while the hook still runs would be dropped again, inside it."""
    while _hooking:
        time.sleep(0.001)
    _thread.interrupt_main(signal.SIGINT)


def _raise_again(unraisable) -> None:
    """sys.unraisablehook: a dropped KeyboardInterrupt interrupts the main thread again, once this hook has
    returned; anything else goes to the hook that was in place."""
    if not isinstance(unraisable.exc_value, KeyboardInterrupt):
        _raise_again.previous(unraisable)
        return
    _hooking.append(True)
    try:
        _thread.start_new_thread(_interrupt_main_once_the_hook_returned, ())
    finally:
        _hooking.clear()


def keep_lost() -> None:
    """From now on, a KeyboardInterrupt dropped inside a callback is raised again in the main thread."""
    if sys.unraisablehook is not _raise_again:
        _raise_again.previous = sys.unraisablehook
        sys.unraisablehook = _raise_again


def handled() -> None:
    """The program caught its Ctrl-C: it ends with the status it returns, not killed by SIGINT (a no-op on an
    interpreter without CPython 3.11's exported mark)."""
    try:
        ctypes.c_int.in_dll(ctypes.pythonapi, "_Py_UnhandledKeyboardInterrupt").value = 0
    except (AttributeError, ValueError):
        pass
