from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from mjweb import twofactor, views

urlpatterns = [
    path("accounts/signup/", views.signup, name="signup"),
    path("accounts/verify/resend/", views.resend_verification, name="resend_verification"),
    path("accounts/verify/<str:token>/", views.verify_email, name="verify_email"),
    path("accounts/login/", views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/tokens/", views.api_tokens, name="api_tokens"),
    path("accounts/preferences/", views.preferences, name="preferences"),
    # Django's set_language (django.conf.urls.i18n), which also saves a signed-in user's
    # choice; no language prefix on any URL, so the API and the webhooks keep their paths.
    path("i18n/setlang/", views.set_language, name="set_language"),
    path("accounts/tokens/<int:pk>/revoke/", views.revoke_api_token, name="revoke_api_token"),
    path("accounts/2fa/", twofactor.verify, name="twofactor_verify"),
    path("accounts/2fa/setup/", twofactor.setup, name="twofactor_setup"),
    path(
        "accounts/password/change/",
        auth_views.PasswordChangeView.as_view(),
        name="password_change",
    ),
    path(
        "accounts/password/change/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    path("accounts/password/reset/", views.PasswordResetView.as_view(), name="password_reset"),
    path(
        "accounts/password/reset/sent/",
        auth_views.PasswordResetDoneView.as_view(),
        name="password_reset_done",
    ),
    path(
        "accounts/reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "accounts/reset/done/",
        auth_views.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
    # MJWEB_ADMIN_URL; the usage report and the CSV exports live under it too.
    path(settings.ADMIN_URL, admin.site.urls),
    # By name, not by import: nothing imports the back office (tests/test_layers.py).
    path("", include("backoffice.urls")),
    path("", include("billing.urls")),
    path("", include("gallery.urls")),
]
