from django.http import HttpRequest

from branding.selectors import BrandView, brand_current


def brand(request: HttpRequest) -> dict[str, BrandView]:
    return {"brand": brand_current()}
