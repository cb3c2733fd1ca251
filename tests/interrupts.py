"""Commands that tests interrupt as a user's Ctrl-C would.

A process started by a background job of a non-interactive shell (`make test &` in a script, some
CI runners) inherits SIGINT ignored, and Python then installs no KeyboardInterrupt handler: a
test's SIGINT would do nothing. A terminal's foreground process has Python's own handler, so
the child restores it before anything else.
"""

from __future__ import annotations

import sys

CTRL_C = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"


def interruptible(code: str, *args: str) -> list[str]:
    """`python -c CODE ARGS...` with Python's Ctrl-C handler in place."""
    return [sys.executable, "-c", CTRL_C + code, *args]


def interruptible_forecast(*args: str) -> list[str]:
    """`python -m forecast ARGS...` with Python's Ctrl-C handler in place."""
    return interruptible("import runpy; runpy.run_module('forecast', run_name='__main__')", *args)
