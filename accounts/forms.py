"""Forms of the trader-facing pages. They validate input; services do the writes."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import (
    AuthenticationForm,
    PasswordChangeForm,
    SetPasswordForm,
    UserCreationForm,
    UsernameField,
)
from django.utils.translation import gettext_lazy as _

from accounts.backends import is_suspended

SUSPENDED_MESSAGE = _(
    "Your access is suspended, so you cannot sign in. Please contact support if you think this is a mistake."
)


class SignUpForm(UserCreationForm):
    email = forms.EmailField(
        required=True,
        label=_("Email address"),
        help_text=_("We send password reset links and notices about your accounts here."),
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )

    class Meta:
        model = get_user_model()
        fields = ("username", "email")
        field_classes = {"username": UsernameField}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Sign-up always sets a password; the "usable password" switch is for staff creating users.
        self.fields.pop("usable_password", None)
        # Our own words instead of Django's default help ("Required. 150 characters or fewer...").
        self.fields["username"].label = _("Username")
        self.fields["username"].help_text = _("You sign in with it. Letters, digits and @ . + - _ only.")
        self.fields["password1"].label = _("Password")
        self.fields["password1"].help_text = PASSWORD_HELP
        self.fields["password2"].label = _("Password again")
        self.fields["password2"].help_text = _("Type the same password again, to be sure.")

    def clean_email(self) -> str:
        # Whether the address already has an account is not checked here: the answer must not tell (the mail
        # sent to the address does).
        return get_user_model().objects.normalize_email(self.cleaned_data["email"]).strip()


class SignInForm(AuthenticationForm):
    """Django's sign-in form, refusing suspended traders with the wrong-password message.

    A suspended account with the right password is told nothing more than a wrong password would tell, so
    the form never confirms that a password is right for an account that cannot sign in.
    """

    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": _(
            "This username and password do not match. Check both (the password is case-sensitive), "
            "or reset your password."
        ),
        "suspended": SUSPENDED_MESSAGE,
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["username"].label = _("Username")
        self.fields["password"].label = _("Password")

    def confirm_login_allowed(self, user: Any) -> None:
        super().confirm_login_allowed(user)
        if is_suspended(user):
            raise self.get_invalid_login_error()


class OpeningForm(forms.Form):
    """The choices of one account type, and the trading password (checked, confirmed, never stored)."""

    key = forms.CharField(widget=forms.HiddenInput, max_length=64)
    deposit_currency = forms.ChoiceField(label=_("Deposit currency"))
    leverage = forms.TypedChoiceField(label=_("Leverage"), coerce=int)
    password = forms.CharField(
        label=_("Trading password"),
        strip=False,
        min_length=8,
        max_length=64,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=_(
            "At least 8 characters, with letters and digits. You sign in to cTrader with it; we never store it."
        ),
    )
    password_confirm = forms.CharField(
        label=_("Trading password again"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def __init__(
        self,
        *args: Any,
        currencies: list[str],
        leverages: list[int],
        with_password: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        currency_field = self.fields["deposit_currency"]
        leverage_field = self.fields["leverage"]
        assert isinstance(currency_field, forms.ChoiceField)
        assert isinstance(leverage_field, forms.ChoiceField)
        currency_field.choices = [(c, c) for c in currencies]
        leverage_field.choices = [(v, f"1:{v}") for v in leverages]
        if not with_password:
            del self.fields["password"]
            del self.fields["password_confirm"]

    def clean_password(self) -> str:
        return check_trading_password(self.cleaned_data["password"])

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if (
            "password" in self.fields
            and data.get("password")
            and data.get("password") != data.get("password_confirm")
        ):
            self.add_error("password_confirm", _("The two passwords are not the same."))
        return data


def check_trading_password(value: str) -> str:
    if not any(c.isalpha() for c in value) or not any(c.isdigit() for c in value):
        raise forms.ValidationError(_("Use letters and digits."))
    if any(ord(c) < 32 or ord(c) > 126 for c in value):
        raise forms.ValidationError(
            _("Use only letters, digits and the usual punctuation (no spaces or accents).")
        )
    return value


class TradingPasswordForm(forms.Form):
    password = OpeningForm.base_fields["password"]
    password_confirm = OpeningForm.base_fields["password_confirm"]

    def clean_password(self) -> str:
        return check_trading_password(self.cleaned_data["password"])

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("password") and data.get("password") != data.get("password_confirm"):
            self.add_error("password_confirm", _("The two passwords are not the same."))
        return data


PASSWORD_HELP = _(
    "At least 8 characters, not only digits, and not too close to your username or email address."
)


class NewPasswordForm(SetPasswordForm):
    """Choosing a new password (reset link), with our own help text."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["new_password1"].label = _("New password")
        self.fields["new_password1"].help_text = PASSWORD_HELP
        self.fields["new_password2"].label = _("New password again")
        self.fields["new_password2"].help_text = ""


class ChangePasswordForm(PasswordChangeForm):
    """Changing the password while signed in, with our own help text."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["old_password"].label = _("Current password")
        self.fields["new_password1"].label = _("New password")
        self.fields["new_password1"].help_text = PASSWORD_HELP
        self.fields["new_password2"].label = _("New password again")
        self.fields["new_password2"].help_text = ""
