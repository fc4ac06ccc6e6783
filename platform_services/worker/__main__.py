"""Entry point: ``python3 -m platform_services.worker [--check | --once]``.

``--check`` is answered before anything heavy is imported (see check.py).
"""

from __future__ import annotations

import sys


def _main() -> int:
    if sys.argv[1:] == ["--check"]:
        from platform_services.worker.check import check

        return check()
    from platform_services.worker.runner import main

    return main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(_main())
