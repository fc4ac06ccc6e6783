"""Run many ``stackdeck`` command lines in one process (imports paid once).

Reads a JSON list of argv lists on stdin, calls :func:`console.cli.main` for
each with stdout and stderr captured, and prints one JSON list of
``{"argv", "code", "out"}`` on the real stdout. Used by the bad-input tests:
the same entry point as the ``stackdeck`` script, fifty times faster than
fifty interpreters.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys


def run(argv: list[str]) -> dict[str, object]:
    from console.cli import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
            if not isinstance(exc.code, int) and exc.code is not None:
                buf.write(str(exc.code))
        except BaseException as exc:  # a crash is a finding, reported as such
            import traceback

            buf.write("Traceback (crash)\n" + "".join(traceback.format_exception(exc)))
            code = -1
    return {"argv": argv, "code": code, "out": buf.getvalue()}


def main() -> None:
    cases = json.load(sys.stdin)
    results = [run(argv) for argv in cases]
    sys.stdout.write(json.dumps(results) + "\n")


if __name__ == "__main__":
    main()
