"""A real headless Chromium on the stack's network, driving the frontend
through the real nginx as a client would.

The browser runs in a container of its own image (``<prefix>-browser:latest``,
compose/images/browser, built by ``BROWSER_IMAGE=yes scripts/images.sh``; the
test command builds it) on the stack's ``default`` network, so it reaches
nginx as a client that is not the host: over HTTPS (``https://nginx/``, the
stack's own certificate, self-signed, so certificate errors are ignored: the
certificate itself is tests/integration/test_tls_edge.py's), rate limited,
refused the operator's paths. Its DevTools port is published on 127.0.0.1 of
the host only, on a port the engine picks.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from tests.conftest import Stack
from tests.integration.frontend.cdp import Page, open_page

SITE = "https://nginx/"
"""The frontend as the browser addresses it: nginx by its service name, over
HTTPS (plain HTTP from a client that is not the host is redirected)."""


def _docker(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *argv], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="session")
def browser(stack: Stack) -> Iterator[str]:
    """A headless Chromium on the stack's network; its DevTools HTTP address."""
    image = f"{stack.image_prefix}-browser:latest"
    if _docker("image", "inspect", image).returncode != 0:
        pytest.fail(
            f"no image {image}: build it with "
            f"IMAGE_PREFIX={stack.image_prefix} BROWSER_IMAGE=yes bash scripts/images.sh"
        )
    name = f"{stack.name}_browser_test"
    _docker("rm", "-f", name)  # one left by an interrupted run
    run = _docker(
        "run", "-d", "--rm", "--name", name,
        "--network", f"{stack.name}_default",
        "--memory", "1g", "--shm-size", "256m",
        "-p", "127.0.0.1::9223",
        image,
        "--ignore-certificate-errors",
    )  # fmt: skip
    if run.returncode != 0:
        pytest.fail(f"starting {image} failed: {run.stderr.strip()}")
    container = run.stdout.strip()
    try:
        port = _docker("port", container, "9223/tcp").stdout.split(":")[-1].strip()
        if not port.isdigit():
            pytest.fail(f"{name}: DevTools port not published ({port!r})")
        yield f"http://127.0.0.1:{port}"
    finally:
        _docker("rm", "-f", container)


@pytest.fixture(scope="module")
def page(browser: str) -> Iterator[Page]:
    with open_page(browser) as p:
        yield p
