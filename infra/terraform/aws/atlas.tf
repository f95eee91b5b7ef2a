locals {
  atlas_shared_tier = var.atlas_instance_size == "M0"
}

resource "mongodbatlas_project" "elliptio" {
  name   = var.atlas_project_name
  org_id = var.atlas_org_id
}

# One entry per allowed network; variables.tf refuses anything near a /0.
resource "mongodbatlas_project_ip_access_list" "allowed" {
  for_each = toset(var.atlas_access_cidrs)

  project_id = mongodbatlas_project.elliptio.id
  cidr_block = each.value
  comment    = "elliptio: managed by terraform"
}

resource "mongodbatlas_advanced_cluster" "elliptio" {
  project_id                     = mongodbatlas_project.elliptio.id
  name                           = var.atlas_cluster_name
  cluster_type                   = "REPLICASET"
  backup_enabled                 = !local.atlas_shared_tier
  termination_protection_enabled = !local.atlas_shared_tier

  replication_specs = [{
    region_configs = [{
      provider_name         = local.atlas_shared_tier ? "TENANT" : "AWS"
      backing_provider_name = local.atlas_shared_tier ? "AWS" : null
      region_name           = var.atlas_region
      priority              = 7
      electable_specs = {
        instance_size = var.atlas_instance_size
        node_count    = local.atlas_shared_tier ? null : 3
      }
    }]
  }]

  # Not settable on the shared M0 tier.
  advanced_configuration = local.atlas_shared_tier ? null : {
    minimum_enabled_tls_protocol = "TLS1_2"
    javascript_enabled           = false
  }
}

resource "mongodbatlas_database_user" "elliptio" {
  project_id         = mongodbatlas_project.elliptio.id
  auth_database_name = "admin"
  username           = var.database_username
  password           = var.database_password

  roles {
    role_name     = "readWrite"
    database_name = var.database_name
  }

  scopes {
    type = "CLUSTER"
    name = mongodbatlas_advanced_cluster.elliptio.name
  }
}
