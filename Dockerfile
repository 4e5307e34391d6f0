# mjweb: one image for every role, the command picks the role (docker-compose.yml runs them all):
#   (default command)                     the web: gunicorn supervising uvicorn workers on
#                                         mjweb.asgi; gunicorn.conf.py reads GUNICORN_BIND or
#                                         PORT, WEB_CONCURRENCY, GUNICORN_TIMEOUT, GUNICORN_ACCESS_LOG
#   python manage.py worker               the background worker (every queue; --queue for some)
#   python manage.py migrate --no-input   once per release, before the web and the worker
#   python -m simulator --host 0.0.0.0    the fake provider, for a trial
# The web and the worker must share one /data (pictures): mount the same volume into both.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MJWEB_DATA_DIR=/data \
    STATIC_ROOT=/app/staticfiles

WORKDIR /app

# A fixed numeric id, so that an orchestrator can check it is not root (runAsNonRoot) and a
# bind-mounted /data can be given to it (chown 10001:10001).
RUN groupadd --system --gid 10001 mjweb \
    && useradd --system --uid 10001 --gid mjweb --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin mjweb

# Dependencies first, in a layer that changes only with the lock (`make lock`): exact
# versions, every file checked against its hash, wheels only (slim has no compiler).
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes --only-binary :all: -r requirements.lock

COPY . .

# The project itself: its dependencies are in already, and setuptools (from the lock) builds
# it here, so nothing unpinned is fetched. collectstatic loads the settings, which need a
# key: a throwaway one for this step only. The code stays root's and read-only to mjweb;
# only /data is its own (a new named volume mounted there starts with this ownership).
RUN pip install --no-cache-dir --no-deps --no-build-isolation --no-index . \
    && rm -rf build ./*.egg-info \
    && SECRET_KEY=collectstatic-only python manage.py collectstatic --no-input \
    && mkdir -p /data \
    && chown -R mjweb:mjweb /data

# No VOLUME instruction: with one, every container started without a mount of its own
# would silently get a fresh anonymous /data, and a picture the worker stored would be
# missing on the web. The volume is declared where it is shared: docker-compose.yml mounts
# one named volume into the web and the worker (with `docker run`, pass the same -v to both).

USER 10001:10001
EXPOSE 8000

# Liveness: /healthz answers without the database. Python's urllib, as slim has no curl;
# no proxy, whatever the environment says. /readyz (database, migrations, workers) is for a
# load balancer's readiness check; a worker container checks itself with `manage.py ready`.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; r.build_opener(r.ProxyHandler({})).open('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=4)"]

# gunicorn.conf.py (read from /app) supplies the bind address, the worker class and the
# number of processes (WEB_CONCURRENCY, default 2 per CPU + 1, at most 8).
CMD ["gunicorn", "mjweb.asgi:application"]
