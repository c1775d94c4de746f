from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from accounts.models import Jurisdiction

from .models import AccountRequest


class AccountRequestForm(forms.Form):
    environment = forms.ChoiceField(
        label=_("Account type"),
        choices=[
            (AccountRequest.Environment.LIVE, _("cTrader/TradingView live account")),
            (AccountRequest.Environment.DEMO, _("cTrader/TradingView demo account")),
        ],
        widget=forms.RadioSelect,
    )
    jurisdiction = forms.ModelChoiceField(
        label=_("Company you trade with"),
        queryset=Jurisdiction.objects.filter(tradingview_enabled=True),
        required=False,
        empty_label=_("No preference"),
    )
    note = forms.CharField(
        label=_("Anything we should know (optional)"),
        max_length=500,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
    )
