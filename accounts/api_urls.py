from django.urls import path

from accounts import api
from accounts.views.gateway_status import GatewayStatusView

urlpatterns = [
    path("me/", api.MeView.as_view(), name="api-me"),
    path("accounts/", api.AccountListView.as_view(), name="api-accounts"),
    path(
        "accounts/<int:ctid_trader_account_id>/",
        api.AccountDetailView.as_view(),
        name="api-account-detail",
    ),
    path(
        "accounts/<int:ctid_trader_account_id>/history/",
        api.AccountHistoryView.as_view(),
        name="api-account-history",
    ),
    path("gateway/status/", GatewayStatusView.as_view(), name="gateway-status"),
]
