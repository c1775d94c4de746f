from django.urls import path

from twofactor import views

urlpatterns = [
    path("account/login/verify/", views.verify, name="two_factor_verify"),
    path("account/two-factor/", views.two_factor, name="two_factor"),
    path("account/two-factor/qr.svg", views.qr_code, name="two_factor_qr"),
]
