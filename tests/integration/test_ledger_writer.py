"""The ledger writer process on its own: shared sequence, hostile peers, on-demand and shutdown signatures."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlwarden.cli.ledger_writer import WriterSupervisor
from mlwarden.config import Settings, WorkspaceOptions
from mlwarden.errors import LedgerUnavailable
from mlwarden.ledger.entry import PreparedEntry
from mlwarden.ledger.log import Receipt
from mlwarden.ledger.notes import Checkpoint
from mlwarden.ledger.wire import HEADER, MAX_FRAME, encode_entry, entries_frames
from mlwarden.ledger.writer_client import WriterClient
from mlwarden.workspace import Workspace, init_workspace, open_workspace

TIMEOUT = 30.0


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A workspace the writer finds through the environment, as serve's workers do; signing once an hour."""
    home = tmp_path / "a-workspace-folder-with-a-long-name-so-the-socket-path-needs-the-short-alias" / "ws"
    init_workspace(WorkspaceOptions.from_settings(Settings(database_url=None), home))
    monkeypatch.setenv("MLWARDEN_HOME", str(home))
    monkeypatch.delenv("MLWARDEN_DATABASE_URL", raising=False)
    monkeypatch.setenv("MLWARDEN_LEDGER_SIGN_INTERVAL_SECONDS", "3600")
    return home


@pytest.fixture
def writer(home: Path) -> Iterator[WriterSupervisor]:
    supervisor = WriterSupervisor(home / "writer.sock", start_timeout=TIMEOUT).start()
    yield supervisor
    supervisor.stop(timeout=TIMEOUT)


def _open(home: Path) -> Workspace:
    return open_workspace(WorkspaceOptions.from_settings(Settings(database_url=None), home))


def _entry(tag: str, i: int, refs: tuple[str, ...] = ()) -> PreparedEntry:
    return PreparedEntry.build(kind="prediction", subject=f"model:{tag}:1", principal="p", body={"i": i}, refs=refs)


async def _append_all(client: WriterClient, entries: list[PreparedEntry]) -> list[Receipt]:
    return await asyncio.wait_for(asyncio.gather(*(client.append(e) for e in entries)), TIMEOUT)


def _record(path: Path, entries: list[PreparedEntry]) -> list[Receipt]:
    """Append through a fresh connection, in a fresh event loop, and hang up."""

    async def run() -> list[Receipt]:
        client = WriterClient(path)
        try:
            return await _append_all(client, entries)
        finally:
            client.close()

    return asyncio.run(run())


def test_two_connections_share_one_sequence_and_one_tree(writer: WriterSupervisor, home: Path) -> None:
    """Two connections' entries share one gap-free sequence; the tree verifies; receipts match the stored leaves."""

    async def run() -> tuple[list[Receipt], list[Receipt]]:
        one, two = WriterClient(writer.socket_path), WriterClient(writer.socket_path)
        try:
            return await asyncio.gather(
                _append_all(one, [_entry("one", i) for i in range(300)]),
                _append_all(two, [_entry("two", i) for i in range(300)]),
            )
        finally:
            one.close()
            two.close()

    first, second = asyncio.run(run())
    ws = _open(home)
    try:
        start = ws.log.size() - 600
        assert sorted(r.index for r in first + second) == list(range(start, start + 600))
        leaves = ws.log.stored_leaves(start, start + 600)
        assert all(leaves[r.index] == r.leaf_hash for r in first + second)
        assert ws.log.verify().ok
    finally:
        ws.close()


def _closed_by_peer(sock: socket.socket) -> bool:
    sock.settimeout(TIMEOUT)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


@pytest.mark.parametrize(
    "frame",
    [
        HEADER.pack(b"X", 4) + b"\x00\x00\x00\x00",
        HEADER.pack(b"E", MAX_FRAME + 1),
        HEADER.pack(b"E", 9) + b"\x00\x00\x00\x01garbage",
    ],
    ids=["unknown type", "oversized", "garbage entry"],
)
def test_a_malformed_frame_closes_that_connection_only(writer: WriterSupervisor, home: Path, frame: bytes) -> None:
    """The writer hangs up on the sender, records nothing from it, and keeps serving everyone else."""
    pid = writer.pid
    size = _open_size(home)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as raw:
        raw.connect(_address(writer.socket_path))
        raw.sendall(frame)
        assert _closed_by_peer(raw)
    receipts = _record(writer.socket_path, [_entry("after", 0)])
    assert receipts[0].index == size
    assert writer.pid == pid
    assert writer.restarts == 0


def _open_size(home: Path) -> int:
    ws = _open(home)
    try:
        return ws.log.size()
    finally:
        ws.close()


def _address(path: Path) -> str:
    """The socket's path, through the folder's /proc alias when it is too long for AF_UNIX."""
    if len(str(path)) <= 100:
        return str(path)
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    return f"/proc/self/fd/{fd}/{path.name}"  # left open for the test's lifetime: a few descriptors


def test_a_reused_reference_fails_only_its_own_entries(writer: WriterSupervisor) -> None:
    """A batch holding one worker's duplicate decision id still commits the other worker's entries."""

    async def run() -> tuple[BaseException | Receipt, BaseException | Receipt]:
        one, two = WriterClient(writer.socket_path), WriterClient(writer.socket_path)
        try:
            await _append_all(one, [_entry("one", 0, refs=("dup",))])
            results = await asyncio.gather(
                one.append(_entry("one", 1, refs=("dup",))), two.append(_entry("two", 0)), return_exceptions=True
            )
            return results[0], results[1]
        finally:
            one.close()
            two.close()

    duplicate, fresh = asyncio.run(run())
    assert isinstance(duplicate, LedgerUnavailable)
    assert "UNIQUE" in duplicate.message or "unique" in duplicate.message
    assert isinstance(fresh, Receipt)


def test_the_head_lags_but_verified_entry_works_at_once_and_shutdown_signs(home: Path) -> None:
    """Under a one-hour interval the note lags the head; a lookup signs on demand; SIGTERM signs the final head."""
    supervisor = WriterSupervisor(home / "writer.sock", start_timeout=TIMEOUT).start()
    try:
        receipts = _record(supervisor.socket_path, [_entry("lag", i) for i in range(50)])
        receipts += _record(supervisor.socket_path, [_entry("lag", 50)])
        ws = _open(home)
        try:
            note = Checkpoint.open(ws.log.head_note(), ws.log.verifier)
            assert note.size < ws.log.size()  # the writer did not sign every commit
            entry, proof = ws.log.verified_entry(receipts[-1].index)
            assert entry.body == {"i": 50}
            assert proof.tree_size == receipts[-1].index + 1
        finally:
            ws.close()
        receipts += _record(supervisor.socket_path, [_entry("tail", i) for i in range(5)])
    finally:
        supervisor.stop(timeout=TIMEOUT)
    assert not supervisor.socket_path.exists()
    ws = _open(home)
    try:
        note = Checkpoint.open(ws.log.head_note(), ws.log.verifier)
        assert note.size == ws.log.size() == receipts[-1].index + 1
    finally:
        ws.close()


def test_an_unreachable_writer_is_ledger_unavailable(tmp_path: Path) -> None:
    """No writer at the socket: the append fails at once with LedgerUnavailable (the gateway's 503)."""
    with pytest.raises(LedgerUnavailable, match="not available"):
        _record(tmp_path / "nobody.sock", [_entry("x", 0)])


SYSTEM_PYTHON = Path("/usr/bin/python3")


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to run a peer as another uid")
@pytest.mark.skipif(not SYSTEM_PYTHON.exists(), reason="needs an interpreter that uid 65534 may run")
def test_a_peer_of_another_uid_is_refused_even_when_the_socket_file_lets_it_in(
    writer: WriterSupervisor, home: Path
) -> None:
    """SO_PEERCRED: with the folder and socket opened up by mistake, a process of uid 65534 still records nothing."""
    size = _open_size(home)
    os.chmod(home, 0o711)  # noqa: S103 - the misconfiguration under test, undone below
    os.chmod(writer.socket_path, 0o666)  # noqa: S103 - the misconfiguration under test
    [(frame, _)] = list(entries_frames([encode_entry(_entry("intruder", 0))]))
    folder = os.open(home, os.O_RDONLY | os.O_DIRECTORY)
    script = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
        f"s.connect('/proc/self/fd/{folder}/{writer.socket_path.name}')\n"
        "s.settimeout(20)\n"
        "try:\n"
        f"    s.sendall(bytes.fromhex('{frame.hex()}'))\n"
        "    data = s.recv(64)\n"
        "except (BrokenPipeError, ConnectionResetError):\n"
        "    data = b''\n"
        "print('closed' if data == b'' else 'answered')\n"
    )
    try:
        result = subprocess.run(
            [str(SYSTEM_PYTHON), "-I", "-c", script], user=65534, group=65534, extra_groups=[], cwd="/",
            pass_fds=(folder,), capture_output=True, text=True, timeout=TIMEOUT, check=False,
        )  # fmt: skip
    finally:
        os.close(folder)
        os.chmod(home, 0o700)
    assert result.stdout.strip() == "closed", result.stderr
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and _open_size(home) == size:  # nothing may arrive: watch a moment
        time.sleep(0.1)
    assert _open_size(home) == size
