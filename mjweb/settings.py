"""mjweb settings: one module, every deploy-specific value from the environment.

See .env.example for the full list with a one-line comment each.
"""

from __future__ import annotations

import os
import re
import secrets
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured
from dotenv import load_dotenv

from mjweb import catalogue
from mjweb.env import (
    database_from_url,
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_str,
    sqlite_database,
)

BASE_DIR = Path(__file__).resolve().parent.parent
# A `.env` file beside manage.py (or the one MJWEB_ENV_FILE names; empty: none) fills in the
# variables the environment does not set: the environment always wins.
_ENV_FILE = os.environ.get("MJWEB_ENV_FILE", str(BASE_DIR / ".env"))
if _ENV_FILE:
    load_dotenv(_ENV_FILE, override=False)
DATA_DIR = Path(env_str("MJWEB_DATA_DIR", str(BASE_DIR / "data"))).resolve()

DEBUG = env_bool("DEBUG", False)


def _secret_key() -> str:
    key = env_str("SECRET_KEY")
    if key:
        return key
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is required when DEBUG is off (set SECRET_KEY or SECRET_KEY_FILE)."
        )
    # Local runs: one random key per data dir, kept so sessions survive restarts.
    path = DATA_DIR / "secret_key"
    if not path.exists():
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50), encoding="utf-8")
        path.chmod(0o600)
    return path.read_text(encoding="utf-8").strip()


SECRET_KEY = _secret_key()
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000").rstrip("/")
# The site's own host is allowed unless ALLOWED_HOSTS says otherwise.
ALLOWED_HOSTS = env_list(
    "ALLOWED_HOSTS",
    ["127.0.0.1", "localhost"] if DEBUG else [urlsplit(SITE_URL).hostname or "localhost"],
)
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "mjweb",
    "gallery",
    "billing",
    "backoffice",
    # Django's admin with the back office's site: reports, audited changes (backoffice/).
    "backoffice.apps.AdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "django_q",
    "axes",
    "django_ratelimit",
    # A second factor for staff (mjweb.twofactor): authenticator apps and recovery codes.
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
]

MIDDLEWARE = [
    # /healthz and /readyz, before the host check and the HTTPS redirect (mjweb.health).
    "mjweb.health.probes",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The language from the cookie the switch sets, or else the browser's Accept-Language;
    # mjweb.middleware.user_preferences below puts a signed-in user's own choice over both.
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # A signed-in user's saved language and time zone (mjweb.models.User).
    "mjweb.middleware.user_preferences",
    "django_otp.middleware.OTPMiddleware",
    "mjweb.twofactor.require_for_staff",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "mjweb.middleware.security_headers",
    # Last, as django-axes asks: it turns a lockout into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "mjweb.urls"
# The site is served through ASGI (uvicorn: `make run`, the Dockerfile); the WSGI entry still
# works, without the push stream (pages keep their two-second poll).
ASGI_APPLICATION = "mjweb.asgi.application"
WSGI_APPLICATION = "mjweb.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "billing.context_processors.credits",
                "mjweb.health.context",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL")
# Set by mjweb.asgi, the entry point of the web server. Under ASGI every request runs in a
# thread of its own, so a connection kept after it would never be reused: there Django keeps
# none and psycopg's pool lends them (DATABASE_POOL_MAX_SIZE per process; opening one cost
# the web a third of its CPU under a flood of webhooks). The pool serves the web server only:
# django-q2 forks its workers, and a pool opened before a fork would hand the same
# connections to several processes. The worker and manage.py commands each keep their own
# persistent connection instead.
SERVED_BY_ASGI = env_bool("MJWEB_ASGI", False)
if DATABASE_URL:
    DATABASES = {
        "default": database_from_url(
            DATABASE_URL,
            pool_max_size=env_int("DATABASE_POOL_MAX_SIZE", 10, minimum=0) if SERVED_BY_ASGI else 0,
            persistent=not SERVED_BY_ASGI,
        )
    }
else:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {"default": sqlite_database(DATA_DIR / "db.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth -----------------------------------------------------------------------------
AUTH_USER_MODEL = "mjweb.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "gallery:home"
LOGOUT_REDIRECT_URL = "login"
# django-axes first: it refuses a locked-out login before any password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Admin and login throttling ---------------------------------------------------------
# Where the admin lives; a path of its own makes it harder to find for scripted attacks.
ADMIN_URL = env_str("MJWEB_ADMIN_URL", "admin/").strip("/") + "/"
# A bearer token for /metrics (Prometheus); without it only signed-in staff may read them.
MJWEB_METRICS_TOKEN = env_str("MJWEB_METRICS_TOKEN", "")
if ADMIN_URL == "/":
    raise ImproperlyConfigured("MJWEB_ADMIN_URL must not be empty (the site lives at /).")
# django-axes: after this many failed logins of one username from one address, both the
# site's and the admin's login refuse that pair until the cool-off has passed.
AXES_ENABLED = env_bool("MJWEB_LOGIN_THROTTLE", True)
AXES_FAILURE_LIMIT = env_int("MJWEB_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("MJWEB_LOGIN_COOLOFF_MINUTES", 15, minimum=1))
# The pair, not the address alone: people behind one office NAT do not lock each other out,
# and not the username alone: nobody can lock an admin out from elsewhere.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "mjweb.throttle.lockout"
AXES_USERNAME_CALLABLE = "mjweb.throttle.username"
# Behind a proxy (MJWEB_BEHIND_PROXY) the address is the one the proxy appended last to
# X-Forwarded-For; otherwise REMOTE_ADDR.
AXES_CLIENT_IP_CALLABLE = "mjweb.throttle.client_ip"
TRUST_FORWARDED_FOR = env_bool("MJWEB_BEHIND_PROXY", False)
AXES_VERBOSE = False

# --- Email ----------------------------------------------------------------------------
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "mjweb <noreply@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# Who is mailed the operators' alerts (a provider account disabled or low on balance).
ADMINS = [(address, address) for address in env_list("MJWEB_ALERT_EMAILS", [])]

# --- Internationalisation -------------------------------------------------------------
# English and Simplified Chinese; the URLs carry no language prefix (the JSON API and the
# webhooks keep their paths). The names are each language's own, as the switch shows them.
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
# The server's time zone: dates are shown in it unless a user picks their own.
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# --- Static and media -----------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(DATA_DIR / "media")))
# Any Django storage class; "s3" is short for django-storages' S3Storage (the "s3" extra).
_STORAGE_BACKEND = env_str("MJWEB_STORAGE_BACKEND", "django.core.files.storage.FileSystemStorage")
if _STORAGE_BACKEND.lower() == "s3":
    _STORAGE_BACKEND = "storages.backends.s3.S3Storage"
STORAGES = {
    # Images are private to their owner: served through an ownership-checked view,
    # never from a public MEDIA_URL. Any Django storage backend works here.
    "default": {"BACKEND": _STORAGE_BACKEND},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# S3-compatible storage (read by django-storages only when it is the backend). The keys come
# from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in the environment, which django-storages
# reads itself. Objects stay private (no ACL, signed URLs) and are never overwritten.
AWS_STORAGE_BUCKET_NAME = env_str("AWS_STORAGE_BUCKET_NAME")
AWS_S3_ENDPOINT_URL = env_str("AWS_S3_ENDPOINT_URL") or None  # MinIO, R2, Spaces...
AWS_S3_REGION_NAME = env_str("AWS_S3_REGION_NAME") or None
AWS_S3_ADDRESSING_STYLE = env_str("AWS_S3_ADDRESSING_STYLE") or None  # "path" for MinIO
AWS_LOCATION = env_str("AWS_LOCATION")  # key prefix inside the bucket
AWS_DEFAULT_ACL = None
AWS_QUERYSTRING_AUTH = True
AWS_S3_FILE_OVERWRITE = False

# --- Security -------------------------------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
HTTPS = env_bool("MJWEB_HTTPS", not DEBUG)
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = HTTPS and env_bool("SECURE_SSL_REDIRECT", True)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
# Preloading is off unless the operator opts in: it commits the whole registered domain and
# every subdomain to HTTPS in browsers' built-in lists, and taking a domain off them takes
# months. Django's deploy check warns about it (W021); that warning is silenced until then.
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
if env_bool("MJWEB_BEHIND_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Sign-up (mjweb.signups) -------------------------------------------------------------
# open: sign up and start at once; verified: the welcome credits and the first job wait for
# the link mailed to the address; invite: only with an invitation staff made in the admin
# (each good once); closed: no sign-up page (staff make accounts).
MJWEB_SIGNUP_MODE = env_choice(
    "MJWEB_SIGNUP_MODE", "open", ("open", "verified", "invite", "closed")
)
# Refuse addresses of disposable-email services (the disposable-email-domains list) and of
# these domains (comma-separated; a domain's subdomains too).
MJWEB_BLOCK_DISPOSABLE_EMAIL = env_bool("MJWEB_BLOCK_DISPOSABLE_EMAIL", True)
MJWEB_BLOCKED_EMAIL_DOMAINS = [d.lower() for d in env_list("MJWEB_BLOCKED_EMAIL_DOMAINS", [])]

# --- Throttles (mjweb.throttle) ----------------------------------------------------------
# Rates are counted in the cache, which several processes must share: Redis (REDIS_URL) in
# production. Without it each process counts on its own (fine for `make run`, one web
# process); with DEBUG off and throttles on, a system check (mjweb.E002) asks for REDIS_URL.
REDIS_URL = env_str("REDIS_URL")
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}
MJWEB_THROTTLE = env_bool("MJWEB_THROTTLE", True)
# Staff pass an authenticator code after their password (mjweb.twofactor).
MJWEB_STAFF_2FA = env_bool("MJWEB_STAFF_2FA", not DEBUG)
OTP_TOTP_ISSUER = "mjweb"
# Fernet keys sealing the provider accounts' keys and tokens (mjweb.vault); the first seals.
MJWEB_ENCRYPTION_KEYS = env_list("MJWEB_ENCRYPTION_KEYS", [])


def _check_fernet_keys(keys: list[str]) -> None:
    from cryptography.fernet import Fernet

    for key in keys:
        try:
            Fernet(key.encode())
        except ValueError:
            raise ImproperlyConfigured(
                "MJWEB_ENCRYPTION_KEYS holds a key that is not a Fernet key (32 url-safe "
                "base64-encoded bytes; make one with `manage.py provider_account newkey`)."
            ) from None


_check_fernet_keys(MJWEB_ENCRYPTION_KEYS)


def _rate(name: str, default: str) -> str:
    value = env_str(name, default)
    if not re.fullmatch(r"\d+/\d*[smhd]", value):
        raise ImproperlyConfigured(f"{name} must be a rate like 5/h or 30/m; got {value!r}")
    return value


# group -> (what is counted, rate): "ip" the client's address (mjweb.throttle.client_ip,
# IPv6 by /64), "user" the account, "post:email" the address a reset is asked for.
MJWEB_RATES = {
    "signup": [("ip", _rate("MJWEB_SIGNUP_RATE", "5/h"))],
    "login": [("ip", _rate("MJWEB_LOGIN_RATE", "30/m"))],
    "password_reset": [
        ("ip", _rate("MJWEB_RESET_RATE", "5/h")),
        ("post:email", _rate("MJWEB_RESET_RATE_EMAIL", "3/h")),
    ],
    "verify": [("user", "3/h")],  # resending the verification link
    "otp": [("user", "10/m")],  # second-factor codes tried (django-otp slows them too)
    "submit": [
        ("user", _rate("MJWEB_SUBMIT_RATE", "30/m")),
        ("ip", _rate("MJWEB_SUBMIT_RATE_IP", "60/m")),
    ],
    # Every call of the JSON API, per personal token (jobs it submits count in "submit" too).
    "api": [("mjweb.tokens.rate_key", _rate("MJWEB_API_RATE", "120/m"))],
}
RATELIMIT_IP_META_KEY = "mjweb.throttle.client_ip"
# Django's own RedisCache increments atomically (INCR), though django-ratelimit lists only
# django-redis; a process-local cache is checked by mjweb.E002 instead of its E003.
SILENCED_SYSTEM_CHECKS += ["django_ratelimit.W001", "django_ratelimit.E003"]

# --- Background work (django-q2, ORM broker on the same database) -----------------------
# The ORM broker writes its queue row through our own connection, so an enqueue inside
# transaction.atomic() commits or rolls back with the job row. Delivery is at least once:
# every task is idempotent and the job's state machine, not the queue, owns retries.
#
# Three queues, each served by a cluster of its own (`manage.py worker` runs the three), so
# storing a finished job never waits behind polling, dispatches or previews:
# - "mjweb": dispatches, the poll chains, re-syncs, the sweeper, deletions;
# - "mjweb-ingest": a finished job's read and ingest (its result stored, the job ended);
# - "mjweb-previews": in-progress previews.
# A qcluster serves the queue named by Q_CLUSTER_NAME (the first when unset).
TASK_QUEUES = {"jobs": "mjweb", "ingest": "mjweb-ingest", "previews": "mjweb-previews"}
Q_CLUSTER = {
    "name": TASK_QUEUES["jobs"],
    "orm": "default",
    "workers": env_int("MJWEB_WORKERS", 4, minimum=1),
    "ALT_CLUSTERS": {
        TASK_QUEUES["ingest"]: {"workers": env_int("MJWEB_INGEST_WORKERS", 3, minimum=1)},
        TASK_QUEUES["previews"]: {"workers": env_int("MJWEB_PREVIEW_WORKERS", 1, minimum=1)},
    },
    "timeout": 90,
    "retry": 150,
    "max_attempts": 3,
    "ack_failures": True,
    "queue_limit": 8,
    "bulk": 1,
    "poll": 0.2,
    "catch_up": False,
    # Successful task results are not kept (failures always are): pruning the kept ones
    # reads them all after every task, which cost a third of the worker's time under load.
    # Our own audit (provider calls, credit entries) is the record that matters.
    "save_limit": env_int("MJWEB_TASK_SAVE_LIMIT", -1, minimum=-1),
    "label": "Background tasks",
}

# --- Providers --------------------------------------------------------------------------
# One of gallery.providers.registry.PROVIDERS (checked at start-up: gallery.checks).
MJ_PROVIDER = env_str("MJ_PROVIDER", "simulator")
MJ_HTTP_TIMEOUT = env_float("MJ_HTTP_TIMEOUT", 30.0, minimum=1.0)
MJ_POLL_INTERVAL = env_float(
    "MJ_POLL_INTERVAL", 1.5 if MJ_PROVIDER == "simulator" else 5.0, minimum=0.5
)
# Ticks one poll task runs before it queues the next (0: as many as django-q's task timeout
# safely allows at MJ_POLL_INTERVAL; see gallery.sync.ticks_per_link).
MJ_POLL_TICKS_PER_LINK = env_int("MJ_POLL_TICKS_PER_LINK", 0, minimum=0)
MJ_DISPATCH_MAX_ATTEMPTS = env_int("MJ_DISPATCH_MAX_ATTEMPTS", 5, minimum=1)
# Speed modes every user may choose unless their quota says otherwise.
MJ_ALLOWED_MODES = [
    mode
    for mode in env_list("MJ_ALLOWED_MODES", list(catalogue.MODE_NAMES))
    if mode in catalogue.MODE_NAMES
] or [catalogue.MODE_NAMES[0]]
# Credits (1 credit = $0.001 with the seeded prices): what a new account starts with, and
# the site's default limits (0 = no limit); a user's Quota in the admin overrides them.
MJ_WELCOME_CREDITS = env_int("MJ_WELCOME_CREDITS", 1000, minimum=0)
MJ_JOBS_PER_DAY = env_int("MJ_JOBS_PER_DAY", 200, minimum=0)
MJ_JOBS_AT_ONCE = env_int("MJ_JOBS_AT_ONCE", 10, minimum=0)
# Provider callbacks: sent with every submit so results arrive without waiting for a poll.
# The URL is SITE_URL + /hooks/<protocol>/<token>/; the token and PiAPI's secret are derived
# from SECRET_KEY unless given.
MJ_WEBHOOKS = env_bool("MJ_WEBHOOKS", True)
MJ_WEBHOOK_TOKEN = env_str("MJ_WEBHOOK_TOKEN")
PIAPI_WEBHOOK_SECRET = env_str("PIAPI_WEBHOOK_SECRET")
# PiAPI deliveries older than this (by their timestamp) are ignored.
MJ_WEBHOOK_MAX_AGE = env_int("MJ_WEBHOOK_MAX_AGE", 3600, minimum=60)
# Retention (gallery.retention, `manage.py prune`, daily): days; 0 keeps for ever.
MJWEB_KEEP_CALL_BODIES_DAYS = env_int("MJWEB_KEEP_CALL_BODIES_DAYS", 30, minimum=0)
MJWEB_KEEP_FAILED_TASKS_DAYS = env_int("MJWEB_KEEP_FAILED_TASKS_DAYS", 30, minimum=0)
# A job still unfinished past its deadline fails as timed out; its late success is still
# delivered if it comes within this many seconds.
MJ_LATE_SUCCESS_WINDOW = env_int("MJ_LATE_SUCCESS_WINDOW", 3600, minimum=0)
# A submit whose answer was lost is not sent again before this many seconds: its task, if it
# was made, may be found meanwhile (a webhook carrying our state).
MJ_SUBMIT_GRACE = env_int("MJ_SUBMIT_GRACE", 300, minimum=0)
# The provider answers GET /mj/task/list with its tasks and their `state` (a self-hosted
# midjourney-proxy): a lost submit is looked for there before it is sent again.
MJ_TASK_LIST = env_bool("MJ_TASK_LIST", False)
# How often the provider accounts with a console token have their bill imported
# (gallery.reconcile), in minutes.
MJ_RECONCILE_MINUTES = env_int("MJ_RECONCILE_MINUTES", 15, minimum=1)


# What one credit is worth in dollars, for the usage report's margin against provider cost.
def _dollars(name: str, default: str) -> Decimal:
    try:
        value = Decimal(env_str(name, default))
    except InvalidOperation:
        value = Decimal(-1)
    if not value.is_finite() or value < 0:
        raise ImproperlyConfigured(f"{name} must be an amount of dollars like 0.001")
    return value


MJWEB_CREDIT_USD = _dollars("MJWEB_CREDIT_USD", "0.001")
# The JSON API (gallery.api): how long an imageUrl link works, and how many times a
# notifyHook delivery is tried.
MJWEB_API_IMAGE_LINK_SECONDS = env_int("MJWEB_API_IMAGE_LINK_SECONDS", 86400, minimum=60)
MJ_NOTIFY_ATTEMPTS = env_int("MJ_NOTIFY_ATTEMPTS", 4, minimum=1)
# Credits bought through Stripe Checkout (billing.payments); hidden unless both are set.
STRIPE_SECRET_KEY = env_str("STRIPE_SECRET_KEY")
STRIPE_WEBHOOK_SECRET = env_str("STRIPE_WEBHOOK_SECRET")
# An unanswered Remix question is cancelled, and its credits released, after this long.
MJ_REMIX_EXPIRY = env_int("MJ_REMIX_EXPIRY", 86400, minimum=60)
# PiAPI has no batch read: this many reads of one tick run at once.
MJ_PIAPI_READS_AT_ONCE = env_int("MJ_PIAPI_READS_AT_ONCE", 6, minimum=1)
# A job a batched read leaves out is read on its own, at most this often, this many a tick.
MJ_SINGLE_READ_INTERVAL = env_int("MJ_SINGLE_READ_INTERVAL", 15, minimum=1)
MJ_SINGLE_READS_PER_TICK = env_int("MJ_SINGLE_READS_PER_TICK", 5, minimum=0)
# One provider account runs this many jobs and queues this many more (Midjourney fast:
# 3 and 10); beyond that our jobs wait locally, in submission order.
MJ_PROVIDER_RUNNING = env_int("MJ_PROVIDER_RUNNING", 3, minimum=1)
MJ_PROVIDER_QUEUED = env_int("MJ_PROVIDER_QUEUED", 10, minimum=0)
MJ_DEADLINES = {
    "fast": env_int("MJ_DEADLINE_FAST", 600, minimum=30),
    "turbo": env_int("MJ_DEADLINE_TURBO", 300, minimum=30),
    "relax": env_int("MJ_DEADLINE_RELAX", 3600, minimum=30),
}

# A self-hosted midjourney-proxy on a private address: images may be downloaded from the
# provider URLs' hosts and MJ_IMAGE_HOSTS though they resolve to private addresses, on any
# port (gallery.downloads.private_hosts_allowed). Off: only public addresses, ports 80/443.
MJ_PROVIDER_PRIVATE_NETWORK = env_bool("MJ_PROVIDER_PRIVATE_NETWORK", False)
COMETAPI_BASE_URL = env_str("COMETAPI_BASE_URL", "https://api.cometapi.com").rstrip("/")
COMETAPI_API_KEY = env_str("COMETAPI_API_KEY")
# Speed-mode path prefixes; unconfirmed upstream, so each one can be changed or emptied.
COMETAPI_MODE_PREFIXES = {
    "fast": env_str("COMETAPI_PREFIX_FAST", "/mj-fast", keep_empty=True),
    "relax": env_str("COMETAPI_PREFIX_RELAX", "/mj-relax", keep_empty=True),
    "turbo": env_str("COMETAPI_PREFIX_TURBO", "/mj-turbo", keep_empty=True),
}

PIAPI_BASE_URL = env_str("PIAPI_BASE_URL", "https://api.piapi.ai").rstrip("/")
PIAPI_API_KEY = env_str("PIAPI_API_KEY")
# Which of PiAPI's two Midjourney APIs to speak: the unified task API or the legacy v2 one.
PIAPI_API = env_choice("PIAPI_API", "unified", ("unified", "legacy"))

MJ_SIMULATOR_HOST = env_str("MJ_SIMULATOR_HOST", "127.0.0.1")
MJ_SIMULATOR_PORT = env_int("MJ_SIMULATOR_PORT", 8001, minimum=0)
MJ_SIMULATOR_DURATION = env_float("MJ_SIMULATOR_DURATION", 6.0, minimum=0.1)
MJ_SIMULATOR_API_KEY = env_str("MJ_SIMULATOR_API_KEY", "sim-local-key")
# Faults the simulator injects, "k=v,k=v" (see simulator/faults.py); empty: none.
MJ_SIMULATOR_FAULTS = env_str("MJ_SIMULATOR_FAULTS", "")
# The simulator serves both protocols; this picks the adapter that drives it.
MJ_SIMULATOR_PROTOCOL = env_choice("MJ_SIMULATOR_PROTOCOL", "cometapi", ("cometapi", "piapi"))

# --- Push to the browser (gallery.push) --------------------------------------------------
# A page with running cards keeps a server-sent-events stream open (under ASGI) that wakes
# its live poll as soon as a job changes; the two-second poll stays as the fallback.
MJ_PUSH = env_bool("MJ_PUSH", True)
# A comment line after this many idle seconds, so proxies keep the stream open.
MJ_PUSH_HEARTBEAT = env_float("MJ_PUSH_HEARTBEAT", 15.0, minimum=1.0)
# A stream ends after this long and the browser opens a new one: no worker is held for good.
MJ_PUSH_STREAM_SECONDS = env_float("MJ_PUSH_STREAM_SECONDS", 300.0, minimum=5.0)
# Streams one user may hold per web process; more tabs keep to the poll. Below the six
# connections a browser opens to one host over HTTP/1.1, so the other requests still go.
MJ_PUSH_STREAMS_PER_USER = env_int("MJ_PUSH_STREAMS_PER_USER", 4, minimum=1)
# Without PostgreSQL's notifications (SQLite), a stream reads its owner's running jobs this
# often (seconds).
MJ_PUSH_CHECK_INTERVAL = 0.25

# --- Images -----------------------------------------------------------------------------
# Hosts images may be downloaded from, beyond the configured provider's own host.
MJ_IMAGE_HOSTS = env_list("MJ_IMAGE_HOSTS", [])
MJ_INGEST_MAX_BYTES = env_int("MJ_INGEST_MAX_BYTES", 30 * 1024 * 1024, minimum=1024)
MJ_INGEST_TIMEOUT = env_float("MJ_INGEST_TIMEOUT", 60.0, minimum=1.0)
# The largest picture Midjourney makes is a v5 Upscale (4x), 4096x4096 (16.8 MP); 24 MP
# leaves room and keeps an ingest within 300 MB (a WebP gets half: gallery.imaging).
MJ_IMAGE_MAX_PIXELS = env_int("MJ_IMAGE_MAX_PIXELS", 24_000_000, minimum=1_000_000)
# The user's own pictures (image prompts, Blend, Describe): the largest file taken, and how
# long the link a provider fetches one from (PiAPI takes links, not bytes) stays valid.
MJWEB_UPLOAD_MAX_BYTES = env_int("MJWEB_UPLOAD_MAX_BYTES", 10 * 1024 * 1024, minimum=1024)
MJWEB_REFERENCE_LINK_SECONDS = env_int("MJWEB_REFERENCE_LINK_SECONDS", 86_400, minimum=60)

# LOG_FORMAT=json: one JSON object per line (time, level, logger, message, and an exception's
# traceback), for a log shipper; "plain" (the default) for people.
LOG_FORMAT = env_choice("LOG_FORMAT", "plain", ("plain", "json"))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    # The webhook path token never reaches a log (mjweb.logs).
    "filters": {"redact": {"()": "mjweb.logs.RedactHookTokens"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["redact"],
        }
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "httpx": {"level": "WARNING"},
        # django-q2 logs as "django-q": two INFO lines per task unless asked for.
        "django-q": {"level": env_str("MJWEB_TASK_LOG_LEVEL", "WARNING")},
        # Each task's CPU and wall time (gallery.tasks.cost_log), with django-q's lines.
        "gallery.tasks.cost": {"level": env_str("MJWEB_TASK_LOG_LEVEL", "WARNING")},
        # Lockouts are logged as warnings; every login and reset would be INFO noise.
        "axes": {"level": "WARNING"},
    },
}

# --- Error reports ----------------------------------------------------------------------
# SENTRY_DSN sends unhandled errors (web requests and worker tasks) to Sentry or a
# compatible service (GlitchTip); nothing is sent without it. No personal data: users are
# identified by id only.
SENTRY_DSN = env_str("SENTRY_DSN", "")
if SENTRY_DSN:
    import sentry_sdk

    from mjweb.logs import scrub_event

    sentry_sdk.init(
        dsn=SENTRY_DSN,
        environment=env_str("SENTRY_ENVIRONMENT", "production"),
        traces_sample_rate=env_float("SENTRY_TRACES_SAMPLE_RATE", 0.0, minimum=0.0),
        send_default_pii=False,
        before_send=scrub_event,
    )
