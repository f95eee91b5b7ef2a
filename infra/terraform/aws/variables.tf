# ---------------------------------------------------------------- AWS / S3 ---

variable "aws_region" {
  description = "AWS region of the bucket."
  type        = string
  default     = "eu-central-1"
}

variable "bucket_name" {
  description = "Globally unique name of the S3 bucket that holds the artifacts."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name must be a valid S3 bucket name (3-63 lowercase letters, digits, dots, hyphens)."
  }
}

variable "storage_prefix" {
  description = "Key prefix inside the bucket under which elliptio writes (ELLIPTIO_STORAGE_URL = s3://bucket/prefix)."
  type        = string
  default     = "lake"

  validation {
    condition     = can(regex("^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$", var.storage_prefix))
    error_message = "storage_prefix must be a relative key prefix without leading or trailing slash."
  }
}

variable "object_lock_mode" {
  description = "Default Object Lock retention mode: GOVERNANCE (bypassable with s3:BypassGovernanceRetention) or COMPLIANCE (nobody, not even root, can delete before expiry)."
  type        = string
  default     = "GOVERNANCE"

  validation {
    condition     = contains(["GOVERNANCE", "COMPLIANCE"], var.object_lock_mode)
    error_message = "object_lock_mode must be GOVERNANCE or COMPLIANCE."
  }
}

variable "object_lock_retention_days" {
  description = "Default retention of every object version, in days."
  type        = number
  default     = 365

  validation {
    condition     = var.object_lock_retention_days >= 1 && floor(var.object_lock_retention_days) == var.object_lock_retention_days
    error_message = "object_lock_retention_days must be a whole number of at least 1."
  }
}

variable "abort_incomplete_multipart_upload_days" {
  description = "Days after which incomplete multipart uploads are aborted (their parts cost money and are invisible)."
  type        = number
  default     = 7

  validation {
    condition     = var.abort_incomplete_multipart_upload_days >= 1
    error_message = "abort_incomplete_multipart_upload_days must be at least 1."
  }
}

variable "elliptio_trusted_principal_arns" {
  description = "IAM principals (users, roles, SSO permission-set roles) allowed to assume the elliptio role. Empty: no role is created; attach the policy yourself."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for arn in var.elliptio_trusted_principal_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:", arn))])
    error_message = "elliptio_trusted_principal_arns must hold IAM ARNs (arn:aws:iam::<account>:...); wildcards and bare account ids are refused."
  }
}

variable "tags" {
  description = "Tags applied to every AWS resource."
  type        = map(string)
  default = {
    project = "elliptio"
  }
}

# ------------------------------------------------------------ MongoDB Atlas ---

variable "atlas_org_id" {
  description = "MongoDB Atlas organization id in which the project is created."
  type        = string
}

variable "atlas_project_name" {
  description = "Name of the Atlas project."
  type        = string
  default     = "elliptio"
}

variable "atlas_cluster_name" {
  description = "Name of the Atlas cluster."
  type        = string
  default     = "elliptio"
}

variable "atlas_instance_size" {
  description = "Atlas tier: M0 (free, shared) or a dedicated tier such as M10."
  type        = string
  default     = "M10"
}

variable "atlas_region" {
  description = "Atlas region name of the cluster, e.g. EU_CENTRAL_1 (ideally the bucket's region)."
  type        = string
  default     = "EU_CENTRAL_1"
}

variable "atlas_access_cidrs" {
  description = "CIDR blocks allowed to reach the cluster (office egress, VPN, CI runners, NAT gateway). Nothing else can connect."
  type        = list(string)

  validation {
    condition     = length(var.atlas_access_cidrs) > 0
    error_message = "atlas_access_cidrs must name at least one network."
  }

  validation {
    condition     = alltrue([for cidr in var.atlas_access_cidrs : can(cidrhost(cidr, 0))])
    error_message = "Every entry of atlas_access_cidrs must be a CIDR block such as 203.0.113.0/24."
  }

  validation {
    # Refuses the open internet (a /0) and anything close to it.
    condition = alltrue([
      for cidr in var.atlas_access_cidrs :
      can(cidrhost(cidr, 0)) && try(tonumber(split("/", cidr)[1]) >= (strcontains(cidr, ":") ? 32 : 16), false)
    ])
    error_message = "atlas_access_cidrs must not open the database to the internet: IPv4 blocks must be /16 or narrower, IPv6 blocks /32 or narrower."
  }
}

variable "database_name" {
  description = "MongoDB database of the elliptio catalog (collection `artifacts`)."
  type        = string
  default     = "elliptio"
}

variable "database_username" {
  description = "Name of elliptio's database user."
  type        = string
  default     = "elliptio"
}

variable "database_password" {
  description = "Password of elliptio's database user. Pass it as TF_VAR_database_password from a secret manager; never write it to a file here."
  type        = string
  sensitive   = true
  nullable    = false

  validation {
    condition     = length(var.database_password) >= 24 && can(regex("^[A-Za-z0-9._~-]+$", var.database_password))
    error_message = "database_password must be at least 24 characters of A-Z a-z 0-9 . _ ~ - (URL-safe)."
  }
}

# ------------------------------------------------------------------ indexer ---

variable "indexer_package" {
  description = "Path of the indexer's Lambda zip (built as infra/terraform/aws/indexer/README.md says). Empty: no indexer; writers then need catalog credentials, or run 'elliptio reindex --prefix' yourself."
  type        = string
  default     = ""
}

variable "indexer_max_concurrency" {
  description = "At most this many indexer invocations at once (each holds a database connection)."
  type        = number
  default     = 4

  validation {
    condition     = var.indexer_max_concurrency >= 1
    error_message = "indexer_max_concurrency must be at least 1."
  }
}

variable "indexer_subnet_ids" {
  description = "Private subnets for the indexer, whose NAT gateway's public address is in atlas_access_cidrs. Empty: the function runs outside a VPC and Atlas must admit its (changing) addresses, which this module refuses to open."
  type        = list(string)
  default     = []
}

variable "indexer_security_group_ids" {
  description = "Security groups of the indexer in its VPC (egress to Atlas and S3 only)."
  type        = list(string)
  default     = []
}
