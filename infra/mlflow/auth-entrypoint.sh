#!/bin/sh
# Writes MLflow's basic-auth config from the environment, then runs the given command (the
# tracking server with --app-name basic-auth). The admin account is created on first start.
# A checked login is cached for MLFLOW_AUTH_CACHE_TTL_SECONDS (default 60): without it every request
# pays a deliberately slow password hash; a password changed through MLflow's API clears the cache.
set -eu
: "${MLFLOW_ADMIN_USER:?set MLFLOW_ADMIN_USER}"
: "${MLFLOW_ADMIN_PASSWORD:?set MLFLOW_ADMIN_PASSWORD}"
: "${MLFLOW_AUTH_DATABASE_URI:?set MLFLOW_AUTH_DATABASE_URI}"
export MLFLOW_AUTH_CONFIG_PATH=/tmp/w2s-basic-auth.ini
umask 077
cat > "$MLFLOW_AUTH_CONFIG_PATH" <<INI
[mlflow]
default_permission = READ
database_uri = ${MLFLOW_AUTH_DATABASE_URI}
admin_username = ${MLFLOW_ADMIN_USER}
admin_password = ${MLFLOW_ADMIN_PASSWORD}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
auth_cache_ttl_seconds = ${MLFLOW_AUTH_CACHE_TTL_SECONDS:-60}
INI
exec "$@"
