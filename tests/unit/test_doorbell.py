"""The outbox doorbell: real sockets, in this process (a writer and a relay each get one)."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ordtool.store.doorbell import Doorbell, Listener, bell_address, wait_for_ring

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="abstract sockets are Linux's")


@pytest.fixture(name="address")
def address_fixture(tmp_path: Path) -> bytes:
    found = bell_address(f"sqlite:///{tmp_path / f'orders-{uuid.uuid4().hex}.db'}")
    assert found is not None
    return found


@pytest.fixture(name="listener")
def listener_fixture(address: bytes) -> Iterator[Listener]:
    listener = Listener(address)
    assert listener.bind()
    yield listener
    listener.close()


def test_a_ring_wakes_the_listener_and_is_read_once(address: bytes, listener: Listener) -> None:
    assert not wait_for_ring([listener], 0.01)
    bell = Doorbell(address)
    bell.ring()
    bell.ring()
    assert wait_for_ring([listener], 5.0)
    assert not listener.drain()  # both rings were read by the wake-up


def test_take_rings_tells_of_a_ring_that_a_wait_already_read(address: bytes,
                                                            listener: Listener) -> None:
    assert not listener.take_rings()
    Doorbell(address).ring()
    assert wait_for_ring([listener], 5.0)  # the wake-up read the ring
    assert listener.take_rings()
    assert not listener.take_rings()


def test_only_one_listener_holds_a_bell_until_it_lets_go(address: bytes,
                                                        listener: Listener) -> None:
    standby = Listener(address)
    assert not standby.bind()
    assert not standby.bound
    listener.close()
    assert standby.bind()
    Doorbell(address).ring()
    assert wait_for_ring([standby], 5.0)
    standby.close()


def test_ringing_with_nobody_listening_or_a_full_queue_is_harmless(address: bytes) -> None:
    bell = Doorbell(address)
    bell.ring()  # nobody bound
    listener = Listener(address)
    assert listener.bind()
    for _ in range(10_000):  # far more than a datagram queue holds
        bell.ring()
    assert listener.drain()
    listener.close()


def test_the_same_file_by_any_path_has_the_same_bell(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    os.symlink(tmp_path / "data", tmp_path / "link")
    direct = bell_address(f"sqlite:///{tmp_path / 'data' / 'orders.db'}")
    linked = bell_address(f"sqlite:///{tmp_path / 'link' / 'orders.db'}")
    other = bell_address(f"sqlite:///{tmp_path / 'data' / 'customers.db'}")
    assert direct == linked
    assert direct != other


@pytest.mark.parametrize("url", [
    "postgresql+psycopg://127.0.0.1:5432/ordtool_orders", "sqlite://", "sqlite:///:memory:",
])
def test_databases_without_a_file_have_no_bell(url: str) -> None:
    assert bell_address(url) is None
    Doorbell(None).ring()
    assert not Listener(None).bind()
