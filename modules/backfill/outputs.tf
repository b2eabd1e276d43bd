output "source_secret_arn" {
  description = "Secret holding the credentials of source_database. When this module created it, set its value out of band: aws secretsmanager put-secret-value --secret-id <arn> --secret-string '{\"username\":...,\"password\":...}'."
  value       = local.has_source ? local.secret_arn : null
}

output "security_group_id" {
  description = "Security group allowing the function to reach source_database (and its replicas)."
  value       = try(aws_security_group.source[0].id, null)
}

output "jobs" {
  description = "The jobs, as passed to the function in BACKFILL_JOBS."
  value       = local.create ? local.jobs_json : []
}

output "schedule_arn" {
  description = "ARN of the schedule running the function (the function disables it once every job is finished)."
  value       = local.create ? module.function.schedule_arn : null
}

output "stalled_alarm_arns" {
  description = "ARN of each job's stalled alarm, by job name."
  value       = { for name, alarm in aws_cloudwatch_metric_alarm.stalled : name => alarm.arn }
}

output "buckets" {
  description = "Buckets of the pipeline by purpose: none (the backfill works inside a database)."
  value       = {}
}

output "functions" {
  description = "The pipeline's functions by key (backfill) as the lambda_function module's `summary` describes them: name, ARN, role, handler, environment, trigger (schedule) and event source."
  value       = local.create ? { backfill = module.function.summary } : {}
}
