//! The JSON Schemas of the event model for the HTTP API's OpenAPI document
//! (`GET /openapi.json`): what `#[derive(utoipa::ToSchema)]` cannot say
//! from the types alone ([`Event`](super::Event) derives its own), and the
//! schema of [`Status`](super::Status) and [`Level`](super::Level): values
//! read in any case.

use std::borrow::Cow;

use serde_json::json;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;
use utoipa::{PartialSchema, ToSchema};

use super::{Event, EventType};

/// `skip_serializing_if` of the chain fields of [`Event`]: never written
/// from an `Event` (the store writes them), yet part of its schema, which
/// `skip_serializing` would drop.
pub(crate) fn always<T>(_: &T) -> bool {
    true
}

fn from_json(v: serde_json::Value) -> RefOr<Schema> {
    RefOr::T(serde_json::from_value(v).expect("a valid schema"))
}

impl PartialSchema for EventType {
    fn schema() -> RefOr<Schema> {
        let builtin: Vec<&str> = EventType::BUILTIN.iter().map(EventType::as_str).collect();
        from_json(json!({
            "type": "string",
            "pattern": "^[a-z][a-z0-9_.]{0,63}$",
            "description": format!(
                "A built-in type ({}) or a custom type matching the pattern.",
                builtin.join(", ")
            ),
            "examples": builtin,
        }))
    }
}

impl ToSchema for EventType {}

/// `files_changed` of [`Event`]: a list of non-empty paths.
pub(crate) fn files_changed() -> RefOr<Schema> {
    from_json(json!({
        "type": "array",
        "items": { "type": "string", "minLength": 1 },
        "description": "Files touched, if any (each non-empty).",
    }))
}

/// An event as the store holds it and the API returns it: every field of
/// [`Event`] it has, with `id`, `timestamp`, `seq` and `hash` always there.
/// (Events are read back as JSON values, so this type only names the schema.)
pub struct StoredEvent;

impl PartialSchema for StoredEvent {
    fn schema() -> RefOr<Schema> {
        let mut required = Event::schema();
        if let RefOr::T(Schema::Object(o)) = &mut required {
            // The fields that a stored line always has, on top of those
            // every event has.
            for f in ["id", "timestamp", "seq", "hash"] {
                if !o.required.iter().any(|r| r == f) {
                    o.required.push(f.to_string());
                }
            }
            // What stores older than this server wrote, or a later one
            // adds, is still an event: a reader ignores fields it does not know.
            o.additional_properties = None;
            // The derived state the API adds (never stored).
            for (name, schema) in [
                (
                    "resolved",
                    json!({"type": "boolean", "description": "Whether the event is resolved now (`POST /events/{id}/resolve`); added by the API, not stored."}),
                ),
                (
                    "resolved_at",
                    json!({"type": "string", "format": "date-time", "description": "When it was resolved (resolved events only)."}),
                ),
                (
                    "resolved_by",
                    json!({"type": "string", "description": "Who resolved it (resolved events only)."}),
                ),
            ] {
                o.properties.insert(name.to_string(), from_json(schema));
            }
        }
        required
    }
}

impl ToSchema for StoredEvent {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("StoredEvent")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        <Event as ToSchema>::schemas(schemas);
    }
}

/// The OpenAPI schema of a value of `values` in any ASCII case, as the
/// parser takes it (stored and answered lowercase): a string with the
/// pattern `^(?:[sS][uU]…|…)$`, the lowercase values as examples.
pub(super) fn any_case_schema(
    values: &[&str],
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    let alternatives: Vec<String> = values
        .iter()
        .map(|v| {
            v.chars()
                .map(|c| {
                    if c.is_ascii_alphabetic() {
                        format!("[{}{}]", c.to_ascii_lowercase(), c.to_ascii_uppercase())
                    } else {
                        c.to_string()
                    }
                })
                .collect()
        })
        .collect();
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(format!("^(?:{})$", alternatives.join("|"))))
        .description(Some(format!(
            "One of {} in any case (`{}` is read as `{}`); stored and answered lowercase.",
            values.join(", "),
            values[0].to_ascii_uppercase(),
            values[0]
        )))
        .examples(values.iter().map(|v| serde_json::Value::from(*v)))
        .into()
}
