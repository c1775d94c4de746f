from django.urls import path

from preferences import views

urlpatterns = [
    path("account/settings/", views.settings_page, name="settings"),
    path("account/language/", views.set_language, name="set_language"),
]
