output "landing_bucket" {
  description = "Bucket to drop files into (under incoming/)."
  value       = module.pipelines.buckets["landing"]
}

output "functions" {
  description = "The deployed functions and their wiring."
  value       = module.pipelines.functions
}
