"""The few statements written by hand (hot paths, the audit log's seal): names quoted from
the models' metadata, so a renamed field or table cannot drift from the SQL; values adapted
by the fields, as the ORM adapts them."""

import contextlib
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.db.models import CharField, Field, Model


def table(model: type[Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def column(model: type[Model], name: str) -> str:
    return connection.ops.quote_name(field(model, name).column)


def field(model: type[Model], name: str) -> "Field[Any, Any]":
    found = model._meta.get_field(name)
    if not isinstance(found, Field):  # a reverse relation has no column
        raise TypeError(f"{model.__name__}.{name} is not a column")
    return found


# --- A conditional UPDATE and the rows that commit only with it ----------------------


@dataclass(frozen=True)
class Insert:
    """One row for `model`'s table: {field name: value}, adapted as the ORM adapts them
    (Field.get_db_prep_save). With returning_id, its new id is given back."""

    model: type[Model]
    values: dict[str, Any]
    returning_id: bool = False

    def params(self) -> list[Any]:
        return [
            field(self.model, name).get_db_prep_save(value, connection) for name, value in self.values.items()
        ]

    def shape(self) -> tuple[type[Model], tuple[str, ...], bool]:
        return (self.model, tuple(self.values), self.returning_id)


def insert(row: Insert) -> int | None:
    """INSERT one row; its id when row.returning_id (RETURNING: PostgreSQL, SQLite 3.35+)."""
    with connection.cursor() as cursor:
        cursor.execute(_insert_sql(*row.shape()), row.params())
        return int(cursor.fetchone()[0]) if row.returning_id else None


def update_then_insert(
    update: str, params: Sequence[Any], rows: Sequence[Insert], *, durable: bool = False
) -> tuple[int, list[int | None]]:
    """Run `update` (a conditional UPDATE) and, only if it changed a row, INSERT `rows`:
    all of it or none. Returns (rows the UPDATE changed, [each row's id or None]).

    PostgreSQL: one statement (the INSERTs are data-modifying CTEs that select from the
    UPDATE's RETURNING), and outside atomic() its own transaction: one round trip where
    BEGIN, UPDATE, each INSERT and COMMIT were one each (the redemption storm,
    docs/BENCHMARKS.md). Inside atomic() a savepoint, so that a failed statement (a
    duplicate key: IntegrityError) leaves the caller's transaction usable. Elsewhere the
    statements one by one in atomic().

    durable: the caller acts on the result as committed (atomic(durable=True)'s rule):
    inside another transaction, which could still roll it back, this raises RuntimeError
    and writes nothing (a test's own transaction excepted, as Django excepts it).
    """
    if connection.vendor == "postgresql":
        statement = _update_then_insert_sql(update, tuple(row.shape() for row in rows))
        values = [*params, *(value for row in rows for value in row.params())]
        own = transaction.atomic(durable=durable) if connection.in_atomic_block else contextlib.nullcontext()
        with own, connection.cursor() as cursor:
            cursor.execute(statement, values)
            changed, *ids = cursor.fetchone()
        return int(changed), [int(pk) if pk is not None else None for pk in ids]
    with transaction.atomic(durable=durable):
        with connection.cursor() as cursor:
            cursor.execute(update, params)
            changed = cursor.rowcount
        return changed, [insert(row) if changed else None for row in rows]


def _cast_type(of: "Field[Any, Any]") -> str:
    """The type a value is CAST to before its INSERT. Text without its length: CAST to
    varchar(n) would cut a longer value silently, where the INSERT refuses it."""
    if isinstance(of, CharField):
        return str(connection.ops.cast_char_field_without_max_length)
    cast: str = of.cast_db_type(connection)  # type: ignore[attr-defined] # Django's, not in the stubs
    return cast


@functools.cache
def _insert_sql(model: type[Model], names: tuple[str, ...], returning_id: bool) -> str:
    columns = ", ".join(column(model, name) for name in names)
    placeholders = ", ".join(["%s"] * len(names))
    returning = f" RETURNING {column(model, 'id')}" if returning_id else ""
    return f"INSERT INTO {table(model)} ({columns}) VALUES ({placeholders}){returning}"  # noqa: S608 - names from the model


@functools.cache
def _update_then_insert_sql(
    update: str, shapes: tuple[tuple[type[Model], tuple[str, ...], bool], ...]
) -> str:
    """WITH changed AS (<update> RETURNING 1), row0 AS (INSERT ... SELECT ... FROM changed
    RETURNING id), ... SELECT (SELECT count(*) FROM changed), (SELECT id FROM row0), ...

    Each value is CAST to its column's type: a parameter in a SELECT list has no column
    to take its type from."""
    parts = [f"changed AS ({update} RETURNING 1)"]
    results = ["(SELECT count(*) FROM changed)"]
    for n, (model, names, returning_id) in enumerate(shapes):
        values = ", ".join(f"CAST(%s AS {_cast_type(field(model, name))})" for name in names)
        columns = ", ".join(column(model, name) for name in names)
        returning = column(model, "id") if returning_id else "NULL"
        parts.append(
            f"row{n} AS (INSERT INTO {table(model)} ({columns}) SELECT {values} FROM changed RETURNING {returning})"  # noqa: S608 - names from the model
        )
        results.append(f"(SELECT * FROM row{n})")  # noqa: S608 - our own CTE's name
    return f"WITH {', '.join(parts)} SELECT {', '.join(results)}"
