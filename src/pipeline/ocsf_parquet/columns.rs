//! OCSF events (JSON objects) as the Arrow columns of the OCSF Parquet schema.
//!
//! Only the Arrow types that schema uses are handled: UTF-8 strings, 32- and 64-bit integers,
//! structs, lists and `map<string,string>`. A value of the wrong type, or an attribute without a
//! column, is an error naming the column, never a silently dropped value; errors never quote a value
//! (values may be SQL text).

use std::sync::Arc;

use arrow_array::{ArrayRef, Int32Array, Int64Array, ListArray, MapArray, RecordBatch, StringArray, StructArray};
use arrow_buffer::{NullBuffer, OffsetBuffer};
use arrow_schema::{ArrowError, DataType, Field, FieldRef, Fields, SchemaRef};
use serde_json::Value;

/// One record batch of `schema` holding `rows`.
pub(super) fn record_batch(schema: &SchemaRef, rows: &[&Value]) -> Result<RecordBatch, ArrowError> {
    let values: Vec<Option<&Value>> = rows.iter().map(|row| Some(*row)).collect();
    let columns = struct_children("", schema.fields(), &values)?;
    RecordBatch::try_new(schema.clone(), columns)
}

/// The column of `field` for `values` (`None` and JSON `null` are nulls).
fn column(path: &str, field: &Field, values: &[Option<&Value>]) -> Result<ArrayRef, ArrowError> {
    let path = if path.is_empty() {
        field.name().clone()
    } else {
        format!("{path}.{}", field.name())
    };
    let values: Vec<Option<&Value>> = values.iter().map(|v| v.filter(|v| !v.is_null())).collect();
    let nulls = || NullBuffer::from(values.iter().map(Option::is_some).collect::<Vec<bool>>());
    Ok(match field.data_type() {
        DataType::Utf8 => Arc::new(
            values
                .iter()
                .map(|v| {
                    v.map(|v| v.as_str().ok_or_else(|| mismatch(&path, "a string")))
                        .transpose()
                })
                .collect::<Result<StringArray, _>>()?,
        ),
        DataType::Int32 => Arc::new(
            values
                .iter()
                .map(|v| {
                    v.map(|v| {
                        v.as_i64()
                            .and_then(|n| i32::try_from(n).ok())
                            .ok_or_else(|| mismatch(&path, "a 32-bit integer"))
                    })
                    .transpose()
                })
                .collect::<Result<Int32Array, _>>()?,
        ),
        DataType::Int64 => Arc::new(
            values
                .iter()
                .map(|v| {
                    v.map(|v| v.as_i64().ok_or_else(|| mismatch(&path, "an integer")))
                        .transpose()
                })
                .collect::<Result<Int64Array, _>>()?,
        ),
        DataType::Struct(fields) => Arc::new(StructArray::try_new(
            fields.clone(),
            struct_children(&path, fields, &values)?,
            Some(nulls()),
        )?),
        DataType::List(item) => list(&path, item, &values, nulls())?,
        DataType::Map(entries, _) => map(&path, entries, &values, nulls())?,
        other => {
            return Err(ArrowError::NotYetImplemented(format!(
                "column {path}: the OCSF Parquet writer has no {other} columns"
            )))
        }
    })
}

/// The child columns of a struct column: every object's keys must be columns.
fn struct_children(path: &str, fields: &Fields, values: &[Option<&Value>]) -> Result<Vec<ArrayRef>, ArrowError> {
    for value in values.iter().flatten() {
        let object = value.as_object().ok_or_else(|| mismatch(path, "an object"))?;
        if let Some(key) = object.keys().find(|key| fields.find(key).is_none()) {
            return Err(ArrowError::SchemaError(format!(
                "the OCSF attribute {path}{}{key} has no column",
                if path.is_empty() { "" } else { "." }
            )));
        }
    }
    fields
        .iter()
        .map(|child| {
            let children: Vec<Option<&Value>> = values.iter().map(|v| v.and_then(|v| v.get(child.name()))).collect();
            column(path, child, &children)
        })
        .collect()
}

fn list(path: &str, item: &FieldRef, values: &[Option<&Value>], nulls: NullBuffer) -> Result<ArrayRef, ArrowError> {
    let mut lengths = Vec::with_capacity(values.len());
    let mut items = Vec::new();
    for value in values {
        match value {
            None => lengths.push(0),
            Some(Value::Array(array)) => {
                lengths.push(array.len());
                items.extend(array.iter().map(Some));
            }
            Some(_) => return Err(mismatch(path, "an array")),
        }
    }
    let items = column(path, item, &items)?;
    Ok(Arc::new(ListArray::try_new(
        item.clone(),
        OffsetBuffer::from_lengths(lengths),
        items,
        Some(nulls),
    )?))
}

fn map(path: &str, entries: &FieldRef, values: &[Option<&Value>], nulls: NullBuffer) -> Result<ArrayRef, ArrowError> {
    let DataType::Struct(entry_fields) = entries.data_type() else {
        return Err(mismatch(path, "a map of key/value structs"));
    };
    let value_field = entry_fields.get(1).ok_or_else(|| mismatch(path, "a map with values"))?;
    let (mut lengths, mut keys, mut items) = (Vec::with_capacity(values.len()), Vec::new(), Vec::new());
    for value in values {
        match value {
            None => lengths.push(0),
            Some(Value::Object(object)) => {
                lengths.push(object.len());
                keys.extend(object.keys().map(String::as_str));
                items.extend(object.values().map(Some));
            }
            Some(_) => return Err(mismatch(path, "an object")),
        }
    }
    let keys: ArrayRef = Arc::new(StringArray::from_iter_values(keys));
    let items = column(path, value_field, &items)?;
    let entry_array = StructArray::try_new(entry_fields.clone(), vec![keys, items], None)?;
    Ok(Arc::new(MapArray::try_new(
        entries.clone(),
        OffsetBuffer::from_lengths(lengths),
        entry_array,
        Some(nulls),
        false,
    )?))
}

fn mismatch(path: &str, expected: &str) -> ArrowError {
    ArrowError::InvalidArgumentError(format!("column {path}: expected {expected}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;
    use arrow_schema::Schema;
    use serde_json::json;

    fn schema() -> SchemaRef {
        let user = Field::new(
            "user",
            DataType::Struct(vec![Field::new("name", DataType::Utf8, true)].into()),
            true,
        );
        Arc::new(Schema::new(vec![
            Field::new("activity_id", DataType::Int32, true),
            Field::new("actor", DataType::Struct(vec![user].into()), true),
        ]))
    }

    #[test]
    fn nested_objects_become_structs_with_nulls_where_absent() {
        let rows = [
            json!({"activity_id": 1, "actor": {"user": {"name": "a"}}}),
            json!({"activity_id": null}),
        ];
        let batch = record_batch(&schema(), &rows.iter().collect::<Vec<_>>()).unwrap();
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.column(1).null_count(), 1);
    }

    #[test]
    fn wrong_types_and_unknown_attributes_are_errors_that_name_the_column_not_the_value() {
        for (row, column) in [
            (json!({"activity_id": "SELECT secret"}), "activity_id"),
            (json!({"activity_id": 3_000_000_000_i64}), "activity_id"),
            (json!({"actor": {"user": "SELECT secret"}}), "actor.user"),
            (json!({"actor": {"user": {"name": 1}}}), "actor.user.name"),
            (json!({"actor": {"session": {"uid": "x"}}}), "actor.session"),
        ] {
            let err = record_batch(&schema(), &[&row]).unwrap_err().to_string();
            assert!(err.contains(column) && !err.contains("secret"), "{err}");
        }
    }
}
