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


class DeleteOnlyUnusedMixin:
    """Rows other rows protect (on_delete=PROTECT) can be deleted only while unused: no bulk "delete" action,
    and no Delete button on a row in use. ``in_use_relation`` names the protecting reverse relation."""

    in_use_relation = ""

    def get_actions(self, request: HttpRequest) -> Any:
        actions = super().get_actions(request)  # type: ignore[misc]
        actions.pop("delete_selected", None)
        return actions

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        allowed = super().has_delete_permission(request, obj)  # type: ignore[misc]
        if obj is not None and allowed:
            return not getattr(obj, self.in_use_relation).exists()
        return bool(allowed)


def titled_filter(title: str) -> Any:
    """A field's list filter under its own heading (two fields named "state" would share one)."""
    from django.contrib import admin

    class Titled(admin.ChoicesFieldListFilter):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.title = title

    return Titled
