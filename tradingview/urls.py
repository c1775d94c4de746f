from django.urls import path

from . import views

app_name = "tradingview"
urlpatterns = [
    path("", views.index, name="index"),
    path("oauth/authorize", views.authorize, name="authorize"),
    path("oauth/token", views.token, name="token"),
    path("oauth/onboarding-status", views.onboarding_status, name="onboarding_status"),
    path("grants/<int:pk>/disconnect/", views.disconnect, name="disconnect"),
    path("account-request/", views.account_request, name="account_request"),
]
