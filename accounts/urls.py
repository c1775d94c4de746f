from django.contrib.auth import views as auth_views
from django.urls import path

from accounts.views import auth, ctid, dashboard, opening

urlpatterns = [
    path("", dashboard.dashboard, name="dashboard"),
    path("accounts/<int:ctid_trader_account_id>/", dashboard.account_detail, name="account-detail"),
    path("account/signup/", auth.SignUpView.as_view(), name="signup"),
    path("account/signup/sent/", auth.sign_up_sent, name="signup-sent"),
    path("account/signup/confirm/<str:token>/", auth.sign_up_confirm, name="signup-confirm"),
    path("account/login/", auth.SignInView.as_view(), name="login"),
    path("account/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("account/password/change/", auth.PasswordChangeView.as_view(), name="password_change"),
    path(
        "account/password/change/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    path("account/password/reset/", auth.PasswordResetView.as_view(), name="password_reset"),
    path(
        "account/password/reset/sent/",
        auth_views.PasswordResetDoneView.as_view(),
        name="password_reset_done",
    ),
    path(
        "account/password/reset/<uidb64>/<token>/",
        auth.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "account/password/reset/complete/",
        auth_views.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
]

urlpatterns += [
    path("ctrader/connect/", ctid.ctid_connect, name="ctid-connect"),
    path("ctrader/callback/", ctid.ctid_callback, name="ctid-callback"),
    path("ctids/<int:pk>/sync/", ctid.ctid_sync, name="ctid-sync"),
    path("ctids/progress/<uuid:public_id>/", ctid.ctid_job_status, name="ctid-job"),
]

urlpatterns += [
    path("open/", opening.open_account, name="opening-start"),
    path("open/<uuid:public_id>/", opening.opening_status, name="opening-status"),
    path("open/<uuid:public_id>/status.json", opening.opening_status_json, name="opening-status-json"),
    path("open/<uuid:public_id>/password/", opening.opening_password, name="opening-password"),
    path("email/verify/", opening.email_verify_send, name="email-verify-send"),
    path("email/verify/<str:token>/", opening.email_verify, name="email-verify"),
    path("ctids/<int:pk>/disconnect/", ctid.ctid_disconnect_confirm, name="ctid-disconnect"),
]
