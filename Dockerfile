# mjweb: web by default (gunicorn supervising uvicorn workers: the site is served through
# ASGI, for the push stream); run the worker from the same image with
#   docker run ... mjweb python manage.py worker
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MJWEB_DATA_DIR=/data \
    STATIC_ROOT=/app/staticfiles \
    WEB_CONCURRENCY=3

WORKDIR /app

RUN groupadd --system mjweb && useradd --system --gid mjweb --home /app --shell /usr/sbin/nologin mjweb

COPY pyproject.toml ./
RUN pip install --upgrade pip && pip install .

COPY . .

# collectstatic needs settings to load: a throwaway key for this step only.
RUN SECRET_KEY=collectstatic-only python manage.py collectstatic --no-input \
    && mkdir -p /data && chown -R mjweb:mjweb /data

USER mjweb
VOLUME ["/data"]
EXPOSE 8000

# WEB_CONCURRENCY (gunicorn's own variable) is the number of web processes.
CMD ["gunicorn", "mjweb.asgi:application", "--worker-class", "mjweb.workers.UvicornWorker", "--bind", "0.0.0.0:8000", "--access-logfile", "-"]
