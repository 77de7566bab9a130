#!/bin/sh
# paygate container entrypoint. PAYGATE_SERVICE (set by the Dockerfile) picks the service.
#   serve        uvicorn on 0.0.0.0:<the service's port> (the default command)
#   migrate      alembic upgrade head for the service's schema
#   healthcheck [PATH]  exit 0 when GET PATH (default /health) answers 200
#   anything else is run as given (e.g. `python -c ...`)
set -eu

home="${PAYGATE_HOME:-/app}"
scheme=http
service="${PAYGATE_SERVICE:?PAYGATE_SERVICE is not set}"
# What the service is (its ASGI app, port and uvicorn flags) comes from the one service registry,
# paygate_common.services; nothing about a service is repeated here.
if ! registry="$(python -m paygate_common.services shell "$service" 2>&1)"; then
  echo "paygate-entrypoint: unknown PAYGATE_SERVICE '$service' ($registry)" >&2
  exit 64
fi
eval "$registry"
# TLS on the public edge: the gateway serves HTTPS (and HSTS) when a certificate and its key are
# configured.
if [ "$folder" = gateway ] && [ -n "${GATEWAY_TLS_CERT_FILE:-}" ] && [ -n "${GATEWAY_TLS_KEY_FILE:-}" ]; then
  flags="$flags --ssl-certfile $GATEWAY_TLS_CERT_FILE --ssl-keyfile $GATEWAY_TLS_KEY_FILE"
  scheme=https
fi

command="${1:-serve}"
[ "$#" -gt 0 ] && shift

case "$command" in
  serve)
    # $flags is split into words on purpose.
    # shellcheck disable=SC2086
    exec uvicorn "$app" --factory --host 0.0.0.0 --port "$port" \
      --no-access-log --timeout-graceful-shutdown 20 $flags "$@"
    ;;
  migrate)
    if [ ! -f "$home/$folder/alembic.ini" ]; then
      echo "paygate-entrypoint: $service has no migrations"
      exit 0
    fi
    cd "$home/$folder"
    exec alembic -c alembic.ini upgrade head
    ;;
  healthcheck)
    # The slim image has no curl; Python is there anyway. urlopen raises on 4xx/5xx. Over TLS
    # the certificate names the public host, not 127.0.0.1: this local probe does not verify.
    exec python -c "import ssl, sys, urllib.request
try:
    urllib.request.urlopen('$scheme://127.0.0.1:$port${1:-/health}', timeout=4,
                           context=ssl._create_unverified_context())
except Exception as exc:
    sys.exit(f'unhealthy: {exc}')"
    ;;
  *)
    exec "$command" "$@"
    ;;
esac
