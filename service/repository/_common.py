"""What the repository modules share: pages of lists, and the database ping."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

__all__ = ["Page", "insert_for", "ping"]

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list and the total count of the unpaginated list."""

    items: list[T]
    total: int


def ping(session: Session) -> None:
    """Round-trip to the database (for /healthz)."""
    session.execute(text("SELECT 1"))


def insert_for(session: Session) -> Any:
    """The dialect's ``insert`` (with ``on_conflict_do_update``) for the session's database."""
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
