#!/bin/sh
# Creates (or re-keys) elliptio's account on the Versity S3 Gateway. Run by the
# s3-users service with the root credentials in ADMIN_ACCESS_KEY_ID /
# ADMIN_SECRET_ACCESS_KEY / ADMIN_ENDPOINT_URL, which `versitygw admin` reads.
# Role "user" grants nothing by itself: the bucket stays owned by root and
# s3-bucket.sh gives this account list/get/put through the bucket policy.
set -eu

: "${ELLIPTIO_S3_ACCESS_KEY:?}" "${ELLIPTIO_S3_SECRET_KEY:?}"
vgw=$(command -v versitygw || echo /app/versitygw)

if "$vgw" admin list-users | awk 'NR > 2 { print $1 }' | grep -qx "$ELLIPTIO_S3_ACCESS_KEY"; then
  "$vgw" admin update-user --access "$ELLIPTIO_S3_ACCESS_KEY" \
    --secret "$ELLIPTIO_S3_SECRET_KEY" --role user
  echo "updated S3 account $ELLIPTIO_S3_ACCESS_KEY"
else
  "$vgw" admin create-user --access "$ELLIPTIO_S3_ACCESS_KEY" \
    --secret "$ELLIPTIO_S3_SECRET_KEY" --role user
  echo "created S3 account $ELLIPTIO_S3_ACCESS_KEY"
fi
