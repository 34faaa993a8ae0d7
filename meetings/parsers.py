"""Request body parsers for the API (settings.REST_FRAMEWORK's DEFAULT_PARSER_CLASSES)."""

from typing import Any

from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.parsers import JSONParser

from meetings.validators import nul_message


def _unstorable(value: Any) -> str | None:
    """Why some string in `value` (at any depth) cannot be stored as text, or None.
    A loop, not recursion: the decoder has just accepted nesting near the recursion limit."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if (message := nul_message(item)) is not None:
                return message
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return None


class BoundedJSONParser(JSONParser):
    """DRF's JSON parser, with a 400 for JSON nested too deeply to decode, and one naming
    the field for a string PostgreSQL cannot store (a NUL, a lone surrogate): a field the
    serializer looks up (a level's code) reached the database with it, a 500.

    SECURITY: Python's decoder recurses once per level, so `[` x 1000 raised RecursionError,
    which DRF does not catch (a 500), and anyone could send it to /api/v1/join/ unsigned.
    """

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise ParseError("JSON parse error - nested too deeply.") from exc
        if isinstance(data, dict):
            for name, value in data.items():
                message = _unstorable(name) or _unstorable(value)
                if message is not None:
                    raise ValidationError({name if _unstorable(name) is None else "field name": [message]})
        elif (message := _unstorable(data)) is not None:
            raise ValidationError({"non_field_errors": [message]})
        return data
