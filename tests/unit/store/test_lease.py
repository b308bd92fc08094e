"""The database lease on SQLite and PostgreSQL: one holder, expiry by the database clock, fencing, duties."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine, update

from mlwarden.errors import ConfigError, StoreError
from mlwarden.ledger.duties import DutyRunner, DutySettings, start_duties, writer_lease
from mlwarden.ledger.entry import PreparedEntry
from mlwarden.store.engine import write_transaction
from mlwarden.store.lease import SAFETY, Lease, LeaseLost, LeaseTerm, lease_engine, read_lease
from mlwarden.store.schema import leases
from mlwarden.workspace import Workspace

BOUND = 15.0
"""Seconds any wait for the lease to move may take before the test fails."""


@pytest.fixture
def engine(workspace: Workspace) -> Iterator[Engine]:
    """An engine for lease statements with bounded waits, on the workspace's database."""
    made = lease_engine(workspace.options.database_url, timeout=1.0)
    try:
        yield made
    finally:
        made.dispose()


def _until(condition: Callable[[], object], what: str, bound: float = BOUND) -> float:
    """Poll ``condition`` until it is true; seconds it took; fails after ``bound``."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > bound:
            pytest.fail(f"{what}: not within {bound}s")
        time.sleep(0.02)
    return time.monotonic() - started


def _expire_now(engine: Engine, name: str) -> None:
    """Make the stored lease expired, as if its TTL had passed without renewal."""
    with write_transaction(engine) as conn:
        conn.execute(update(leases).where(leases.c.name == name).values(expires_at=0.0))


def test_first_claim_takes_a_vacant_lease_and_others_are_refused(engine: Engine) -> None:
    """A vacant lease goes to the first claimant with epoch 1; a second claimant gets nothing while it is held."""
    first, second = Lease(engine, "t", holder="a"), Lease(engine, "t", holder="b")
    term = first.try_acquire()
    assert term is not None
    assert (term.holder, term.epoch) == ("a", 1)
    assert second.try_acquire() is None
    assert not second.held
    status = read_lease(engine, "t")
    assert (status.holder, status.epoch) == ("a", 1)
    assert 0 < status.expires_in <= first.ttl


def test_an_unknown_lease_reads_as_vacant(engine: Engine) -> None:
    """Reading a lease nobody ever claimed says nobody holds it."""
    status = read_lease(engine, "never")
    assert (status.holder, status.epoch, status.expires_in) == (None, 0, 0.0)


def test_release_hands_the_lease_over_at_once_with_the_next_epoch(engine: Engine) -> None:
    """After release another process takes the lease immediately, and the epoch tells the terms apart."""
    first, second = Lease(engine, "t", holder="a"), Lease(engine, "t", holder="b")
    assert first.try_acquire() is not None
    first.release()
    assert read_lease(engine, "t").holder is None
    term = second.try_acquire()
    assert term is not None
    assert term.epoch == 2
    assert first.renew() is None


def test_an_expired_lease_moves_and_the_old_holder_learns_it_lost(engine: Engine) -> None:
    """Once the database says the lease expired another takes it; the old holder's renew and fence fail."""
    old, new = Lease(engine, "t", holder="a"), Lease(engine, "t", holder="b")
    old_term = old.try_acquire()
    assert old_term is not None
    _expire_now(engine, "t")
    assert old.held  # its own deadline has not passed: only the database knows it lapsed
    new_term = new.try_acquire()
    assert new_term is not None
    assert new_term.epoch == old_term.epoch + 1
    with write_transaction(engine) as conn, pytest.raises(LeaseLost, match="moved away"):
        old.fence(conn)
    assert old.renew() is None
    assert old.term() is None
    with write_transaction(engine) as conn:
        assert new.fence(conn) == new_term


def test_the_ttl_runs_out_by_the_database_clock(engine: Engine) -> None:
    """Without renewal a lease of TTL 0.5 s moves to a waiting claimant within about that long."""
    old, new = Lease(engine, "t", holder="a", ttl=0.5), Lease(engine, "t", holder="b", ttl=0.5)
    assert old.try_acquire() is not None
    took = _until(lambda: new.try_acquire() is not None, "the lease moved")
    assert took <= 0.5 + 1.0
    assert read_lease(engine, "t").holder == "b"


def test_a_holder_gives_up_before_the_database_would_let_anyone_else_in(engine: Engine) -> None:
    """The holder's own deadline ends a safety margin before the stored expiry."""
    lease = Lease(engine, "t", holder="a", ttl=5.0)
    term = lease.try_acquire()
    answered = time.monotonic()
    assert term is not None
    assert term.valid_until <= answered + (1 - SAFETY) * 5.0
    local_left = term.valid_until - time.monotonic()
    assert read_lease(engine, "t").expires_in > local_left + SAFETY * 5.0 * 0.5


def test_fence_refuses_a_process_that_never_held_the_lease(engine: Engine) -> None:
    """A write guarded by the fence is refused for a process without the lease."""
    Lease(engine, "t", holder="a").try_acquire()
    with write_transaction(engine) as conn, pytest.raises(LeaseLost, match="not held"):
        Lease(engine, "t", holder="b").fence(conn)


def test_concurrent_claims_elect_exactly_one_holder(engine: Engine) -> None:
    """Eight processes racing for a vacant lease: the database lets exactly one win."""
    claimants = [Lease(engine, "race", holder=f"h{i}") for i in range(8)]
    Lease(engine, "race", holder="setup")._ensure_row()
    start = threading.Barrier(len(claimants))
    won: list[LeaseTerm] = []
    errors: list[BaseException] = []

    def claim(lease: Lease) -> None:
        start.wait(timeout=BOUND)
        try:
            term = lease.try_acquire()
        except StoreError as exc:  # a lock wait that timed out is a lost race, not a second winner
            errors.append(exc)
            return
        if term is not None:
            won.append(term)

    threads = [threading.Thread(target=claim, args=(c,)) for c in claimants]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=BOUND)
    assert len(won) == 1
    assert read_lease(engine, "race").holder == won[0].holder
    assert won[0].epoch == 1


def test_a_kept_lease_stays_held_and_close_releases_it(engine: Engine) -> None:
    """The background keeper renews a short lease past several TTLs in one epoch; close hands it over."""
    lease = Lease(engine, "t", holder="a", ttl=0.6).start()
    try:
        _until(lambda: lease.held, "the keeper took the lease")
        epoch = read_lease(engine, "t").epoch
        observed_until = time.monotonic() + 3 * lease.ttl
        while time.monotonic() < observed_until:
            assert lease.held
            assert read_lease(engine, "t").holder == "a"
            time.sleep(0.05)
        assert read_lease(engine, "t").epoch == epoch
    finally:
        lease.close()
    assert read_lease(engine, "t").holder is None
    assert Lease(engine, "t", holder="b").try_acquire() is not None


def test_ttl_out_of_range_is_a_config_error(engine: Engine) -> None:
    """A lease TTL of zero (e.g. from the environment) is refused with a clear message."""
    with pytest.raises(ConfigError, match="lease ttl"):
        Lease(engine, "t", ttl=0)


def test_duties_run_only_on_the_holder_and_move_with_the_lease(engine: Engine) -> None:
    """Two runners: only the holder's duty runs; when it closes the other takes over and runs it."""
    ran: dict[str, list[int]] = {"a": [], "b": []}

    def duty(who: str) -> Callable[[LeaseTerm], None]:
        return lambda term: ran[who].append(term.epoch)

    def boom(_term: LeaseTerm) -> None:
        raise RuntimeError("a duty with a bug")

    a = DutyRunner(Lease(engine, "duties", holder="a", ttl=1.0), tick=0.02)
    b = DutyRunner(Lease(engine, "duties", holder="b", ttl=1.0), tick=0.02)
    for runner, who in ((a, "a"), (b, "b")):
        runner.register("crash", 0.05, boom)
        runner.register("count", 0.05, duty(who))
    a.start()
    try:
        _until(lambda: len(ran["a"]) >= 3, "the holder ran its duty")
        b.start()
        _until(lambda: len(ran["a"]) >= 6, "the holder kept running its duties beside a failing one")
        assert ran["b"] == []
        assert b.status()["held_here"] is False
        assert a.status() | {"expires_in": None} == {
            "name": "duties", "holder": "a", "epoch": 1, "held_here": True, "expires_in": None
        }  # fmt: skip
    finally:
        a.close()
    try:
        _until(lambda: len(ran["b"]) >= 2, "the other replica took over the duty")
        assert set(ran["b"]) == {2}
        assert set(ran["a"]) == {1}
    finally:
        b.close()


def test_duty_interval_must_be_positive(engine: Engine) -> None:
    """Registering a duty with no interval is refused."""
    with pytest.raises(ConfigError, match="positive interval"):
        DutyRunner(Lease(engine, "t")).register("x", 0, lambda _t: None)


def test_the_writer_lease_holder_takes_periodic_checkpoints(workspace: Workspace) -> None:
    """start_duties keeps the ledger.writer lease and stores signed checkpoints of the growing log."""
    settings = DutySettings(lease_ttl_seconds=1.0, checkpoint_interval_seconds=0.1)
    runner = start_duties(workspace.options.database_url, workspace.log.checkpoint, settings)
    try:
        _until(lambda: runner.lease.held, "the runner took the writer lease")
        workspace.log.append_many(
            [PreparedEntry.build(kind="test.entry", subject=f"s{i}", principal="p", body={}) for i in range(3)]
        )
        _until(lambda: 3 in dict(workspace.log.stored_checkpoints()), "a checkpoint of size 3 was stored")
        status = writer_lease(workspace.engine)
        assert (status.name, status.holder) == ("ledger.writer", runner.lease.holder)
    finally:
        runner.close()
    assert writer_lease(workspace.engine).holder is None
