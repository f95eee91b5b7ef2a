# The indexer: writers that hold storage credentials only (ELLIPTIO_CATALOG_URL=none)
# write files and sidecars; S3 announces each new sidecar (.elliptio/metadata.json)
# to this Lambda function, which adds its record to the catalog with
# elliptio.index_event (idempotent; the same checks as `elliptio reindex`).
#
# Off until you build the package (see indexer/README.md) and set indexer_package.
# Its role may read objects under the store's prefix and nothing else in S3: no
# list, no write, no delete. The catalog URL (with the database password) lives in
# Secrets Manager, never in the function's environment.

locals {
  indexer      = var.indexer_package != "" ? 1 : 0
  indexer_name = "elliptio-indexer-${var.bucket_name}"
}

resource "aws_secretsmanager_secret" "catalog_url" {
  count       = local.indexer
  name        = "${local.indexer_name}-catalog-url"
  description = "ELLIPTIO_CATALOG_URL of the elliptio indexer (holds the database password)"
}

resource "aws_secretsmanager_secret_version" "catalog_url" {
  count         = local.indexer
  secret_id     = aws_secretsmanager_secret.catalog_url[0].id
  secret_string = local.catalog_url
}

resource "aws_cloudwatch_log_group" "indexer" {
  count             = local.indexer
  name              = "/aws/lambda/${local.indexer_name}"
  retention_in_days = 30
}

data "aws_iam_policy_document" "indexer_assume" {
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "indexer" {
  count = local.indexer

  statement {
    sid       = "ReadSidecarsAndFiles"
    effect    = "Allow"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.artifacts.arn}/${var.storage_prefix}/*"]
  }

  statement {
    sid       = "UseBucketKey"
    effect    = "Allow"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.artifacts.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${var.aws_region}.amazonaws.com"]
    }
  }

  statement {
    sid       = "ReadCatalogUrl"
    effect    = "Allow"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [aws_secretsmanager_secret.catalog_url[0].arn]
  }

  statement {
    sid       = "WriteOwnLogs"
    effect    = "Allow"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.indexer[0].arn}:*"]
  }
}

resource "aws_iam_role" "indexer" {
  count              = local.indexer
  name               = local.indexer_name
  assume_role_policy = data.aws_iam_policy_document.indexer_assume.json
}

resource "aws_iam_role_policy" "indexer" {
  count  = local.indexer
  name   = local.indexer_name
  role   = aws_iam_role.indexer[0].id
  policy = data.aws_iam_policy_document.indexer[0].json
}

# In a VPC (subnets whose NAT gateway's address is in atlas_access_cidrs) so that
# Atlas, which admits only listed networks, lets the function in; that also needs
# AWSLambdaVPCAccessExecutionRole on the role.
resource "aws_iam_role_policy_attachment" "indexer_vpc" {
  count      = local.indexer == 1 && length(var.indexer_subnet_ids) > 0 ? 1 : 0
  role       = aws_iam_role.indexer[0].name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
}

resource "aws_lambda_function" "indexer" {
  count            = local.indexer
  function_name    = local.indexer_name
  role             = aws_iam_role.indexer[0].arn
  runtime          = "python3.12"
  handler          = "indexer.handler"
  filename         = var.indexer_package
  source_code_hash = filebase64sha256(var.indexer_package)
  timeout          = 60
  memory_size      = 512

  # One invocation at a time per sidecar batch is plenty; a cap keeps a flood of
  # events from opening hundreds of database connections.
  reserved_concurrent_executions = var.indexer_max_concurrency

  environment {
    variables = {
      ELLIPTIO_STORAGE_URL        = "s3://${aws_s3_bucket.artifacts.bucket}/${var.storage_prefix}"
      ELLIPTIO_CATALOG_SECRET_ARN = aws_secretsmanager_secret.catalog_url[0].arn
    }
  }

  dynamic "vpc_config" {
    for_each = length(var.indexer_subnet_ids) > 0 ? [1] : []
    content {
      subnet_ids         = var.indexer_subnet_ids
      security_group_ids = var.indexer_security_group_ids
    }
  }

  depends_on = [aws_cloudwatch_log_group.indexer]
}

resource "aws_lambda_permission" "indexer" {
  count          = local.indexer
  statement_id   = "AllowS3Invoke"
  action         = "lambda:InvokeFunction"
  function_name  = aws_lambda_function.indexer[0].function_name
  principal      = "s3.amazonaws.com"
  source_arn     = aws_s3_bucket.artifacts.arn
  source_account = data.aws_caller_identity.current.account_id
}

data "aws_caller_identity" "current" {}

resource "aws_s3_bucket_notification" "indexer" {
  count  = local.indexer
  bucket = aws_s3_bucket.artifacts.id

  lambda_function {
    lambda_function_arn = aws_lambda_function.indexer[0].arn
    events              = ["s3:ObjectCreated:*"]
    filter_prefix       = "${var.storage_prefix}/"
    filter_suffix       = ".elliptio/metadata.json"
  }

  depends_on = [aws_lambda_permission.indexer]
}
