output "landing_bucket" {
  description = "Bucket to drop files into (under incoming/)."
  value       = module.pipelines.buckets["landing"]
}

output "pipelines" {
  description = "Every pipeline of the module and whether it is deployed here."
  value       = module.pipelines.pipelines
}

output "functions" {
  description = "The deployed functions and their wiring."
  value       = module.pipelines.functions
}

output "database" {
  description = "Endpoint, port, name and master secret ARN of the database the file loader writes to."
  value       = module.pipelines.database
}
