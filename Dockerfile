# syntax=docker/dockerfile:1.7
# One image recipe for every paygate service:
#   docker build --build-arg SERVICE=user-service -t paygate/user-service .
# SERVICE is the folder name (gateway, user-service, payment-service, notification-service,
# order-service); deploy/docker-entrypoint.sh knows each one's app, port and uvicorn flags.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build
ARG SERVICE=user-service
ARG UV_VERSION=0.13.9

# uv's own image is not reachable from every build network; PyPI is.
RUN pip install --no-cache-dir "uv==${UV_VERSION}"

# The venv is copied to the runtime stage at the same path, so its scripts' shebangs still work.
# Non-editable installs put the service and paygate-common inside the venv: the source tree
# stays behind in this stage.
ENV UV_PROJECT_ENVIRONMENT=/app/.venv \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11

WORKDIR /src
COPY . .
# The distribution name is in the member's pyproject.toml (`paygate-gateway`, `user-service`, ...).
RUN --mount=type=cache,target=/root/.cache/uv \
    test -f "${SERVICE}/pyproject.toml" || { echo "no such service folder: ${SERVICE}" >&2; exit 1; }; \
    dist="$(python -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["name"])' "${SERVICE}/pyproject.toml")" \
    && uv sync --frozen --no-dev --no-editable --package "${dist}"

# Alembic runs from the service folder: keep only its ini and migrations.
RUN mkdir -p "/app/${SERVICE}" \
    && if [ -f "${SERVICE}/alembic.ini" ]; then \
         cp "${SERVICE}/alembic.ini" "/app/${SERVICE}/" && cp -r "${SERVICE}/migrations" "/app/${SERVICE}/"; \
       fi

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ARG SERVICE=user-service

LABEL org.opencontainers.image.title="paygate ${SERVICE}"

RUN groupadd --system --gid 10001 paygate \
    && useradd --system --uid 10001 --gid paygate --home-dir /app --shell /usr/sbin/nologin paygate \
    && mkdir -p /var/lib/paygate && chown paygate:paygate /var/lib/paygate

COPY --from=build /app /app
COPY --chmod=0755 deploy/docker-entrypoint.sh /usr/local/bin/paygate-entrypoint

ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PAYGATE_SERVICE=${SERVICE} \
    PAYGATE_STATE_DIR=/var/lib/paygate

WORKDIR /app/${SERVICE}
USER 10001:10001
# No EXPOSE: the port is the service's own (gateway 8000, user 8001, payment 8002,
# notification 8004, order 8008), chosen in the entrypoint.

# Liveness only: /ready (database, Kafka, Redis) belongs to the orchestrator's readiness probe.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["paygate-entrypoint", "healthcheck"]

ENTRYPOINT ["paygate-entrypoint"]
CMD ["serve"]
