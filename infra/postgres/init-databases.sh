#!/bin/sh
# Runs once, when the postgres container starts on an empty data volume
# (mounted into /docker-entrypoint-initdb.d). Creates a login role and a database owned by it for
# each service: `mlflow` for the MLflow tracking server, `prefect` for the Prefect server.
# Names and passwords come from the container's environment (infra/.env); psql quotes them.
set -e

: "${MLFLOW_DB_USER:?MLFLOW_DB_USER is not set}"
: "${MLFLOW_DB_PASSWORD:?MLFLOW_DB_PASSWORD is not set}"
: "${PREFECT_DB_USER:?PREFECT_DB_USER is not set}"
: "${PREFECT_DB_PASSWORD:?PREFECT_DB_PASSWORD is not set}"

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "${POSTGRES_DB:-$POSTGRES_USER}" \
  -v mlflow_user="$MLFLOW_DB_USER" -v mlflow_password="$MLFLOW_DB_PASSWORD" \
  -v prefect_user="$PREFECT_DB_USER" -v prefect_password="$PREFECT_DB_PASSWORD" <<'SQL'
CREATE ROLE :"mlflow_user" LOGIN PASSWORD :'mlflow_password';
CREATE DATABASE mlflow OWNER :"mlflow_user";
CREATE ROLE :"prefect_user" LOGIN PASSWORD :'prefect_password';
CREATE DATABASE prefect OWNER :"prefect_user";
SQL
