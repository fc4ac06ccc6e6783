"""``python -m console.ui``: the console against the configured stack."""

from __future__ import annotations

from console.core.config import Settings
from console.ui.app import create_app


def main() -> None:
    create_app(Settings()).run()


if __name__ == "__main__":
    main()
