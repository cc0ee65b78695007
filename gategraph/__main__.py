"""`python -m gategraph` and the `gategraph` command: a Ctrl-C while the modules load stops the program
quietly (status 130), as a Ctrl-C at any later moment does; then the command line (gategraph.cli) runs.

Imports: gategraph.cli, once the handler is in place.
"""

import os
import signal
import sys


def _stop_loading(signum, frame):
    sys.stderr.write("\ngategraph: interrupted\n")
    sys.stderr.flush()
    os._exit(130)  # not an exception: one raised inside a C extension's import would turn into an ImportError


def main() -> int:
    signal.signal(signal.SIGINT, _stop_loading)
    from gategraph import cli

    signal.signal(signal.SIGINT, signal.default_int_handler)
    return cli.main(program=True)


if __name__ == "__main__":
    sys.exit(main())
