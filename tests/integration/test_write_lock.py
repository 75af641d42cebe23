"""The relay's and the consumers' write transactions on SQLite: the write lock is taken as soon
as it is free, not on SQLite's busy handler's growing sleeps (store/write_lock.py)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from ordtool.store.engine import SQLITE_BUSY_TIMEOUT_MS, make_engine
from ordtool.store.write_lock import write_transaction

HELD_S = 0.44
# SQLite's own busy handler, waiting since the lock was taken, tries again at 428 ms and then
# at 528 ms: 88 ms after this lock is let go. Taken promptly, it is a few ms.
LATE_LIMIT_S = 0.06


@pytest.fixture(name="engine")
def engine_fixture(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'lock.db'}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (n INTEGER)"))
    return engine


def hold_write_lock(engine: Engine, held: threading.Event, released: list[float]) -> None:
    with engine.connect() as connection:
        connection.info["write"] = True  # BEGIN IMMEDIATE (store.engine)
        with connection.begin():
            held.set()
            time.sleep(HELD_S)
            released.append(time.monotonic())


def test_the_lock_is_taken_as_soon_as_it_is_free(engine: Engine) -> None:
    held, released = threading.Event(), list[float]()
    holder = threading.Thread(target=hold_write_lock, args=(engine, held, released))
    holder.start()
    assert held.wait(10)
    with write_transaction(engine) as connection:
        taken = time.monotonic()
        connection.execute(text("INSERT INTO t VALUES (1)"))
        busy_timeout = connection.exec_driver_sql("PRAGMA busy_timeout").scalar_one()
    holder.join()
    assert taken - released[0] < LATE_LIMIT_S
    assert busy_timeout == SQLITE_BUSY_TIMEOUT_MS  # the usual wait for what follows


def test_commits_on_success_and_rolls_back_on_error(engine: Engine) -> None:
    with write_transaction(engine) as connection:
        connection.execute(text("INSERT INTO t VALUES (1)"))
    with pytest.raises(RuntimeError), write_transaction(engine) as connection:
        connection.execute(text("INSERT INTO t VALUES (2)"))
        raise RuntimeError("handler bug")
    with engine.connect() as connection:
        assert connection.execute(text("SELECT n FROM t")).scalars().all() == [1]
