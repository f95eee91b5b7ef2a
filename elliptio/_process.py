"""Per-process values: made on first use, and made again in a forked child.

A thread pool, a lock or a client made in a parent does not work in a child made
by ``fork`` (its threads do not exist there, a lock may be held forever). Every
such value the library keeps at module level is a `ProcessLocal`. What holds
them (a handler, and what holds a handler) is an `InProcess`: never pickled.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any, Generic, Self, TypeVar

from ._errors import ArgumentTypeError

__all__ = ["InProcess", "ProcessLocal"]

T = TypeVar("T")


class ProcessLocal(Generic[T]):
    """A value made by ``factory`` on first use in each process."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._value: T | None = None
        self._lock = threading.Lock()
        _every.append(self)

    def get(self) -> T:
        """The value of this process, made now if needed."""
        value = self._value
        if value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._factory()
                value = self._value
        return value

    def _forget(self) -> None:
        self._value = None
        self._lock = threading.Lock()  # another thread may have held it at fork time


_every: list[ProcessLocal[Any]] = []


def _forget_all() -> None:
    for local in _every:
        local._forget()


os.register_at_fork(after_in_child=_forget_all)


class InProcess:
    """What holds this process's threads and connections (a handler, or what holds
    one): copied shallowly (sharing them), never pickled nor deep-copied, so never
    sent to another process by accident (a bare "cannot pickle '_thread.lock'
    object" said nothing), with an error that says what to send instead."""

    def _travel_hint(self) -> tuple[str, str]:
        """What it is, and what to send to another process instead."""
        raise NotImplementedError

    def __copy__(self) -> Self:
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        return new

    def __reduce__(self) -> Any:
        what, send = self._travel_hint()
        raise ArgumentTypeError(
            f"{what} holds this process's threads and connections, so it is neither "
            f"pickled nor deep-copied, nor sent to other processes; send {send}"
        )
