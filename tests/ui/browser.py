"""A headless Chromium for the operator page's tests, driven with Playwright.

Playwright's own browser download cannot be used here, so the tests drive the system's Chromium
(Debian's `chromium` package) through `executable_path`. `find_chromium` installs the package with
`apt-get` when it is missing and the process may (root, apt-get present; `apt-get update` first
when the plain install fails), and otherwise says why it cannot: the tests skip with that message.

Chromium runs with the flags that keep it quiet on a machine without internet (no background
networking, component updates, sync or QUIC) and, as root in a container, without its sandbox;
Playwright gives every launch a fresh profile directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
_INSTALL_TIMEOUT_SECONDS = 900


def _installed() -> str | None:
    found = shutil.which("chromium")
    if found:
        return found
    return next((path for path in CHROMIUM_PATHS if Path(path).exists()), None)


def find_chromium() -> tuple[str | None, str]:
    """(path to Chromium, "") or (None, why it cannot be had)."""
    path = _installed()
    if path:
        return path, ""
    if shutil.which("apt-get") is None:
        return None, "Chromium is not installed and there is no apt-get to install it"
    if os.geteuid() != 0:
        return None, "Chromium is not installed; install it with `apt-get install -y chromium`"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "chromium"]
    for command in (install, ["apt-get", "update", "-q"], install):
        try:
            subprocess.run(
                command, env=env, capture_output=True, timeout=_INSTALL_TIMEOUT_SECONDS, check=False
            )
        except subprocess.TimeoutExpired:
            break
        path = _installed()
        if path:
            return path, ""
    return None, "`apt-get install -y chromium` failed (no network to the Debian mirrors?)"
