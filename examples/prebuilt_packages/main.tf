# The module with the Lambda packages of a release instead of a local `make package`: nothing to
# build, no Debian host, no pip. Fetch the release's packages, verified against its SHA256SUMS and
# the manifest's hashes, into ./packages, then plan:
#
#   python3 ../../scripts/fetch_packages.py --repository acme/aws-data-pipelines --version v0.1.0 --output packages
#   terraform init && terraform plan
#
# Outside this repository, pin the module to the same release and run the script from the module
# that `terraform init` downloaded (see README.md):
#
#   source = "git::https://github.com/acme/aws-data-pipelines.git?ref=v0.1.0"

provider "aws" {
  region = var.region
}

locals {
  # The packages must come from the release the module source is pinned to: the functions' code
  # and the Terraform that wires it change together.
  packages_dir = coalesce(var.packages_dir, "${path.root}/packages")
}

module "pipelines" {
  source = "../.."

  name        = "prebuilt"
  environment = "dev"
  build_dir   = local.packages_dir

  # Must equal the runtime and architecture of the fetched packages (fetch_packages.py --runtime / --arch);
  # the plan refuses a mismatch.
  lambda_runtime      = "python3.12"
  lambda_architecture = var.lambda_architecture

  enable_file_loader       = true
  enable_table_sync        = true
  enable_schema_migrations = true

  file_loader = {
    routes = [
      { prefix = "orders/", suffix = ".csv", table = "staging.orders", format = "csv", mode = "upsert", key_columns = ["order_id"] },
    ]
  }

  table_sync = {
    source = {
      engine      = "sqlserver"
      host        = var.sqlserver_host
      port        = 1433
      name        = "erp"
      cidr_blocks = var.sqlserver_cidr_blocks
    }
    tables = [
      {
        source      = "dbo.Customers"
        target      = "erp.customers"
        primary_key = ["CustomerID"]
        cursor      = { type = "rowversion", column = "RowVer" }
      },
    ]
  }

  # Throwaway settings: delete everything on destroy.
  db_deletion_protection         = false
  db_skip_final_snapshot         = true
  bucket_force_destroy           = true
  secret_recovery_window_in_days = 0
}
