terraform {
  required_version = ">= 1.6"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
    mongodbatlas = {
      source  = "mongodb/mongodbatlas"
      version = "~> 2.0"
    }
  }

  # State holds the database password and connection strings. Keep it in an
  # encrypted remote backend with restricted access, e.g. (terraform init -backend-config=...):
  # backend "s3" {
  #   bucket       = "my-terraform-state"
  #   key          = "elliptio/terraform.tfstate"
  #   region       = "eu-central-1"
  #   encrypt      = true
  #   use_lockfile = true
  # }
}

# Credentials come from the environment, never from files in this directory:
#   AWS:   AWS_PROFILE / AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY / SSO / instance role
#   Atlas: MONGODB_ATLAS_CLIENT_ID + MONGODB_ATLAS_CLIENT_SECRET (service account)
#          or MONGODB_ATLAS_PUBLIC_API_KEY + MONGODB_ATLAS_PRIVATE_API_KEY
provider "aws" {
  region = var.aws_region

  default_tags {
    tags = var.tags
  }
}

provider "mongodbatlas" {}
