from django.conf import settings
from django.http import HttpRequest


def site(request: HttpRequest) -> dict[str, object]:
    return {"SANDBOX": settings.SANDBOX, "SANDBOX_HTTP": settings.SANDBOX_HTTP if settings.SANDBOX else ""}
