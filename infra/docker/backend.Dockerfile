# syntax=docker/dockerfile:1.7
# Surge's backend image. Build from the repository root (the context must hold uv.lock):
#   docker build -f infra/docker/backend.Dockerfile -t surge/backend .
# It runs `surge serve --host 0.0.0.0`; migrations are a separate command of the same image:
#   docker run --rm -e SURGE_DATABASE_URL=... surge/backend surge migrate
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: a virtual environment with exactly the packages uv.lock pins ---------------------------
FROM ${PYTHON_IMAGE} AS build
# uv from PyPI, at least the version that wrote uv.lock (lock revision 5).
ARG UV_VERSION=0.13.9
RUN pip install --no-cache-dir "uv==${UV_VERSION}"
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app
# Dependencies first: this layer is rebuilt only when the lock changes. The SDK's pyproject.toml is
# there because it is a member of the uv workspace; the SDK itself is not installed.
COPY pyproject.toml uv.lock README.md ./
COPY sdk_python/pyproject.toml sdk_python/README.md sdk_python/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-default-groups --no-install-project --no-install-workspace
# Then Surge itself. It stays an editable install rooted at /app: `surge migrate` finds alembic.ini and
# migrations/ next to the backend package (backend/db/migrate.py), not in site-packages.
COPY alembic.ini ./
COPY migrations migrations
COPY backend backend
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-default-groups

# --- runtime: the environment and the code, owned by root, run by an unprivileged user -------------
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 surge \
    && useradd --system --uid 10001 --gid surge --home-dir /nonexistent --no-create-home \
       --shell /usr/sbin/nologin surge \
    && mkdir -p /var/lib/surge && chown surge:surge /var/lib/surge
COPY --from=build /app /app
WORKDIR /app
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SURGE_PORT=8000 \
    SURGE_DATA_DIR=/var/lib/surge
USER 10001:10001
EXPOSE 8000
# /healthz: the process is alive (/readyz, which also checks the database, Redis and the workers, is
# for load balancers and Kubernetes readiness, not for restarting a container).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD python -c "import os, urllib.request as r; r.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('SURGE_PORT', '8000'), timeout=2)"
CMD ["surge", "serve", "--host", "0.0.0.0"]
