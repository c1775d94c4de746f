app_name = "tradingview"
urlpatterns: list = []
