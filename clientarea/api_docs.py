"""The API schema and its Swagger UI, served from our own static files (drf-spectacular-sidecar).

``API_DOCS`` decides who reads them: "public", "staff" (the production default) or "off" (404).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import Http404
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.permissions import BasePermission


class DocsAccess(BasePermission):
    def has_permission(self, request: Any, view: Any) -> bool:
        mode = settings.API_DOCS
        if mode == "public":
            return True
        if mode == "staff":
            return bool(request.user and request.user.is_authenticated and request.user.is_staff)
        raise Http404


schema_view = SpectacularAPIView.as_view(permission_classes=[DocsAccess])
docs_view = SpectacularSwaggerSplitView.as_view(url_name="api-schema", permission_classes=[DocsAccess])
