"""Names for the few statements written by hand (hot paths, the audit log's seal):
quoted from the models' metadata, so a renamed field or table cannot drift from the SQL."""

from django.db import connection
from django.db.models import Field, Model


def table(model: type[Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def column(model: type[Model], name: str) -> str:
    field = model._meta.get_field(name)
    if not isinstance(field, Field):  # a reverse relation has no column
        raise TypeError(f"{model.__name__}.{name} is not a column")
    return connection.ops.quote_name(field.column)
