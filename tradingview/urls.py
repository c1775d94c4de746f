from django.urls import path

app_name = "tradingview"
urlpatterns: list = []
