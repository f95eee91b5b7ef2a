locals {
  srv_host    = trimprefix(mongodbatlas_advanced_cluster.elliptio.connection_strings.standard_srv, "mongodb+srv://")
  catalog_url = "mongodb+srv://${var.database_username}:${var.database_password}@${local.srv_host}/${var.database_name}?authSource=admin&retryWrites=true&w=majority"
}

output "elliptio_storage_url" {
  description = "ELLIPTIO_STORAGE_URL"
  value       = "s3://${aws_s3_bucket.artifacts.bucket}/${var.storage_prefix}"
}

output "elliptio_storage_options" {
  description = "ELLIPTIO_STORAGE_OPTIONS (credentials come from the AWS default chain, e.g. the elliptio role)"
  value       = jsonencode({ client_kwargs = { region_name = var.aws_region } })
}

output "elliptio_catalog_url" {
  description = "ELLIPTIO_CATALOG_URL (contains the password: terraform output -raw elliptio_catalog_url)"
  value       = local.catalog_url
  sensitive   = true
}

output "elliptio_env" {
  description = "All ELLIPTIO_* settings as a .env file: terraform output -raw elliptio_env > .env"
  value       = <<-EOT
    ELLIPTIO_STORAGE_URL=s3://${aws_s3_bucket.artifacts.bucket}/${var.storage_prefix}
    ELLIPTIO_STORAGE_OPTIONS='${jsonencode({ client_kwargs = { region_name = var.aws_region } })}'
    ELLIPTIO_CATALOG_URL=${local.catalog_url}
  EOT
  sensitive   = true
}

output "elliptio_policy_arn" {
  description = "IAM policy to attach to whoever runs elliptio (if no role was created here)."
  value       = aws_iam_policy.elliptio.arn
}

output "elliptio_role_arn" {
  description = "Role to assume for elliptio (null when elliptio_trusted_principal_arns is empty)."
  value       = try(aws_iam_role.elliptio[0].arn, null)
}
