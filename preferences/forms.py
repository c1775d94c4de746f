from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.utils.text import capfirst
from django.utils.translation import get_language_info
from django.utils.translation import gettext_lazy as _

from preferences.models import Preference


def language_choices() -> list[tuple[str, object]]:
    return [("", _("Your browser's language"))] + [
        (code, str(get_language_info(code)["name_local"]).capitalize()) for code, _name in settings.LANGUAGES
    ]


class PreferenceForm(forms.ModelForm):
    language = forms.ChoiceField(label=_("Language"), required=False, choices=())

    class Meta:
        model = Preference
        fields = [
            "language",
            "notify_ctid_reconnect",
            "notify_tradingview_revoked",
            "notify_account_request",
            "notify_new_sign_in",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["language"].choices = language_choices()  # type: ignore[attr-defined]
        for name in self.Meta.fields[1:]:
            self.fields[name].label = capfirst(self.fields[name].label)
