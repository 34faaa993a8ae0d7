"""The site as gunicorn serves it, plus one benchmark-only URL: /bench/bare/.

Only `make bench` starts gunicorn with this module; production serves scheduler.wsgi,
which has no such URL. The bare endpoint goes through the same server, middleware and
database connection handling as every other request and does one indexed SELECT (a
join link by its token digest, the lookup a redemption starts with), so it is the floor
the real endpoints are compared with.
"""

from django.http import HttpRequest, JsonResponse
from django.urls import path

from scheduler.wsgi import application  # noqa: F401 - sets Django up; gunicorn serves it


def bare(request: HttpRequest) -> JsonResponse:
    from meetings.credentials import token_digest
    from meetings.models import JoinLink

    digest = token_digest(request.GET.get("t", "none"))
    found = JoinLink.objects.filter(token_hash=digest).values_list("id", flat=True).first()
    return JsonResponse({"found": found is not None})


def _add_bare_url() -> None:
    import scheduler.urls

    # Appended before the first request resolves any URL, so the resolver sees it.
    scheduler.urls.urlpatterns.append(path("bench/bare/", bare))


_add_bare_url()
