//! The event model: [`Event`], [`EventType`], [`Status`], [`Level`], validation
//! and the builder. This module does no I/O.
//!
//! An event is one JSON object on one line of a day file. Field order on disk
//! is the order of the struct below; the store appends `seq` and `hash` (see
//! [`crate::store::chain`]). `metadata` is written with its object keys
//! sorted at every depth, whatever order a client gave them in: serde_json
//! keeps the order of a parsed object (its `preserve_order` feature, so that
//! stored events are read back in their stored order), and the bytes of the
//! on-disk format must not depend on it.

mod kinds;
pub mod privacy;
pub mod schema;

pub use kinds::{EventType, Level, Status, is_valid_custom_type};

use std::net::IpAddr;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use uuid::Uuid;

/// The `appended_by` of the events the HTTP server records itself
/// (denials, start and stop, rotations).
pub const SERVER_APPENDER: &str = "evlog";

/// Longest accepted `user_id`, in characters.
pub const MAX_USER_ID_CHARS: usize = 256;

/// Longest accepted `source`, in characters.
pub const MAX_SOURCE_CHARS: usize = 128;

/// Longest tenant name, in characters (see [`is_valid_tenant`]).
pub const MAX_TENANT_CHARS: usize = 63;

/// The name under which the default tenant (events without `tenant`) is
/// indexed and filtered (`tenant=_`): a name no tenant can have.
pub const DEFAULT_TENANT: &str = "_";

/// Whether `t` is a tenant name: `^[a-z0-9][a-z0-9_-]{0,62}$`.
pub fn is_valid_tenant(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_TENANT_CHARS
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-')
}

/// What a tenant name must be, for error messages.
pub const TENANT_RULE: &str = "must match ^[a-z0-9][a-z0-9_-]{0,62}$ (lowercase letters, digits, `_` and `-`, 1 to 63 characters)";

/// Earliest accepted `timestamp`: 1678-01-01T00:00:00Z. The index keeps
/// times as nanoseconds in an `i64` (1677-09-21 to 2262-04-11); the accepted
/// range is the whole years inside it.
pub const MIN_TIMESTAMP: DateTime<Utc> = match DateTime::from_timestamp(-9_214_560_000, 0) {
    Some(t) => t,
    None => panic!("1678-01-01 is a valid time"),
};
/// Latest accepted `timestamp`: 2261-12-31T23:59:59.999999Z (see [`MIN_TIMESTAMP`]).
pub const MAX_TIMESTAMP: DateTime<Utc> = match DateTime::from_timestamp(9_214_646_399, 999_999_000)
{
    Some(t) => t,
    None => panic!("2261-12-31 is a valid time"),
};

/// An event as the library, CLI and HTTP API accept it and as day files store it.
///
/// `id` and `timestamp` are optional on input; the store fills them at append.
/// Every event read back from the store has both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// UUIDv7 assigned at append; a well-formed client-supplied UUID is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
    /// When it happened (UTC, microsecond precision); defaults to append time.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_timestamp",
        deserialize_with = "de_timestamp"
    )]
    #[schema(value_type = String, format = DateTime, examples("2026-11-23T08:00:00.000000Z"))]
    pub timestamp: Option<DateTime<Utc>>,
    /// One of the 21 built-in types or a custom type.
    pub event_type: EventType,
    /// Who did it: 1–256 characters.
    #[schema(min_length = 1, max_length = 256)]
    pub user_id: String,
    /// What was done, for humans. Must not be empty.
    #[schema(min_length = 1, pattern = r"\S")]
    pub action_description: String,
    /// Outcome.
    pub status: Status,
    /// Severity; `info` when absent.
    #[serde(default)]
    pub level: Level,
    /// Files touched, if any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(schema_with = schema::files_changed)]
    pub files_changed: Vec<String>,
    /// Free-form comments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comments: Option<String>,
    /// Arbitrary JSON object, searchable. Serialized with its keys sorted
    /// at every depth (the on-disk form does not depend on the order given).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_sorted"
    )]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    /// Correlates the events of one request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 256)]
    pub request_id: Option<String>,
    /// The service that emitted it (`api-service`, `background-job`):
    /// 1–128 characters. Absent on lines of older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 128)]
    pub source: Option<String>,
    /// The tenant it belongs to (`^[a-z0-9][a-z0-9_-]{0,62}$`); absent: the
    /// default tenant (and on lines of older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        pattern = "^[a-z0-9][a-z0-9_-]{0,62}$",
        min_length = 1,
        max_length = 63
    )]
    pub tenant: Option<String>,
    /// Client address; must parse as an IPv4 or IPv6 address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    /// How long it took, in milliseconds (≥ 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0)]
    pub duration_ms: Option<f64>,
    /// Who appended it, as the store records it: the id (`k_…`) of the API
    /// key of an HTTP append, or [`SERVER_APPENDER`] for the server's own
    /// events. Set by the server, never by an HTTP client (refused); absent
    /// for appends through the library or the CLI unless the caller sets
    /// it (`evlog cat | evlog append --stdin` keeps it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(read_only, min_length = 1, max_length = 256)]
    pub appended_by: Option<String>,
    /// The node a replicated event was first stored on (its `--node` name),
    /// set by `evlog follow` on the copies it appends; absent on events
    /// appended here. Refused from HTTP clients, like `appended_by`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(read_only, min_length = 1, max_length = 256)]
    pub origin: Option<String>,
    /// Position of the line in the store's hash chain, on stored events.
    /// Accepted (and ignored) on input so that `evlog cat | evlog append
    /// --stdin` works; never serialized from here (the store writes it).
    #[serde(default, rename = "seq", skip_serializing_if = "schema::always")]
    #[schema(read_only)]
    #[doc(hidden)]
    pub _seq: Option<u64>,
    /// The line's hash, chained to the previous line's, on stored events.
    /// Accepted (and ignored) on input, like `seq`.
    #[serde(default, rename = "hash", skip_serializing_if = "schema::always")]
    #[schema(read_only)]
    #[doc(hidden)]
    pub _hash: Option<String>,
    /// The derived state the API adds to the events it returns
    /// (`resolved`, `resolved_at`, `resolved_by`): accepted and ignored on
    /// input, so that an export can be appended again; never stored.
    #[serde(default, rename = "resolved", skip_serializing_if = "schema::always")]
    #[schema(ignore)]
    #[doc(hidden)]
    pub _resolved: Option<Value>,
    /// See `_resolved`.
    #[serde(
        default,
        rename = "resolved_at",
        skip_serializing_if = "schema::always"
    )]
    #[schema(ignore)]
    #[doc(hidden)]
    pub _resolved_at: Option<Value>,
    /// See `_resolved`.
    #[serde(
        default,
        rename = "resolved_by",
        skip_serializing_if = "schema::always"
    )]
    #[schema(ignore)]
    #[doc(hidden)]
    pub _resolved_by: Option<Value>,
}

fn ser_timestamp<S: Serializer>(ts: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match ts {
        Some(ts) => s.serialize_str(&format_timestamp(ts)),
        None => s.serialize_none(),
    }
}

fn ser_sorted<S: Serializer>(v: &Option<Value>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => Sorted(v).serialize(s),
        None => s.serialize_none(),
    }
}

/// A JSON value serialized with the keys of every object in it sorted (by
/// bytes, as a `BTreeMap<String, _>` orders them), without copying it.
struct Sorted<'a>(&'a Value);

impl Serialize for Sorted<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self.0 {
            Value::Object(m) => {
                let mut entries: Vec<(&String, &Value)> = m.iter().collect();
                entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, &Sorted(v))?;
                }
                map.end()
            }
            Value::Array(items) => s.collect_seq(items.iter().map(Sorted)),
            other => other.serialize(s),
        }
    }
}

fn de_timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    let s = String::deserialize(d)?;
    parse_timestamp(&s).map(Some).map_err(|e| {
        serde::de::Error::custom(format!("{e} (want RFC 3339, e.g. 2026-11-23T12:00:00Z)"))
    })
}

/// Formats a timestamp as RFC 3339 UTC with microseconds: `2026-11-23T12:00:00.123456Z`.
pub fn format_timestamp(ts: &DateTime<Utc>) -> String {
    ts.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Parses an RFC 3339 timestamp with any offset into UTC, truncated to microseconds.
pub fn parse_timestamp(s: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    Ok(DateTime::parse_from_rfc3339(s)?
        .with_timezone(&Utc)
        .trunc_subsecs(6))
}

/// A validation failure: which field, and which rule it broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// The field (a JSON path such as `metadata` or `files_changed[2]`).
    pub field: String,
    /// The rule, in words.
    pub message: String,
}

impl ValidationError {
    /// A failure of `field` against `message`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ValidationError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl Event {
    /// Starts an event with the three required fields; status `success`, level `info`.
    ///
    /// ```
    /// use evlog::{Event, EventType};
    /// use serde_json::json;
    /// let e = Event::new(EventType::Commit, "dev", "Updated config")
    ///     .files_changed(["config.toml"])
    ///     .metadata(json!({"branch": "main"}));
    /// assert!(e.validate().is_ok());
    /// ```
    pub fn new(
        event_type: EventType,
        user_id: impl Into<String>,
        action_description: impl Into<String>,
    ) -> Self {
        Event {
            id: None,
            timestamp: None,
            event_type,
            user_id: user_id.into(),
            action_description: action_description.into(),
            status: Status::Success,
            level: Level::Info,
            files_changed: Vec::new(),
            comments: None,
            metadata: None,
            request_id: None,
            source: None,
            tenant: None,
            source_ip: None,
            duration_ms: None,
            appended_by: None,
            origin: None,
            _seq: None,
            _hash: None,
            _resolved: None,
            _resolved_at: None,
            _resolved_by: None,
        }
    }

    /// Sets the status.
    pub fn status(mut self, status: Status) -> Self {
        self.status = status;
        self
    }
    /// Sets the level.
    pub fn level(mut self, level: Level) -> Self {
        self.level = level;
        self
    }
    /// Sets the files changed.
    pub fn files_changed<I, S>(mut self, files: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.files_changed = files.into_iter().map(Into::into).collect();
        self
    }
    /// Sets the comments.
    pub fn comments(mut self, comments: impl Into<String>) -> Self {
        self.comments = Some(comments.into());
        self
    }
    /// Sets the metadata (must be a JSON object to pass validation).
    pub fn metadata(mut self, metadata: Value) -> Self {
        self.metadata = Some(metadata);
        self
    }
    /// Sets the request id.
    pub fn request_id(mut self, request_id: impl Into<String>) -> Self {
        self.request_id = Some(request_id.into());
        self
    }
    /// Sets the emitting service (1–128 characters).
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.source = Some(source.into());
        self
    }
    /// Sets the tenant (`^[a-z0-9][a-z0-9_-]{0,62}$`).
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }
    /// The tenant's name as indexed: its name, or [`DEFAULT_TENANT`].
    pub fn tenant_or_default(&self) -> &str {
        self.tenant.as_deref().unwrap_or(DEFAULT_TENANT)
    }
    /// Sets the source IP (must parse as an IP address).
    pub fn source_ip(mut self, ip: impl Into<String>) -> Self {
        self.source_ip = Some(ip.into());
        self
    }
    /// Sets the duration in milliseconds.
    pub fn duration_ms(mut self, ms: f64) -> Self {
        self.duration_ms = Some(ms);
        self
    }
    /// Sets the timestamp (truncated to microseconds).
    pub fn timestamp(mut self, ts: DateTime<Utc>) -> Self {
        self.timestamp = Some(ts.trunc_subsecs(6));
        self
    }
    /// Sets who appended it (normally set by the server; see
    /// [`Event::appended_by`](Event#structfield.appended_by)).
    pub fn appended_by(mut self, by: impl Into<String>) -> Self {
        self.appended_by = Some(by.into());
        self
    }
    /// Sets the id (normally assigned by the store).
    pub fn id(mut self, id: Uuid) -> Self {
        self.id = Some(id);
        self
    }

    /// Parses one JSON object into an event. Errors name the field
    /// (`status: unknown variant ...`, `missing field user_id`).
    pub fn from_json(bytes: &[u8]) -> Result<Event, ValidationError> {
        // serde would map an array onto the fields by position; say plainly
        // what is wanted instead.
        match bytes.trim_ascii_start().first() {
            Some(b'{') => {}
            Some(b'[') => {
                return Err(ValidationError::new(
                    "event",
                    "must be a JSON object, not an array",
                ));
            }
            None => {
                return Err(ValidationError::new(
                    "event",
                    "empty input: want a JSON object",
                ));
            }
            Some(_) => {
                // Let serde_json say what the token is (a syntax error or a scalar).
                if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
                    return Err(ValidationError::new("event", format!("invalid JSON: {e}")));
                }
                return Err(ValidationError::new("event", "must be a JSON object"));
            }
        }
        // Fast path: plain serde_json. Only a rejected line pays for
        // serde_path_to_error, which names the field in the message.
        if let Ok(event) = serde_json::from_slice::<Event>(bytes) {
            return Ok(event);
        }
        let de = &mut serde_json::Deserializer::from_slice(bytes);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                return ValidationError::new("event", format!("invalid JSON: {inner}"));
            }
            let field = if path == "." || path.is_empty() {
                "event".to_string()
            } else {
                path
            };
            ValidationError::new(field, strip_position(&inner.to_string()))
        })
    }

    /// Parses a JSON value into an event (same messages as [`Event::from_json`]).
    pub fn from_value(value: Value) -> Result<Event, ValidationError> {
        serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." {
                "event".to_string()
            } else {
                path
            };
            ValidationError::new(field, strip_position(&e.into_inner().to_string()))
        })
    }

    /// Checks every rule of DESIGN.md's data model; the error names the field.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if let Some(ts) = self.timestamp
            && !(MIN_TIMESTAMP..=MAX_TIMESTAMP).contains(&ts)
        {
            return Err(ValidationError::new(
                "timestamp",
                format!(
                    "{} is outside the years 1678 to 2261 (the range the index can hold)",
                    format_timestamp(&ts)
                ),
            ));
        }
        if let EventType::Custom(name) = &self.event_type
            && !is_valid_custom_type(name)
        {
            return Err(ValidationError::new(
                "event_type",
                format!(
                    "`{name}` is neither a built-in type nor a custom type matching ^[a-z][a-z0-9_.]{{0,63}}$"
                ),
            ));
        }
        let n = self.user_id.chars().count();
        if n == 0 || n > MAX_USER_ID_CHARS {
            return Err(ValidationError::new(
                "user_id",
                format!("must be 1 to {MAX_USER_ID_CHARS} characters (got {n})"),
            ));
        }
        if self.action_description.trim().is_empty() {
            return Err(ValidationError::new(
                "action_description",
                "must not be empty",
            ));
        }
        if let Some(m) = &self.metadata
            && !m.is_object()
        {
            return Err(ValidationError::new(
                "metadata",
                format!("must be a JSON object (got {})", json_kind(m)),
            ));
        }
        if let Some(ip) = &self.source_ip
            && IpAddr::from_str(ip).is_err()
        {
            return Err(ValidationError::new(
                "source_ip",
                format!("`{ip}` is not an IPv4 or IPv6 address"),
            ));
        }
        if let Some(d) = self.duration_ms
            && !(d.is_finite() && d >= 0.0)
        {
            return Err(ValidationError::new(
                "duration_ms",
                format!("must be a finite number >= 0 (got {d})"),
            ));
        }
        if let Some(r) = &self.request_id
            && (r.is_empty() || r.chars().count() > 256)
        {
            return Err(ValidationError::new(
                "request_id",
                "must be 1 to 256 characters",
            ));
        }
        if let Some(s) = &self.source {
            let n = s.chars().count();
            if n == 0 || n > MAX_SOURCE_CHARS {
                return Err(ValidationError::new(
                    "source",
                    format!("must be 1 to {MAX_SOURCE_CHARS} characters (got {n})"),
                ));
            }
        }
        if let Some(t) = &self.tenant
            && !is_valid_tenant(t)
        {
            return Err(ValidationError::new("tenant", TENANT_RULE));
        }
        if let Some(a) = &self.appended_by
            && (a.is_empty() || a.chars().count() > 256)
        {
            return Err(ValidationError::new(
                "appended_by",
                "must be 1 to 256 characters",
            ));
        }
        if let Some(o) = &self.origin
            && (o.is_empty() || o.chars().count() > 256)
        {
            return Err(ValidationError::new(
                "origin",
                "must be 1 to 256 characters",
            ));
        }
        crate::resolution::check(self)?;
        for (i, f) in self.files_changed.iter().enumerate() {
            if f.is_empty() {
                return Err(ValidationError::new(
                    format!("files_changed[{i}]"),
                    "must not be empty",
                ));
            }
        }
        Ok(())
    }
}

/// serde_json appends " at line 1 column 17" to its messages; the field path
/// says more, and a column into a one-line object helps nobody.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The API document says what the parser takes: any case.
    #[test]
    fn the_schema_of_status_and_level_takes_any_case() {
        use utoipa::PartialSchema;
        let level = serde_json::to_value(Level::schema()).unwrap();
        assert_eq!(
            level["pattern"],
            "^(?:[iI][nN][fF][oO]|[wW][aA][rR][nN][iI][nN][gG]|[eE][rR][rR][oO][rR]|[sS][eE][cC][uU][rR][iI][tT][yY])$"
        );
        let status = serde_json::to_value(Status::schema()).unwrap();
        assert!(
            status["pattern"]
                .as_str()
                .unwrap()
                .contains("[iI][nN]_[pP][rR][oO][gG][rR][eE][sS][sS]"),
            "{status}"
        );
        assert_eq!(status["examples"][3], "in_progress");
    }

    fn base() -> Event {
        Event::new(EventType::Commit, "dev", "Updated config")
    }

    #[test]
    fn there_are_21_builtin_types_with_descriptions() {
        assert_eq!(EventType::BUILTIN.len(), 21);
        for t in EventType::BUILTIN {
            assert!(t.description().is_some());
            assert_eq!(&EventType::parse(t.as_str()), t);
        }
    }

    #[test]
    fn builder_produces_valid_event() {
        let e = base()
            .files_changed(["a.rs", "b.rs"])
            .metadata(json!({"k": 1}))
            .duration_ms(3.5)
            .source_ip("10.0.0.1");
        e.validate().unwrap();
        assert_eq!(e.files_changed, vec!["a.rs", "b.rs"]);
    }

    #[test]
    fn custom_types_follow_the_pattern() {
        assert!("deploy.started".parse::<EventType>().is_ok());
        assert!("a".parse::<EventType>().is_ok());
        let long = format!("a{}", "b".repeat(63));
        assert!(long.parse::<EventType>().is_ok());
        let too_long = format!("a{}", "b".repeat(64));
        for bad in ["", "Deploy", "1abc", "a-b", "a b", too_long.as_str()] {
            let err = bad.parse::<EventType>().unwrap_err();
            assert_eq!(err.field, "event_type", "{bad}");
        }
        let e = Event::new(EventType::Custom("Bad".into()), "u", "d");
        assert_eq!(e.validate().unwrap_err().field, "event_type");
    }

    #[test]
    fn validation_names_field_and_rule() {
        let cases: Vec<(Event, &str)> = vec![
            (Event::new(EventType::Push, "", "d"), "user_id"),
            (Event::new(EventType::Push, "u".repeat(257), "d"), "user_id"),
            (Event::new(EventType::Push, "u", "  "), "action_description"),
            (base().metadata(json!([1])), "metadata"),
            (base().source_ip("999.1.1.1"), "source_ip"),
            (base().duration_ms(-1.0), "duration_ms"),
            (base().duration_ms(f64::NAN), "duration_ms"),
            (base().files_changed([""]), "files_changed[0]"),
            (base().appended_by(""), "appended_by"),
            (base().source(""), "source"),
            (base().source("s".repeat(129)), "source"),
            (base().tenant(""), "tenant"),
            (base().tenant("_"), "tenant"),
            (base().tenant("Acme"), "tenant"),
            (base().tenant("-acme"), "tenant"),
            (base().tenant("acme.corp"), "tenant"),
            (base().tenant("a".repeat(64)), "tenant"),
        ];
        for (e, field) in cases {
            let err = e.validate().unwrap_err();
            assert_eq!(err.field, field);
            assert!(!err.message.is_empty());
        }
        assert!(
            Event::new(EventType::Push, "u".repeat(256), "d")
                .validate()
                .is_ok()
        );
        assert!(
            Event::new(EventType::Push, "é".repeat(256), "d")
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn from_json_errors_name_the_field() {
        let err = Event::from_json(
            br#"{"event_type":"commit","user_id":"u","action_description":"d","status":"done"}"#,
        )
        .unwrap_err();
        assert_eq!(err.field, "status");
        assert!(err.message.contains("in_progress"), "{}", err.message);

        let err = Event::from_json(br#"{"event_type":"commit","user_id":"u","status":"success"}"#)
            .unwrap_err();
        assert!(err.message.contains("action_description"), "{err}");

        let err = Event::from_json(
            br#"{"event_type":"commit","user_id":"u","action_description":"d","status":"success","timestamp":"yesterday"}"#,
        )
        .unwrap_err();
        assert_eq!(err.field, "timestamp");

        let err = Event::from_json(
            br#"{"event_type":"commit","user_id":"u","action_description":"d","status":"success","colour":"red"}"#,
        )
        .unwrap_err();
        assert!(err.message.contains("colour"), "{err}");

        let err = Event::from_json(
            br#"{"event_type":"commit","user_id":"u","action_description":"d","status":"success","duration_ms":"5"}"#,
        )
        .unwrap_err();
        assert_eq!(err.field, "duration_ms");
        let err = Event::from_json(b"[1,2]").unwrap_err();
        assert_eq!(
            err.to_string(),
            "event: must be a JSON object, not an array"
        );
        assert_eq!(
            Event::from_json(b" 42").unwrap_err().to_string(),
            "event: must be a JSON object"
        );
        assert!(
            Event::from_json(b"nope")
                .unwrap_err()
                .message
                .contains("invalid JSON")
        );
        assert!(Event::from_json(b"{").is_err());
    }

    #[test]
    fn timestamps_keep_microseconds_and_normalise_to_utc() {
        let e = Event::from_json(
            br#"{"event_type":"commit","user_id":"u","action_description":"d","status":"success","timestamp":"2026-11-23T13:00:00.1234567+01:00"}"#,
        )
        .unwrap();
        let ts = e.timestamp.unwrap();
        assert_eq!(format_timestamp(&ts), "2026-11-23T12:00:00.123456Z");
        let line = serde_json::to_string(&e).unwrap();
        assert!(
            line.contains(r#""timestamp":"2026-11-23T12:00:00.123456Z""#),
            "{line}"
        );
        let back = Event::from_json(line.as_bytes()).unwrap();
        assert_eq!(back.timestamp, e.timestamp);
    }

    #[test]
    fn serialization_round_trips() {
        let e = base()
            .id(Uuid::now_v7())
            .timestamp(Utc::now())
            .status(Status::InProgress)
            .level(Level::Security)
            .files_changed(["x"])
            .comments("c")
            .metadata(json!({"a": {"b": [1, 2]}}))
            .request_id("r1")
            .source("api-service")
            .tenant("acme")
            .source_ip("::1")
            .duration_ms(12.25)
            .appended_by("k_0123456789ab");
        let line = serde_json::to_vec(&e).unwrap();
        assert_eq!(Event::from_json(&line).unwrap(), e);
        // The last field: the store appends seq and hash after it.
        assert!(
            std::str::from_utf8(&line)
                .unwrap()
                .ends_with(r#","duration_ms":12.25,"appended_by":"k_0123456789ab"}"#)
        );
        assert!(
            std::str::from_utf8(&line)
                .unwrap()
                .contains(r#""status":"in_progress""#)
        );
        // `source` comes after `request_id` (README, "The file format").
        assert!(std::str::from_utf8(&line).unwrap().contains(
            r#""request_id":"r1","source":"api-service","tenant":"acme","source_ip":"::1""#
        ));
        for ok in ["a", "0", "acme-corp_2", &"z".repeat(63)] {
            assert!(base().tenant(ok).validate().is_ok(), "{ok}");
        }
        assert!(base().source("é".repeat(128)).validate().is_ok());
    }

    /// serde_json keeps the order of a parsed object (`preserve_order`, so
    /// that stored events come back in their stored order); the bytes
    /// written for an event must not follow a client's key order, or the
    /// same event would be stored two ways (the v1 fixtures would differ).
    #[test]
    fn metadata_is_serialized_with_keys_sorted_at_every_depth() {
        let given = r#"{"z":1,"b":{"y":[{"d":1,"c":2}],"x":null},"a":"é","A":true,"é":0}"#;
        let meta: Value = serde_json::from_str(given).unwrap();
        // Parsed in the order given (what the read side relies on).
        let keys: Vec<&str> = meta
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["z", "b", "a", "A", "é"]);
        let line = serde_json::to_string(&base().metadata(meta.clone())).unwrap();
        assert!(
            line.contains(
                r#""metadata":{"A":true,"a":"é","b":{"x":null,"y":[{"c":2,"d":1}]},"z":1,"é":0}"#
            ),
            "{line}"
        );
        // The value is the same, only its order changed.
        assert_eq!(
            Event::from_json(line.as_bytes()).unwrap().metadata,
            Some(meta)
        );
        // Other JSON is written in the order it holds.
        assert_eq!(
            serde_json::from_str::<Value>(given).unwrap().to_string(),
            given
        );
    }

    #[test]
    fn level_defaults_to_info_and_chain_fields_are_ignored() {
        let e = Event::from_json(
            br#"{"event_type":"x.y","user_id":"u","action_description":"d","status":"success","seq":4,"hash":"ab"}"#,
        )
        .unwrap();
        assert_eq!(e.level, Level::Info);
        let out = serde_json::to_string(&e).unwrap();
        assert!(!out.contains("seq") && !out.contains("hash"), "{out}");
    }

    #[test]
    fn status_and_level_parse_with_rule_messages() {
        assert_eq!("in_progress".parse::<Status>().unwrap(), Status::InProgress);
        let err = "ok".parse::<Status>().unwrap_err();
        assert_eq!(err.field, "status");
        assert!(
            err.message
                .contains("success, failure, pending, in_progress")
        );
        assert_eq!("security".parse::<Level>().unwrap(), Level::Security);
        assert_eq!("fatal".parse::<Level>().unwrap_err().field, "level");
    }

    /// Clients of older systems send `SECURITY`, `Success`: accepted, and
    /// the line written holds the lowercase value.
    #[test]
    fn status_and_level_are_accepted_in_any_case_and_written_lowercase() {
        for (s, want) in [
            ("SECURITY", Level::Security),
            ("Error", Level::Error),
            ("wArNiNg", Level::Warning),
        ] {
            assert_eq!(s.parse::<Level>().unwrap(), want);
        }
        for (s, want) in [
            ("Success", Status::Success),
            ("In_Progress", Status::InProgress),
            ("FAILURE", Status::Failure),
        ] {
            assert_eq!(s.parse::<Status>().unwrap(), want);
        }
        assert!("INPROGRESS".parse::<Status>().is_err());
        let e = Event::from_json(
            br#"{"event_type":"commit","user_id":"u","action_description":"d","status":"In_Progress","level":"SECURITY"}"#,
        )
        .unwrap();
        assert_eq!((e.status, e.level), (Status::InProgress, Level::Security));
        let line = serde_json::to_string(&e).unwrap();
        assert!(
            line.contains(r#""status":"in_progress","level":"security""#),
            "{line}"
        );
        let v = Event::from_value(json!({"event_type":"commit","user_id":"u","action_description":"d","status":"Success","level":"Warning"})).unwrap();
        assert_eq!((v.status, v.level), (Status::Success, Level::Warning));
        // A value that is no case of one still names the field and the choices.
        let err = Event::from_json(
            br#"{"event_type":"commit","user_id":"u","action_description":"d","status":"DONE"}"#,
        )
        .unwrap_err();
        assert_eq!(err.field, "status");
        assert!(
            err.message.contains("unknown variant `DONE`"),
            "{}",
            err.message
        );
    }
}
