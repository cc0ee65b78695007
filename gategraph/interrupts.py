"""A Ctrl-C in the `gategraph` program is never lost, and a handled one ends it with status 130.

CPython (3.11 to 3.13 at least) mishandles a KeyboardInterrupt in two places the program passes through:

- Raised inside a callback from C (llvmlite's object cache while Numba compiles, any ctypes callback), it is
  "ignored": printed as an unraisable exception and dropped, and the program runs on as if no key was pressed.
  `keep_lost()` hooks `sys.unraisablehook` so that such a KeyboardInterrupt is sent to the main thread again as
  SIGINT, once the hook has returned (and, if it lands inside a callback again, again after that).
- Raised inside `exec()` of a string (a dataclass or a namedtuple being made while a module loads), it marks the
  interpreter's Ctrl-C as unhandled even when the program catches it; run as `python -m gategraph`, the process
  then kills itself with SIGINT at exit instead of returning its status. `handled()` clears that mark.

And llvmlite's `ObjectRef`, cut short by a Ctrl-C in its `__init__` while Numba compiles or loads, fails in its
`__del__` with an AttributeError (`_as_parameter_`, set last in `__init__`), which CPython prints as an ignored
exception with its traceback after the program said it was interrupted; the hook drops that one as well.

Imports: nothing from gategraph.
"""

import _thread
import signal
import sys
import threading


def _send_again(hook_running) -> None:
    """In a thread of its own: SIGINT to the main thread once the hook has returned (this thread may get the
    GIL while the hook still runs, and a Ctrl-C raised inside the hook would be dropped again)."""
    with hook_running:
        pass
    signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)


def _cut_short(unraisable) -> bool:
    """Whether the dropped exception is llvmlite's ObjectRef.__del__ failing on an object whose __init__ never
    got to set `_as_parameter_` (a Ctrl-C cut it short): nothing to clean up, and nothing to tell the user."""
    if not (isinstance(unraisable.exc_value, AttributeError) and "_as_parameter_" in str(unraisable.exc_value)):
        return False
    tb = unraisable.exc_traceback
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and str(tb.tb_frame.f_globals.get("__name__")).startswith("llvmlite.")


def _raise_again(unraisable) -> None:
    """sys.unraisablehook: a dropped KeyboardInterrupt comes back as SIGINT to the main thread (as a key press
    does: it wakes a sleep or a wait); llvmlite's object cut short by a Ctrl-C is dropped quietly; anything else
    goes to the hook that was in place."""
    if _cut_short(unraisable):
        return
    if not isinstance(unraisable.exc_value, KeyboardInterrupt):
        _raise_again.previous(unraisable)
        return
    hook_running = _thread.allocate_lock()
    hook_running.acquire()
    try:
        _thread.start_new_thread(_send_again, (hook_running,))
    finally:
        hook_running.release()


def keep_lost() -> None:
    """From now on, a KeyboardInterrupt dropped inside a callback interrupts the main thread again."""
    if sys.unraisablehook is not _raise_again:
        _raise_again.previous = sys.unraisablehook
        sys.unraisablehook = _raise_again


def handled() -> None:
    """The program caught its Ctrl-C: it ends with the status it returns. (CPython clears the mark of an
    unhandled one whenever it begins to run a string.)"""
    exec("")
