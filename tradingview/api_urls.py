from django.urls import path

from . import api

urlpatterns = [
    path("grants/", api.GrantListView.as_view(), name="tradingview-api-grants"),
    path("grants/<int:pk>/disconnect/", api.GrantDisconnectView.as_view(), name="tradingview-api-disconnect"),
]
