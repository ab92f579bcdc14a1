//! Resolving and reopening events, in an append-only log.
//!
//! A stored line is never changed. Resolving an event appends an
//! `event_resolved` event and reopening it an `event_reopened` event; each
//! names its target in `metadata.target_id` (and carries the optional
//! `metadata.note`). An event's current state is derived from these: the
//! one with the highest `seq` among those naming it wins, and an event no
//! resolution names is open. The index keeps that state (see
//! [`crate::index::resolved`]); `jq` on the day files can derive it too:
//!
//! ```text
//! jq -c 'select(.event_type == "event_resolved" or .event_type == "event_reopened")
//!        | {target: .metadata.target_id, type: .event_type, seq}' events_*.jsonl
//! ```
//!
//! Over HTTP only `POST /events/{id}/resolve` and `/reopen` (admin) append
//! them; the library and the CLI (`evlog resolve`, `evlog reopen`) go
//! through [`resolution_event`].

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::event::{Event, EventType, Level, Status, ValidationError};

/// The type of the event that resolves another.
pub const RESOLVED_TYPE: &str = "event_resolved";
/// The type of the event that reopens another.
pub const REOPENED_TYPE: &str = "event_reopened";
/// Longest accepted note, in characters.
pub const MAX_NOTE_CHARS: usize = 2000;

/// What a resolution event does to its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `event_resolved`.
    Resolve,
    /// `event_reopened`.
    Reopen,
}

impl Action {
    /// The event type that records it.
    pub fn event_type(self) -> &'static str {
        match self {
            Action::Resolve => RESOLVED_TYPE,
            Action::Reopen => REOPENED_TYPE,
        }
    }

    /// The action an event type records, if it is a resolution type.
    pub fn of_type(t: &str) -> Option<Action> {
        match t {
            RESOLVED_TYPE => Some(Action::Resolve),
            REOPENED_TYPE => Some(Action::Reopen),
            _ => None,
        }
    }

    /// Whether the target is resolved after it.
    pub fn resolves(self) -> bool {
        self == Action::Resolve
    }

    /// The verb of its route (`POST /events/{id}/resolve`, `/reopen`) and
    /// CLI command.
    pub fn verb(self) -> &'static str {
        match self {
            Action::Resolve => "resolve",
            Action::Reopen => "reopen",
        }
    }

    /// The verb, for messages (`resolved`, `reopened`).
    pub fn past(self) -> &'static str {
        match self {
            Action::Resolve => "resolved",
            Action::Reopen => "reopened",
        }
    }
}

/// The event recording that `by` resolved or reopened `target`, with an
/// optional note. The caller sets `appended_by`, `request_id` and the like.
pub fn resolution_event(action: Action, target: Uuid, by: &str, note: Option<&str>) -> Event {
    let mut meta = Map::new();
    meta.insert("target_id".into(), target.to_string().into());
    if let Some(n) = note {
        meta.insert("note".into(), n.into());
    }
    let verb = match action {
        Action::Resolve => "Resolved",
        Action::Reopen => "Reopened",
    };
    let description = match note {
        Some(n) => format!("{verb} event {target}: {n}"),
        None => format!("{verb} event {target}"),
    };
    Event::new(
        EventType::Custom(action.event_type().into()),
        by,
        description,
    )
    .status(Status::Success)
    .level(Level::Info)
    .metadata(Value::Object(meta))
}

/// The action and target of a resolution event; `None` for any other
/// event, or one whose `metadata.target_id` is not a UUID (refused at
/// append by [`check`], but a day file may come from elsewhere).
pub fn target_of(e: &Event) -> Option<(Action, Uuid)> {
    let action = Action::of_type(e.event_type.as_str())?;
    let id = e.metadata.as_ref()?.get("target_id")?.as_str()?;
    Some((action, Uuid::parse_str(id).ok()?))
}

/// Checks the fields a resolution event must have: a UUID in
/// `metadata.target_id`, a note (if any) of at most [`MAX_NOTE_CHARS`]. Other
/// events pass.
pub fn check(e: &Event) -> Result<(), ValidationError> {
    let Some(action) = Action::of_type(e.event_type.as_str()) else {
        return Ok(());
    };
    let meta = e.metadata.as_ref().and_then(Value::as_object);
    let target = meta.and_then(|m| m.get("target_id"));
    if target
        .and_then(Value::as_str)
        .is_none_or(|t| Uuid::parse_str(t).is_err())
    {
        return Err(ValidationError::new(
            "metadata.target_id",
            format!(
                "an {} event names the event it {} by its id (a UUID)",
                action.event_type(),
                action.past()
            ),
        ));
    }
    check_note(meta.and_then(|m| m.get("note")))
}

/// Checks a note: a string of at most [`MAX_NOTE_CHARS`] characters.
pub fn check_note(note: Option<&Value>) -> Result<(), ValidationError> {
    match note {
        None => Ok(()),
        Some(Value::String(s)) if s.chars().count() <= MAX_NOTE_CHARS => Ok(()),
        Some(Value::String(s)) => Err(ValidationError::new(
            "note",
            format!(
                "must be at most {MAX_NOTE_CHARS} characters (got {})",
                s.chars().count()
            ),
        )),
        Some(_) => Err(ValidationError::new("note", "must be a string")),
    }
}

/// Why [`plan`] cannot resolve or reopen an event.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// No indexed event has the id.
    #[error("no event with id {0}")]
    NotFound(Uuid),
    /// The caller may not see the target (another tenant's): answered as
    /// [`PlanError::NotFound`] by the caller, which may record it.
    #[error("no event with id {0}")]
    Hidden(Uuid, Value),
    /// The target records a resolution itself.
    #[error(
        "event {0} is an {1} event: it records a resolution; resolve or reopen the event it names"
    )]
    NotResolvable(Uuid, String),
    /// The index failed.
    #[error(transparent)]
    Index(#[from] crate::index::Error),
}

/// What resolving or reopening `target` takes, as of `search`.
#[derive(Debug)]
pub struct Plan {
    /// The target, as the API returns it.
    pub target: Value,
    /// Its state now (`None`: open, never resolved).
    pub current: Option<crate::index::resolved::State>,
    /// The event to append; `None` when the target already is in the
    /// state asked for (resolving a resolved event changes nothing).
    pub event: Option<Event>,
}

/// Looks `target` up in the index and plans its resolution by `by`: the
/// one path of the server's routes and of `evlog resolve` / `evlog reopen`.
/// A target `visible` refuses is [`PlanError::Hidden`], before anything
/// else is said about it. The resolution takes the target's tenant.
pub fn plan(
    search: &crate::index::IndexSearch,
    action: Action,
    target: Uuid,
    by: &str,
    note: Option<&str>,
    visible: impl Fn(&Value) -> bool,
) -> Result<Plan, PlanError> {
    let event = search.get(target)?.ok_or(PlanError::NotFound(target))?;
    if !visible(&event) {
        return Err(PlanError::Hidden(target, event));
    }
    let ty = event["event_type"].as_str().unwrap_or_default();
    if Action::of_type(ty).is_some() {
        return Err(PlanError::NotResolvable(target, ty.to_string()));
    }
    let current = search.resolutions()?.state(&target).cloned();
    let is_resolved = current.as_ref().is_some_and(|s| s.resolved);
    let tenant = event["tenant"].as_str().map(str::to_string);
    Ok(Plan {
        target: event,
        event: (is_resolved != action.resolves()).then(|| {
            let mut e = resolution_event(action, target, by, note);
            e.tenant = tenant;
            e
        }),
        current,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resolution_names_its_target_and_passes_validation() {
        let target = Uuid::now_v7();
        let e = resolution_event(Action::Resolve, target, "alice", Some("fixed in 1.2"));
        e.validate().unwrap();
        assert_eq!(target_of(&e), Some((Action::Resolve, target)));
        assert_eq!(
            e.action_description,
            format!("Resolved event {target}: fixed in 1.2")
        );
        let r = resolution_event(Action::Reopen, target, "bob", None);
        assert_eq!(target_of(&r), Some((Action::Reopen, target)));
        assert_eq!(r.metadata.as_ref().unwrap().get("note"), None);
    }

    #[test]
    fn a_resolution_without_a_target_is_refused() {
        let e = Event::new(EventType::Custom(RESOLVED_TYPE.into()), "u", "resolved");
        let err = e.validate().unwrap_err();
        assert_eq!(err.field, "metadata.target_id");
        let e = e.metadata(serde_json::json!({"target_id": "nope"}));
        assert_eq!(e.validate().unwrap_err().field, "metadata.target_id");
        assert_eq!(target_of(&e), None);
        let e = Event::new(EventType::Custom(REOPENED_TYPE.into()), "u", "r")
            .metadata(serde_json::json!({"target_id": Uuid::nil().to_string(), "note": 3}));
        assert_eq!(e.validate().unwrap_err().field, "note");
        // Any other event passes, whatever its metadata.
        Event::new(EventType::Commit, "u", "c")
            .metadata(serde_json::json!({"target_id": 1}))
            .validate()
            .unwrap();
    }
}
