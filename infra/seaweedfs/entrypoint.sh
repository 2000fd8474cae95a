#!/bin/sh
# Starts SeaweedFS in one process (master, volume server, filer, S3 gateway on 8333) with the S3
# identities s3-identities.sh writes from the environment (an admin key for bucket creation, and
# one scoped key each for MLflow's artifact proxy, the training worker and DVC readers). With a
# config file the S3 gateway rejects unsigned requests.
set -eu

config=/tmp/w2s-s3.json
umask 077
sh /etc/w2s/s3-identities.sh > "$config"

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
