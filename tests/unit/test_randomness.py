"""Buffered random bytes are handed out once: across calls, threads and a fork."""

from __future__ import annotations

import os
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlwarden.randomness import BLOCK_BYTES, random_bytes


@given(st.lists(st.integers(min_value=0, max_value=2 * BLOCK_BYTES), max_size=20))
def test_each_call_gets_the_length_asked_and_fresh_bytes(counts: list[int]) -> None:
    drawn = [random_bytes(n) for n in counts]
    assert [len(b) for b in drawn] == counts
    chunks = [b[i : i + 16] for b in drawn for i in range(0, len(b) - 15, 16)]
    assert len(set(chunks)) == len(chunks)  # 128-bit pieces never repeat: no byte handed out twice


def test_threads_draw_from_blocks_of_their_own() -> None:
    random_bytes(1)  # this thread holds a block now
    seen: list[bytes] = []
    thread = threading.Thread(target=lambda: seen.append(random_bytes(64)))
    thread.start()
    thread.join(timeout=10)
    assert seen
    assert seen[0] != random_bytes(64)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_never_reuses_the_parents_block() -> None:
    """Parent and child would otherwise slice the same inherited block at the same place: same nonces."""
    random_bytes(8)  # the parent holds a partly used block
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next bytes and leave at once
        os.close(read_end)
        os.write(write_end, random_bytes(32))
        os._exit(0)
    os.close(write_end)
    try:
        child = os.read(read_end, 64)
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
    assert len(child) == 32
    assert child != random_bytes(32)
