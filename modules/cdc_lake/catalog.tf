################################################################################
# Glue catalog: one table per replicated table, partitions projected (no crawler)
# https://docs.aws.amazon.com/athena/latest/ug/partition-projection-supported-types.html
################################################################################

locals {
  catalog_tables = local.create && var.create_catalog ? { for t in var.tables : lower("${t.schema}_${t.table}") => t if length(t.columns) > 0 } : {}
  catalog_name   = local.create ? coalesce(var.catalog_database_name, replace(var.name, "-", "_")) : null

  # The columns of a DMS file in order: Op, the commit time, the table's columns (less those the
  # task removes), the change sequence when DMS adds one. Strings where DMS decides the format.
  file_columns = { for name, t in local.catalog_tables : name => concat(
    [{ name = "op", type = "string", comment = "I, U or D" }],
    [{ name = lower(var.timestamp_column_name), type = "string", comment = "commit time (the task's start for full-load rows), yyyy-MM-dd HH:mm:ss.SSSSSS UTC" }],
    [for c in t.columns : { name = lower(c.name), type = c.type, comment = null } if !contains(t.exclude_columns, c.name)],
    var.change_sequence_column_name == null ? [] : [{ name = lower(var.change_sequence_column_name), type = "string", comment = "DMS change sequence" }],
  ) }

  partitions = {
    year  = { range = "${var.catalog_years[0]},${var.catalog_years[1]}", digits = 4 }
    month = { range = "1,12", digits = 2 }
    day   = { range = "1,31", digits = 2 }
    hour  = { range = "0,23", digits = 2 }
  }
  formats = {
    csv = {
      input_format  = "org.apache.hadoop.mapred.TextInputFormat"
      output_format = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"
      serde         = "org.apache.hadoop.hive.serde2.OpenCSVSerde"
      serde_parameters = {
        separatorChar = ","
        quoteChar     = "\""
        escapeChar    = "\\"
      }
      table_parameters = { classification = "csv", "skip.header.line.count" = "1" }
    }
    parquet = {
      input_format     = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
      output_format    = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
      serde            = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
      serde_parameters = { "serialization.format" = "1" }
      table_parameters = { classification = "parquet" }
    }
  }
  format = local.formats[var.data_format]
}

resource "aws_glue_catalog_database" "this" {
  count = local.create && var.create_catalog ? 1 : 0

  name        = local.catalog_name
  description = "CDC data lake ${var.name}: one table per replicated table over s3://${local.lake_bucket}/${local.lake_path}"

  tags = var.tags
}

resource "aws_glue_catalog_table" "this" {
  for_each = local.catalog_tables

  name          = each.key
  database_name = aws_glue_catalog_database.this[0].name
  description   = "DMS files of ${each.value.schema}.${each.value.table}, full load and changes, partitioned by hour"
  table_type    = "EXTERNAL_TABLE"

  parameters = merge(
    local.format.table_parameters,
    { EXTERNAL = "TRUE", "projection.enabled" = "true" },
    merge([for key, p in local.partitions : {
      "projection.${key}.type"   = "integer"
      "projection.${key}.range"  = p.range
      "projection.${key}.digits" = tostring(p.digits)
    }]...),
    {
      "storage.location.template" = "s3://${local.lake_bucket}/${local.lake_path}${each.value.schema}/${each.value.table}/year=$${year}/month=$${month}/day=$${day}/hour=$${hour}"
    },
  )

  # In the lake's order (keys() would sort them: day, hour, month, year).
  dynamic "partition_keys" {
    for_each = ["year", "month", "day", "hour"]

    content {
      name = partition_keys.value
      type = "string"
    }
  }

  storage_descriptor {
    location      = "s3://${local.lake_bucket}/${local.lake_path}${each.value.schema}/${each.value.table}/"
    input_format  = local.format.input_format
    output_format = local.format.output_format

    ser_de_info {
      serialization_library = local.format.serde
      parameters            = local.format.serde_parameters
    }

    dynamic "columns" {
      for_each = local.file_columns[each.key]

      content {
        name    = columns.value.name
        type    = columns.value.type
        comment = columns.value.comment
      }
    }
  }
}
