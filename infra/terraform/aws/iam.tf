# What elliptio needs and nothing more: list the bucket under its prefix, read and
# write objects there, finish or abort its own multipart uploads, use the bucket
# key. Committed data can never be deleted, re-locked or unlocked by elliptio:
# the explicit Deny wins over any Allow attached to the same principal elsewhere.
data "aws_iam_policy_document" "elliptio" {
  statement {
    sid       = "ListArtifactPrefix"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.artifacts.arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [var.storage_prefix, "${var.storage_prefix}/*"]
    }
  }

  statement {
    sid       = "BucketMetadata"
    effect    = "Allow"
    actions   = ["s3:GetBucketLocation", "s3:ListBucketMultipartUploads"]
    resources = [aws_s3_bucket.artifacts.arn]
  }

  statement {
    sid    = "ReadWriteArtifacts"
    effect = "Allow"
    actions = [
      "s3:GetObject",
      "s3:GetObjectVersion",
      "s3:PutObject",
      "s3:AbortMultipartUpload",
      "s3:ListMultipartUploadParts",
    ]
    resources = ["${aws_s3_bucket.artifacts.arn}/${var.storage_prefix}/*"]
  }

  statement {
    sid       = "UseBucketKey"
    effect    = "Allow"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.artifacts.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${var.aws_region}.amazonaws.com"]
    }
  }

  statement {
    sid    = "NeverDeleteOrUnlockCommittedData"
    effect = "Deny"
    actions = [
      "s3:DeleteObject",
      "s3:DeleteObjectVersion",
      "s3:DeleteObjectTagging",
      "s3:DeleteObjectVersionTagging",
      "s3:BypassGovernanceRetention",
      "s3:PutObjectRetention",
      "s3:PutObjectLegalHold",
      "s3:PutBucketObjectLockConfiguration",
      "s3:PutBucketVersioning",
      "s3:PutLifecycleConfiguration",
      "s3:PutBucketPolicy",
      "s3:DeleteBucketPolicy",
      "s3:DeleteBucket",
    ]
    resources = [
      aws_s3_bucket.artifacts.arn,
      "${aws_s3_bucket.artifacts.arn}/*",
    ]
  }
}

resource "aws_iam_policy" "elliptio" {
  name        = "elliptio-${var.bucket_name}"
  description = "elliptio: list/get/put artifacts in s3://${var.bucket_name}/${var.storage_prefix}, never delete"
  policy      = data.aws_iam_policy_document.elliptio.json
}

data "aws_iam_policy_document" "elliptio_assume" {
  count = length(var.elliptio_trusted_principal_arns) > 0 ? 1 : 0

  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "AWS"
      identifiers = var.elliptio_trusted_principal_arns
    }
  }
}

resource "aws_iam_role" "elliptio" {
  count = length(var.elliptio_trusted_principal_arns) > 0 ? 1 : 0

  name                 = "elliptio-${var.bucket_name}"
  assume_role_policy   = data.aws_iam_policy_document.elliptio_assume[0].json
  max_session_duration = 43200
}

resource "aws_iam_role_policy_attachment" "elliptio" {
  count = length(var.elliptio_trusted_principal_arns) > 0 ? 1 : 0

  role       = aws_iam_role.elliptio[0].name
  policy_arn = aws_iam_policy.elliptio.arn
}
