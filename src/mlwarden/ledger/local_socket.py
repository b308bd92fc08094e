"""The ledger writer's Unix socket: private to the workspace's owner, at any path length.

A Unix socket address holds at most 107 bytes, less than a deep workspace path. Linux
resolves ``/proc/self/fd/N/name`` through an open descriptor of the folder, so binding
and connecting go through that short alias while the socket lives in the workspace.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import struct
from collections.abc import Iterator
from pathlib import Path

MAX_ADDRESS = 100
_PEERCRED = struct.Struct("3i")


@contextlib.contextmanager
def short_address(path: Path) -> Iterator[str]:
    """An address for ``path`` short enough for ``AF_UNIX``, valid inside the block."""
    if len(os.fsencode(path)) <= MAX_ADDRESS:
        yield str(path)
        return
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{folder}/{path.name}"
    finally:
        os.close(folder)


def bind_private(path: Path) -> socket.socket:
    """A listening socket at ``path``, mode 0600 from its creation; a stale socket file there is replaced."""
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(path.lstat().st_mode):
            path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    previous = os.umask(0o177)  # the writer process is single-threaded here: nobody else sees the umask
    try:
        with short_address(path) as address:
            sock.bind(address)
        os.chmod(path, 0o600)
        sock.listen(128)
    except BaseException:
        sock.close()
        raise
    finally:
        os.umask(previous)
    sock.setblocking(False)
    return sock


def peer_credentials(sock: socket.socket) -> tuple[int, int]:
    """``(pid, uid)`` of the process at the other end of a connected Unix socket (``SO_PEERCRED``)."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    pid, uid, _gid = _PEERCRED.unpack(raw)
    return int(pid), int(uid)
