"""The transaction of one use case (Cosmic Python's unit of work, DESIGN.md §5).

Everything a use case writes — its domain rows, the instances it starts or changes, their audit
events and outbox rows — is one transaction that commits only when `commit()` is called: an
exception, or a `return` before it, rolls all of it back. After the commit the wake-ups of the
changes made in it are announced (the scheduler relays their outbox rows, fires earlier timers)."""

from __future__ import annotations

from types import TracebackType

from sqlalchemy import Connection
from sqlalchemy.orm import Session, SessionTransaction

from .change import Change, after_commit
from .runtime import Runtime


class UnitOfWork:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.committed = False
        self._changes: list[Change] = []
        self._wake = False
        self._session: Session | None = None
        self._transaction: SessionTransaction | None = None

    def __enter__(self) -> UnitOfWork:
        self._session = self.rt.db.write_session()
        self._transaction = self._session.begin()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if not self.committed and self._transaction is not None and self._transaction.is_active:
                self._transaction.rollback()
        finally:
            if self._session is not None:
                self._session.close()

    @property
    def session(self) -> Session:
        if self._session is None:
            raise RuntimeError("a unit of work is used inside its `with` block")
        return self._session

    @property
    def conn(self) -> Connection:
        """The transaction's connection, for engine calls that take one (instances.start_in...)."""
        return self.session.connection()

    def changed(self, change: Change) -> Change:
        """An instance change made in this unit of work: its wake-up is announced after the commit."""
        self._changes.append(change)
        return change

    def wake_after_commit(self) -> None:
        """Outbox rows were written directly (notices): wake the relay once committed."""
        self._wake = True

    def commit(self) -> None:
        if self._transaction is None:
            raise RuntimeError("commit() outside the unit of work's `with` block")
        self._transaction.commit()
        self.committed = True
        for change in self._changes:
            after_commit(self.rt, change)
        if self._wake:
            self.rt.wake()
