"""Forms of the trader-facing pages. They validate input; services do the writes."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm, UsernameField

from accounts.backends import is_suspended


class SignUpForm(UserCreationForm):
    email = forms.EmailField(
        required=True,
        help_text="We send password reset links here.",
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

    def clean_email(self) -> str:
        email = get_user_model().objects.normalize_email(self.cleaned_data["email"]).strip()
        if get_user_model().objects.filter(email__iexact=email).exists():
            raise forms.ValidationError("An account with this email address already exists.")
        return email


class SignInForm(AuthenticationForm):
    """Django's sign-in form, refusing suspended traders with the wrong-password message.

    A suspended account with the right password is told nothing more than a wrong password would tell, so
    the form never confirms that a password is right for an account that cannot sign in.
    """

    def confirm_login_allowed(self, user: Any) -> None:
        super().confirm_login_allowed(user)
        if is_suspended(user):
            raise self.get_invalid_login_error()
