# The smallest useful deployment: the file loader alone (network, database and KMS key come with it).
#
#   make package
#   cd examples/minimal && terraform init && terraform apply

provider "aws" {
  region = var.region
}

module "pipelines" {
  source = "../.."

  name        = "minimal"
  environment = "dev"

  enable_file_loader = true
  file_loader = {
    routes = [
      { prefix = "incoming/", suffix = ".csv", table = "public.events", format = "csv" },
    ]
  }

  # Throwaway settings: delete everything on destroy.
  db_deletion_protection = false
  db_skip_final_snapshot = true
  bucket_force_destroy   = true
}
