from django.urls import path

from accounts import api

urlpatterns = [
    path("me/", api.MeView.as_view(), name="api-me"),
    path("accounts/", api.AccountListView.as_view(), name="api-accounts"),
    path(
        "accounts/<int:ctid_trader_account_id>/",
        api.AccountDetailView.as_view(),
        name="api-account-detail",
    ),
]
