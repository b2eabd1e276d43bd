output "bucket_id" {
  description = "Name (id) of the bucket."
  value       = local.bucket_id
}

output "bucket_arn" {
  description = "ARN of the bucket."
  value       = local.bucket_arn
}

output "bucket_regional_domain_name" {
  description = "Regional domain name of the bucket."
  value       = try(aws_s3_bucket.this[0].bucket_regional_domain_name, null)
}

output "kms_key_arn" {
  description = "KMS key encrypting the bucket (null for SSE-S3). Readers need kms:Decrypt on it, writers kms:GenerateDataKey."
  value       = local.kms ? var.kms_key_arn : null
}

output "ready" {
  description = "Depend on this to wait until the bucket's policy, encryption, versioning and public access block are in place."
  value = try({
    bucket     = aws_s3_bucket.this[0].id
    policy     = aws_s3_bucket_policy.this[0].id
    encryption = aws_s3_bucket_server_side_encryption_configuration.this[0].id
    versioning = aws_s3_bucket_versioning.this[0].id
    pab        = aws_s3_bucket_public_access_block.this[0].id
  }, null)
}
