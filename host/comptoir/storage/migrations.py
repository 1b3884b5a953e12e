"""Numbered schema migrations, one style for every store.

A store's schema is a tuple of steps; step n (1-based) brings version n-1 to n. Each step runs
once, in order, inside one write transaction with the version bump, so a crash leaves the old
or the new schema, never half of one. Never edit a released step: add one. A step is SQL
(statements separated by `;`) or a function of the connection (a step that moves data).

`fresh`, when a store has it, is the latest schema in one piece for an empty database: stores
whose first versions were released before their steps were kept here start new files with it
(their old steps exist only as upgrades of files written then).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .backend import Connection, Dialect
from .sqlite import SQLITE
from .transactions import write_transaction

# A step function gets the backend's own connection (sqlite3.Connection for SQLite).
Step = str | Callable[[Any], None]


@dataclass(frozen=True, slots=True)
class Schema:
    steps: tuple[Step, ...]
    fresh: Step | None = None

    @property
    def version(self) -> int:
        return len(self.steps)


def migrate(
    db: Connection,
    schema: Schema,
    *,
    too_new: Callable[[int, int], Exception],
    target: int | None = None,
    dialect: Dialect = SQLITE,
) -> int:
    """Bring the schema to `target` (default: the latest); returns the version found.
    A database newer than `schema` raises too_new(found, ours). `db` is in autocommit mode."""
    found = dialect.read_version(db)
    if found > schema.version:
        raise too_new(found, schema.version)
    target = schema.version if target is None else target
    if found == 0 and schema.fresh is not None and target == schema.version:
        _in_transaction(db, dialect, schema.fresh, schema.version)
        return found
    for version in range(found + 1, target + 1):
        _in_transaction(db, dialect, schema.steps[version - 1], version)
    return found


def run_step(db: Connection, step: Step) -> None:
    if callable(step):
        step(db)
        return
    for statement in statements(step):
        db.execute(statement)


def statements(script: str) -> list[str]:
    """The statements of an SQL script, each whole: a `;` inside a comment or a string does not
    end one (sqlite3.complete_statement follows SQL's lexical rules)."""
    out, pending = [], ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \t\n;"):
                out.append(pending)
            pending = ""
    if pending.strip(" \t\n;"):
        out.append(pending)
    return out


def _in_transaction(db: Connection, dialect: Dialect, step: Step, version: int) -> None:
    with write_transaction(db, dialect):
        run_step(db, step)
        dialect.write_version(db, version)
