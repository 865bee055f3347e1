"""Entry point the Deno tasks run: ``python python/task_entry.py <script.py> [args...]``.

Runs ``python/<script>`` (or a path) as ``__main__`` with ``args`` as its ``sys.argv[1:]``,
and turns a Ctrl-C the script does not handle itself (during its imports, say, before
training installs its own handler) into one line on stderr and exit status 130 instead of a
Python traceback. Everything else (exit codes, other exceptions) passes through unchanged.
"""

from __future__ import annotations

import runpy
import signal
import sys
from pathlib import Path

#: Exit status after Ctrl-C (128 + SIGINT), as shells report an interrupted command.
EXIT_INTERRUPTED = 130


def main(argv: list[str]) -> int:
    """Run ``argv[0]`` (a file name under python/, or a path) with ``argv[1:]``; return the exit code."""
    if not argv:
        print("usage: python python/task_entry.py <script.py> [args...]", file=sys.stderr)
        return 2
    script = Path(argv[0])
    if not script.is_absolute():
        script = Path(__file__).resolve().parent / script
    sys.argv = [str(script), *argv[1:]]
    try:
        runpy.run_path(str(script), run_name="__main__")
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a repeated Ctrl-C must not print a traceback now
        print(f"interrupted ({script.name})", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
