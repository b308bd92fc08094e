"""Loopback ports for tests: a free one, and one nobody listens on."""

from __future__ import annotations

import socket


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port the kernel says is free now (bound and released)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def closed_port() -> int:
    """A TCP port with no listener: connections to it are refused."""
    return free_port()
