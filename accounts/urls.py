from django.urls import path

from accounts.views import ctid

urlpatterns: list = []

urlpatterns += [
    path("ctrader/connect/", ctid.ctid_connect, name="ctid-connect"),
    path("ctrader/callback/", ctid.ctid_callback, name="ctid-callback"),
    path("ctids/<int:pk>/sync/", ctid.ctid_sync, name="ctid-sync"),
]
