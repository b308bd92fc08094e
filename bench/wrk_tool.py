"""The `wrk` load generator the HTTP benchmarks drive (installed from Debian when missing and root)."""

from __future__ import annotations

import os
import shutil
import subprocess


def ensure_wrk() -> str:
    """The path of `wrk`, installing Debian's package first when running as root; exits otherwise."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, capture_output=True)
        found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk is needed: apt-get install wrk")
    return found
