#!/bin/sh
# Prints the S3 gateway's identities (SeaweedFS's -s3.config JSON) from the environment: one key
# pair per job, each allowed only what that job does, on only the bucket it needs.
#   admin   S3_ADMIN_ACCESS_KEY / S3_ADMIN_SECRET_KEY    every action on every bucket: creating
#           the buckets (the create-buckets job) and operators; handed to no service or user
#   mlflow  S3_MLFLOW_ACCESS_KEY / S3_MLFLOW_SECRET_KEY  read, write, list `mlflow` only: the
#           tracking server's artifact proxy (clients reach artifacts through MLflow's auth)
#   worker  S3_WORKER_ACCESS_KEY / S3_WORKER_SECRET_KEY  read, write, list `dvc` only: the
#           training worker's `dvc push` / `dvc pull`
#   reader  S3_READER_ACCESS_KEY / S3_READER_SECRET_KEY  read and list `dvc` only: the key handed
#           to developers for `dvc pull` and `w2s lineage --fetch-weak-labels`
# Keys must not contain `"` or `\` (they go into JSON). Kubernetes: see infra/README.md.
set -eu

for var in S3_ADMIN_ACCESS_KEY S3_ADMIN_SECRET_KEY S3_MLFLOW_ACCESS_KEY S3_MLFLOW_SECRET_KEY \
           S3_WORKER_ACCESS_KEY S3_WORKER_SECRET_KEY S3_READER_ACCESS_KEY S3_READER_SECRET_KEY; do
  eval "value=\${$var:-}"
  if [ -z "$value" ]; then
    echo "error: $var is not set" >&2
    exit 1
  fi
  case "$value" in
    *'"'* | *'\'*) echo "error: $var holds a quote or a backslash" >&2; exit 1 ;;
  esac
done

cat <<JSON
{
  "identities": [
    {
      "name": "admin",
      "credentials": [{"accessKey": "${S3_ADMIN_ACCESS_KEY}", "secretKey": "${S3_ADMIN_SECRET_KEY}"}],
      "actions": ["Admin", "Read", "Write", "List", "Tagging"]
    },
    {
      "name": "mlflow",
      "credentials": [{"accessKey": "${S3_MLFLOW_ACCESS_KEY}", "secretKey": "${S3_MLFLOW_SECRET_KEY}"}],
      "actions": ["Read:mlflow", "Write:mlflow", "List:mlflow"]
    },
    {
      "name": "worker",
      "credentials": [{"accessKey": "${S3_WORKER_ACCESS_KEY}", "secretKey": "${S3_WORKER_SECRET_KEY}"}],
      "actions": ["Read:dvc", "Write:dvc", "List:dvc"]
    },
    {
      "name": "reader",
      "credentials": [{"accessKey": "${S3_READER_ACCESS_KEY}", "secretKey": "${S3_READER_SECRET_KEY}"}],
      "actions": ["Read:dvc", "List:dvc"]
    }
  ]
}
JSON
