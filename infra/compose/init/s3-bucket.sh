#!/bin/bash
# Creates elliptio's bucket with Object Lock (which turns versioning on), sets the
# default retention and the least-privilege bucket policy for elliptio's account:
# list the bucket, get and put objects under the prefix, finish or abort its own
# multipart uploads. No DeleteObject, no DeleteObjectVersion, no retention bypass.
# Run by the s3-bucket service as the gateway's root account; idempotent.
set -euo pipefail

bucket=${ELLIPTIO_S3_BUCKET:?}
prefix=${ELLIPTIO_S3_PREFIX:?}
account=${ELLIPTIO_S3_ACCESS_KEY:?}
mode=${S3_OBJECT_LOCK_MODE:-GOVERNANCE}
days=${S3_OBJECT_LOCK_DAYS:-30}

case "$mode" in GOVERNANCE | COMPLIANCE) ;; *)
  echo "S3_OBJECT_LOCK_MODE must be GOVERNANCE or COMPLIANCE, not '$mode'" >&2
  exit 1
  ;;
esac
if ! [[ "$days" =~ ^[0-9]+$ ]]; then
  echo "S3_OBJECT_LOCK_DAYS must be a whole number of days, not '$days'" >&2
  exit 1
fi

if aws s3api head-bucket --bucket "$bucket" 2>/dev/null; then
  echo "bucket $bucket exists"
else
  aws s3api create-bucket --bucket "$bucket" --object-lock-enabled-for-bucket
  echo "created bucket $bucket with Object Lock"
fi
aws s3api put-bucket-versioning --bucket "$bucket" \
  --versioning-configuration Status=Enabled

if [ "$days" -gt 0 ]; then
  aws s3api put-object-lock-configuration --bucket "$bucket" --object-lock-configuration \
    "{\"ObjectLockEnabled\":\"Enabled\",\"Rule\":{\"DefaultRetention\":{\"Mode\":\"$mode\",\"Days\":$days}}}"
  echo "default retention: $mode, $days days"
fi

cat >/tmp/policy.json <<JSON
{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "ElliptioListBucket",
      "Effect": "Allow",
      "Principal": {"AWS": ["$account"]},
      "Action": ["s3:ListBucket", "s3:ListBucketMultipartUploads", "s3:GetBucketLocation"],
      "Resource": ["arn:aws:s3:::$bucket"]
    },
    {
      "Sid": "ElliptioReadWriteObjects",
      "Effect": "Allow",
      "Principal": {"AWS": ["$account"]},
      "Action": ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
      "Resource": ["arn:aws:s3:::$bucket/$prefix/*"]
    }
  ]
}
JSON
aws s3api put-bucket-policy --bucket "$bucket" --policy file:///tmp/policy.json
echo "bucket policy: $account may list, get and put under s3://$bucket/$prefix/, not delete"
