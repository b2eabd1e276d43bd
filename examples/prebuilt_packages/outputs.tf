output "functions" {
  description = "The deployed functions and their wiring."
  value       = module.pipelines.functions
}

output "lambda_runtime" {
  description = "Runtime and architecture the functions run on (those of the fetched packages)."
  value       = module.pipelines.lambda_runtime
}

output "buckets" {
  description = "Landing and migrations buckets."
  value       = module.pipelines.buckets
}
