//! The vocabularies of an event: [`EventType`] (the built-in types and
//! custom ones), [`Status`] and [`Level`] (read in any case, written
//! lowercase).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ValidationError;

/// Whether `s` matches `^[a-z][a-z0-9_.]{0,63}$`.
pub fn is_valid_custom_type(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_lowercase()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'.')
}

macro_rules! event_types {
    ($( $variant:ident => $name:literal, $desc:literal; )*) => {
        /// The kind of event: one of the built-in types, or a custom type
        /// matching `^[a-z][a-z0-9_.]{0,63}$`.
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventType {
            $(
                #[doc = $desc]
                $variant,
            )*
            /// A custom type (validated against the pattern at append).
            Custom(String),
        }

        impl EventType {
            /// Every built-in type, in documentation order.
            pub const BUILTIN: &'static [EventType] = &[$(EventType::$variant),*];

            /// The wire name (`commit`, `auth_login`, ...).
            pub fn as_str(&self) -> &str {
                match self {
                    $(EventType::$variant => $name,)*
                    EventType::Custom(s) => s,
                }
            }

            /// A one-line description; `None` for custom types.
            pub fn description(&self) -> Option<&'static str> {
                match self {
                    $(EventType::$variant => Some($desc),)*
                    EventType::Custom(_) => None,
                }
            }

            /// Maps a name to its built-in type, or to `Custom` (unvalidated).
            pub fn parse(s: &str) -> EventType {
                match s {
                    $($name => EventType::$variant,)*
                    other => EventType::Custom(other.to_string()),
                }
            }
        }
    };
}

event_types! {
    Commit => "commit", "A commit was recorded.";
    Push => "push", "Commits were pushed to a remote.";
    PullRequest => "pull_request", "A pull request was opened, updated or closed.";
    FileChange => "file_change", "A file was modified.";
    FileCreate => "file_create", "A file was created.";
    FileDelete => "file_delete", "A file was deleted.";
    Clone => "clone", "A repository was cloned.";
    Fetch => "fetch", "Changes were fetched from a remote.";
    Merge => "merge", "Branches were merged.";
    Comment => "comment", "A comment was posted.";
    Review => "review", "A review was submitted.";
    AuthLogin => "auth_login", "A user logged in.";
    AuthLogout => "auth_logout", "A user logged out.";
    AuthApiKey => "auth_api_key", "An API key was used, created or revoked.";
    AuthFailure => "auth_failure", "An authentication or authorization attempt failed.";
    ApiRequest => "api_request", "An API request was received.";
    ApiResponse => "api_response", "An API response was sent.";
    ApiError => "api_error", "An API request failed.";
    SystemStart => "system_start", "A system or service started.";
    SystemStop => "system_stop", "A system or service stopped.";
    SystemConfig => "system_config", "A configuration was changed.";
}

impl EventType {
    /// Whether this is one of the 21 built-in types.
    pub fn is_builtin(&self) -> bool {
        !matches!(self, EventType::Custom(_))
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventType {
    type Err = ValidationError;
    /// Parses and validates: built-in names, or custom names matching the pattern.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = EventType::parse(s);
        if let EventType::Custom(name) = &t
            && !is_valid_custom_type(name)
        {
            return Err(ValidationError::new(
                "event_type",
                format!(
                    "`{name}` is neither a built-in type nor a custom type matching ^[a-z][a-z0-9_.]{{0,63}}$"
                ),
            ));
        }
        Ok(t)
    }
}

impl Serialize for EventType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(EventType::parse(&s))
    }
}

/// The outcome of an event. Parsed in any case (`Success`, `IN_PROGRESS`),
/// always written lowercase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// It worked.
    Success,
    /// It failed (counts towards `error_rate`).
    Failure,
    /// Not started yet.
    Pending,
    /// Under way.
    InProgress,
}

/// Severity of an event. Parsed in any case (`SECURITY`, `Error`), always
/// written lowercase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Routine (the default).
    #[default]
    Info,
    /// Worth a look.
    Warning,
    /// Something failed.
    Error,
    /// Security-relevant.
    Security,
}

macro_rules! str_enum {
    ($ty:ident, $field:literal, $( $v:ident => $s:literal ),*) => {
        impl $ty {
            /// Every value, in documentation order.
            pub const ALL: &'static [$ty] = &[$($ty::$v),*];
            /// The wire name.
            pub fn as_str(&self) -> &'static str {
                match self { $($ty::$v => $s,)* }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl $ty {
            /// The value named `s` in any ASCII case (clients of older
            /// systems send `SECURITY`, `Success`).
            fn parse_any_case(s: &str) -> Option<$ty> {
                $ty::ALL.iter().copied().find(|v| v.as_str().eq_ignore_ascii_case(s))
            }
        }
        impl FromStr for $ty {
            type Err = ValidationError;
            /// Accepts any case; the value is the canonical lowercase one.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $ty::parse_any_case(s).ok_or_else(|| {
                    ValidationError::new(
                        $field,
                        format!("`{s}` is not one of {}", [$($s),*].join(", ")),
                    )
                })
            }
        }
        impl utoipa::PartialSchema for $ty {
            /// A string naming a value in any case (JSON Schema has no
            /// case-insensitive enum): see [`any_case_schema`].
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                super::schema::any_case_schema(&[$($s),*])
            }
        }
        impl utoipa::ToSchema for $ty {}
        impl<'de> Deserialize<'de> for $ty {
            /// Like [`FromStr`]: any case in, the lowercase value stored.
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                $ty::parse_any_case(&s)
                    .ok_or_else(|| serde::de::Error::unknown_variant(&s, &[$($s),*]))
            }
        }
    };
}

str_enum!(Status, "status", Success => "success", Failure => "failure", Pending => "pending", InProgress => "in_progress");
str_enum!(Level, "level", Info => "info", Warning => "warning", Error => "error", Security => "security");
