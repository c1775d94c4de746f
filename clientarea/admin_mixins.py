"""Admin building blocks shared by the apps."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest


class ViewOnlyMixin:
    """Staff see these rows but never add or edit them: only the services (and their actions) write them."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyMixin(ViewOnlyMixin):
    """Records kept as they were written (audit trail, status): not even deleted from the admin."""

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def model_permission(request: HttpRequest, model: Any, action: str) -> bool:
    """Whether the signed-in staff member holds ``<app>.<action>_<model>``.

    For admin actions on models whose admin forbids editing (the services write them): the action still
    needs the model's permission, which ``has_change_permission`` of a view-only admin does not report.
    """
    opts = model._meta
    return bool(request.user.has_perm(f"{opts.app_label}.{action}_{opts.model_name}"))
