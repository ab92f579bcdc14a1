//! `evlog resolve ID` and `evlog reopen ID`: append the `event_resolved` /
//! `event_reopened` event that changes an event's state (see
//! [`crate::resolution`]).

use std::process::ExitCode;

use uuid::Uuid;

use super::{Context, EXIT_ERROR, search};
use crate::resolution::{self, Action, PlanError};

/// Flags of `evlog resolve` and `evlog reopen`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The id of the event.
    #[arg(value_name = "ID")]
    id: String,
    /// Why, stored with the resolution (at most 2000 characters).
    #[arg(long, value_name = "TEXT")]
    note: Option<String>,
    /// Who does it: the resolution event's user_id (default: $USER).
    #[arg(long, value_name = "USER")]
    by: Option<String>,
}

pub(crate) fn run(ctx: &Context, args: Args, action: Action) -> anyhow::Result<ExitCode> {
    let Ok(id) = Uuid::parse_str(args.id.trim()) else {
        eprintln!("error: `{}` is not an event id (a UUID)", args.id);
        return Ok(ExitCode::from(EXIT_ERROR));
    };
    if let Err(e) = resolution::check_note(args.note.clone().map(Into::into).as_ref()) {
        eprintln!("error: --note {}", e.message);
        return Ok(ExitCode::from(EXIT_ERROR));
    }
    let by = args
        .by
        .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| "cli".to_string());
    let search = search::fresh_search(&ctx.store.storage_path)?;
    let plan = match resolution::plan(&search, action, id, &by, args.note.as_deref(), |_| true) {
        Ok(p) => p,
        Err(
            e @ (PlanError::NotFound(_) | PlanError::Hidden(..) | PlanError::NotResolvable(..)),
        ) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(EXIT_ERROR));
        }
        Err(PlanError::Index(e)) => return Err(e.into()),
    };
    let Some(event) = plan.event else {
        println!("{id} was already {}; nothing appended", action.past());
        return Ok(ExitCode::SUCCESS);
    };
    let log = ctx.open_log()?;
    let rid = log.append(event).map_err(super::store_error);
    let closed = log.close().map_err(super::store_error);
    let rid = rid?;
    closed?;
    println!("{id} {} (event {rid})", action.past());
    Ok(ExitCode::SUCCESS)
}
