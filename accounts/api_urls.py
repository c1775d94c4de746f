from django.urls import path

from accounts.views.gateway_status import GatewayStatusView

urlpatterns: list = [
    path("gateway/status/", GatewayStatusView.as_view(), name="gateway-status"),
]
