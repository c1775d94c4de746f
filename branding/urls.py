from django.urls import path

from branding import views

urlpatterns = [
    path("brand/brand.css", views.brand_css, name="brand-css"),
    path("brand/logo", views.logo, name="brand-logo"),
    path("favicon.ico", views.favicon, name="favicon"),
]
