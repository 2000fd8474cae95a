#!/bin/sh
# One-shot job: creates each bucket in $BUCKETS on the S3 endpoint in $AWS_ENDPOINT_URL unless it
# already exists. Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
set -eu

: "${AWS_ENDPOINT_URL:?AWS_ENDPOINT_URL is not set}"
: "${BUCKETS:?BUCKETS is not set}"

for bucket in $BUCKETS; do
  if aws s3api head-bucket --bucket "$bucket" >/dev/null 2>&1; then
    echo "bucket $bucket exists"
  else
    aws s3api create-bucket --bucket "$bucket" >/dev/null
    echo "bucket $bucket created"
  fi
done
