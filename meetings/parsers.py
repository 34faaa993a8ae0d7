"""Request body parsers for the API (settings.REST_FRAMEWORK's DEFAULT_PARSER_CLASSES)."""

from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class BoundedJSONParser(JSONParser):
    """DRF's JSON parser, with a 400 for JSON nested too deeply to decode.

    SECURITY: Python's decoder recurses once per level, so `[` x 1000 raised RecursionError,
    which DRF does not catch (a 500), and anyone could send it to /api/v1/join/ unsigned.
    """

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise ParseError("JSON parse error - nested too deeply.") from exc
