from __future__ import annotations

from django import forms

from accounts.models import Jurisdiction

from .models import AccountRequest


class AccountRequestForm(forms.Form):
    environment = forms.ChoiceField(
        label="Account type",
        choices=[
            (AccountRequest.Environment.LIVE, "cTrader/TradingView live account"),
            (AccountRequest.Environment.DEMO, "cTrader/TradingView demo account"),
        ],
        widget=forms.RadioSelect,
    )
    jurisdiction = forms.ModelChoiceField(
        label="Broker entity",
        queryset=Jurisdiction.objects.filter(tradingview_enabled=True),
        required=False,
        empty_label="No preference",
    )
    note = forms.CharField(label="Anything we should know (optional)", max_length=500, required=False)
