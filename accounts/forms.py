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
        email = get_user_model().objects.normalize_email(self.cleaned_data["email"]).strip()
        if get_user_model().objects.filter(email__iexact=email).exists():
            raise forms.ValidationError(
                _("An account with this email address already exists. Sign in, or reset your password.")
            )
        return email


class SignInForm(AuthenticationForm):
    """Django's sign-in form, refusing suspended traders with a message that says so."""

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
            raise forms.ValidationError(self.error_messages["suspended"], code="suspended")


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
