#!/bin/sh
# Starts SeaweedFS in one process (master, volume server, filer, S3 gateway on 8333) with a single
# S3 identity whose keys come from S3_ACCESS_KEY / S3_SECRET_KEY. With a config file the S3
# gateway rejects unsigned requests. Keys must not contain `"` or `\` (they go into JSON).
set -eu

: "${S3_ACCESS_KEY:?S3_ACCESS_KEY is not set}"
: "${S3_SECRET_KEY:?S3_SECRET_KEY is not set}"

config=/tmp/w2s-s3.json
umask 077
cat > "$config" <<JSON
{
  "identities": [
    {
      "name": "w2s",
      "credentials": [{"accessKey": "${S3_ACCESS_KEY}", "secretKey": "${S3_SECRET_KEY}"}],
      "actions": ["Admin", "Read", "Write", "List", "Tagging"]
    }
  ]
}
JSON

# No volume preallocation: each bucket is its own collection, and preallocating its volumes
# would reserve gigabytes of disk up front.
exec weed server \
  -dir=/data \
  -volume.max=0 \
  -master.volumeSizeLimitMB=1024 \
  -s3 \
  -s3.port=8333 \
  -s3.config="$config" \
  "$@"
