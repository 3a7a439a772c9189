# Strata service image. The same image runs every role:
#   strata serve               API + in-process worker (embedded default)
#   strata serve --no-worker   API only
#   strata worker              worker only
#   strata migrate             upgrade the database schema to head
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /srv/strata

COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY migrations ./migrations
RUN pip install -e . \
    && useradd --system --home-dir /srv/strata --shell /usr/sbin/nologin strata \
    && mkdir -p /var/lib/strata && chown strata /var/lib/strata

USER strata
ENV STRATA_HOST=0.0.0.0 \
    STRATA_PORT=8000 \
    STRATA_DATABASE_URL=sqlite+aiosqlite:////var/lib/strata/strata.db
VOLUME ["/var/lib/strata"]
EXPOSE 8000

HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)" || exit 1

ENTRYPOINT ["strata"]
CMD ["serve"]
