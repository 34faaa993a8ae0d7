"""{% when instant %}: a time in the viewer's zone with UTC beside it.

A host with a zone in their profile gets it from the server. Everyone else gets UTC from
the server, marked data-local, and static/js/antechamber.js rewrites it into the
browser's zone (the UTC text stays beside it), so a page without JavaScript still says
the right time, in UTC.
"""

from datetime import datetime

from django import template
from django.http import HttpRequest
from django.utils.html import format_html

from meetings import selectors
from meetings.zones import in_zone

register = template.Library()

_FORMATS = {"long": "%a %-d %b %Y, %H:%M", "short": "%-d %b %Y, %H:%M"}


def viewer_zone(request: HttpRequest | None) -> str:
    """The signed-in viewer's profile zone, or "" (then the browser's zone is used)."""
    if request is None:
        return ""
    cached = getattr(request, "_antechamber_zone", None)
    if cached is not None:
        return str(cached)
    user = getattr(request, "user", None)
    zone = selectors.host_zone(user) if user is not None else ""
    request._antechamber_zone = zone  # type: ignore[attr-defined]
    return zone


@register.simple_tag(takes_context=True)
def when(context: template.Context, instant: datetime | str | None, style: str = "long") -> str:
    if isinstance(instant, str):  # an API serializer's ISO 8601 text
        text = instant
        try:
            instant = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return text
    if instant is None:
        return ""
    fmt = _FORMATS.get(style, _FORMATS["long"])
    utc = in_zone(instant, "UTC")
    iso = utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    zone = viewer_zone(context.get("request"))
    if zone and zone != "UTC":
        local = in_zone(instant, zone)
        return format_html(
            '<span class="when"><time datetime="{}">{} {}</time> <span class="utc">({} UTC)</span></span>',
            iso,
            local.strftime(fmt),
            zone.replace("_", " "),
            utc.strftime("%H:%M" if local.date() == utc.date() else fmt),
        )
    if zone == "UTC":
        return format_html(
            '<span class="when"><time datetime="{}">{} UTC</time></span>', iso, utc.strftime(fmt)
        )
    return format_html(
        '<span class="when" data-local data-style="{}"><time datetime="{}">{} UTC</time></span>',
        style,
        iso,
        utc.strftime(fmt),
    )
