# syntax=docker/dockerfile:1.7
# The simulated SGLang worker (loadtests/sglang_sim), for running the stack without GPUs, plus the
# sglang-router that uv.lock pins (CPU only). Build from the repository root:
#   docker build -f infra/docker/sglang-sim.Dockerfile -t surge/sglang-sim .
#   docker run --rm -p 30000:30000 surge/sglang-sim --host 0.0.0.0 --port 30000 --enable-metrics
#   docker run --rm --entrypoint python surge/sglang-sim -m sglang_router.launch_router --help
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG UV_VERSION=0.13.9
RUN pip install --no-cache-dir "uv==${UV_VERSION}"
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
COPY sdk_python/pyproject.toml sdk_python/README.md sdk_python/
# The project's dependencies (uvicorn, msgspec, prometheus-client, httpx) and the `loadtests` group
# (sglang-router); not the backend package: the simulator never imports it.
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-default-groups --group loadtests --no-install-project --no-install-workspace

FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 sim \
    && useradd --system --uid 10001 --gid sim --home-dir /nonexistent --no-create-home \
       --shell /usr/sbin/nologin sim
COPY --from=build /app/.venv /app/.venv
WORKDIR /app
COPY loadtests/__init__.py loadtests/__init__.py
COPY loadtests/sglang_sim loadtests/sglang_sim
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
EXPOSE 30000
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=3 \
    CMD python -c "import urllib.request as r; r.urlopen('http://127.0.0.1:30000/health', timeout=2)"
ENTRYPOINT ["python", "-m", "loadtests.sglang_sim"]
CMD ["--host", "0.0.0.0", "--port", "30000", "--enable-metrics", "--enable-cache-report"]
