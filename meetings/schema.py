"""What the OpenAPI document says that the views' own types cannot: the field-error body,
and operations that need no credentials. drf-spectacular extensions register on import
(meetings.api imports this module)."""

from typing import Any

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.openapi import AutoSchema

_MESSAGES = {"type": "array", "items": {"type": "string"}}


class ValidationErrorOutputScheme(OpenApiSerializerExtension):
    """`{"field": ["message"]}`, or `{"field": {"0": ["message"]}}` for a list's items."""

    target_class = "meetings.serializers.ValidationErrorOutput"

    def map_serializer(self, auto_schema: AutoSchema, direction: Any) -> dict[str, Any]:
        return {
            "type": "object",
            "description": "Messages by field name (`non_field_errors` for the body as a whole); "
            "for a list field, by the index of each bad item.",
            "additionalProperties": {
                "oneOf": [_MESSAGES, {"type": "object", "additionalProperties": _MESSAGES}]
            },
        }


class NoCredentialsSchema(AutoSchema):
    """For operations anyone may call: `security: []` says that no credentials are needed.

    (drf-spectacular's `auth=[]` only drops the operation's `security`, and AllowAny
    otherwise lists every scheme plus `{}`, "optional", which generators read as needing one.)
    """

    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        operation = super().get_operation(*args, **kwargs)
        if operation is not None:
            operation["security"] = []
        return operation
