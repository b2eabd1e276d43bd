output "vpc_id" {
  description = "ID of the VPC (created or adopted)."
  value       = local.vpc_id
}

output "vpc_cidr_block" {
  description = "CIDR block of the VPC."
  value       = local.vpc_cidr_block
}

output "azs" {
  description = "Availability zones of the private subnets this module created."
  value       = local.create_vpc ? local.azs : []
}

output "private_subnet_ids" {
  description = "IDs of the private subnets (created or adopted)."
  value       = local.private_subnet_ids
}

output "private_route_table_ids" {
  description = "IDs of the private route tables."
  value       = local.route_table_ids
}

output "lambda_security_group_id" {
  description = "Security group of the pipeline functions."
  value       = local.lambda_security_group_id
}

output "database_security_group_id" {
  description = "Security group of the database (created, or the existing one given): admits the Lambda group on the database port."
  value       = local.database_access ? local.database_security_group_id : null
}

output "endpoints_security_group_id" {
  description = "Security group of the interface endpoints."
  value       = try(aws_security_group.endpoints[0].id, null)
}

output "s3_gateway_endpoint_id" {
  description = "ID of the S3 gateway endpoint."
  value       = try(aws_vpc_endpoint.s3[0].id, null)
}

output "s3_prefix_list_id" {
  description = "Prefix list of S3 in this region (for security group rules)."
  value       = try(aws_vpc_endpoint.s3[0].prefix_list_id, null)
}

output "dynamodb_gateway_endpoint_id" {
  description = "ID of the DynamoDB gateway endpoint (when created)."
  value       = try(aws_vpc_endpoint.dynamodb[0].id, null)
}

output "dynamodb_prefix_list_id" {
  description = "Prefix list of DynamoDB in this region (when the gateway endpoint is created)."
  value       = try(aws_vpc_endpoint.dynamodb[0].prefix_list_id, null)
}

output "interface_endpoint_ids" {
  description = "IDs of the interface endpoints by service."
  value       = { for k, v in aws_vpc_endpoint.interface : k => v.id }
}
