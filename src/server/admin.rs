//! Admin endpoints: `POST /admin/rotate`, and the daily rotation schedule.

use std::sync::{Arc, Weak};

use chrono::NaiveTime;
use serde_json::json;
use warp::http::StatusCode;
use warp::reply::{Reply, Response};

use super::access::Ctx;
use super::reject::ApiError;
use super::{State, blocking};
use crate::auth::Principal;
use crate::event::{Event, EventType, SERVER_APPENDER, Status};
use crate::index::Wake;
use crate::rotate::purge::{self, PurgeReport};
use crate::rotate::{self, IndexMode, Kind, Options, Report, schedule as sched};

#[utoipa::path(
    post,
    path = "/admin/rotate",
    operation_id = "rotate",
    tag = "admin",
    summary = "Run a rotation now",
    description = "Compresses and deletes day files by the server's retention policy \
        (`dry_run`: plans only). All-tenants admin keys only (days are shared by every tenant).",
    params((
        "dry_run" = Option<String>, Query,
        pattern = "^(true|false|1|0)?$",
        description = "`true` (or `1`, or no value) plans only"
    )),
    responses((status = 200, description = "What the rotation did (or would do)", body = crate::rotate::Report)),
    security(("api_key" = []), ("bearer" = [])),
    extensions(("x-error-codes" = json!(["invalid_parameter", "forbidden", "rotation_running", "index_rebuilding"]))),
)]
/// `POST /admin/rotate[?dry_run=true]`: runs a rotation now with the
/// server's policy; admin only. Answers the rotation report.
pub(crate) async fn rotate(state: Arc<State>, ctx: Ctx, raw: String) -> Result<Response, ApiError> {
    let who = state.authenticate(&ctx)?;
    let mut dry_run = None;
    for (name, value) in super::params::pairs(&raw)? {
        if name != "dry_run" {
            return Err(ApiError::param(
                &name,
                "unknown parameter; this endpoint takes dry_run",
            ));
        }
        once(&mut dry_run, &name, bool_param(&name, &value)?)?;
    }
    let dry_run = dry_run.unwrap_or(false);
    state.require_all_tenants(&ctx, &who, "run rotation")?;
    // A task of its own: if the response budget runs out (a rotation of
    // large files can outlast it), the rotation still finishes and is recorded.
    let st = state.clone();
    let task = tokio::spawn(async move {
        let report = run_rotation(&st, dry_run).await?;
        if !dry_run {
            record(&st, Some(&who), &report);
        }
        Ok::<_, ApiError>(report)
    });
    let report = task
        .await
        .map_err(|e| ApiError::internal("a rotation task", e))??;
    Ok(warp::reply::with_status(warp::reply::json(&report), StatusCode::OK).into_response())
}

/// Sets `slot` to `v`, unless a parameter of that name came before.
fn once<T>(slot: &mut Option<T>, name: &str, v: T) -> Result<(), ApiError> {
    if slot.is_some() {
        return Err(ApiError::param(name, "given more than once"));
    }
    *slot = Some(v);
    Ok(())
}

/// A boolean parameter: `true`, `1` or no value; `false` or `0`.
fn bool_param(name: &str, value: &str) -> Result<bool, ApiError> {
    match value {
        "true" | "1" | "" => Ok(true),
        "false" | "0" => Ok(false),
        v => Err(ApiError::param(
            name,
            format!("`{v}` is not a boolean: want true or false"),
        )),
    }
}

#[utoipa::path(
    post,
    path = "/admin/purge",
    operation_id = "purge",
    tag = "admin",
    summary = "Delete the days older than a retention, with counts",
    description = "Deletes every day file older than `retention_days` days (whole days, \
        counted from the end of each UTC day) with its index documents, and answers how many \
        events went. A day that still holds an open event of level warning, error or security \
        is kept (and the days after it: deletions always take the oldest days), unless \
        `force`. `retention_days` below the configured minimum (`[rotation] \
        min_retention_days`, default 30) is refused. `dry_run` deletes nothing and answers \
        the same counts. Admin keys only.",
    params(
        (
            "retention_days" = u32, Query,
            minimum = 0, maximum = 36500,
            description = "Keep this many days; delete the older ones (at least the configured minimum)"
        ),
        (
            "dry_run" = Option<String>, Query,
            pattern = "^(true|false|1|0)?$",
            description = "`true` (or `1`, or no value) deletes nothing and answers what would go"
        ),
        (
            "force" = Option<String>, Query,
            pattern = "^(true|false|1|0)?$",
            description = "`true` (or `1`, or no value) deletes days holding open events too"
        ),
    ),
    responses((status = 200, description = "What the purge did (or would do)", body = crate::rotate::purge::PurgeReport)),
    security(("api_key" = []), ("bearer" = [])),
    extensions(("x-error-codes" = json!(["invalid_parameter", "forbidden", "rotation_running", "index_rebuilding"]))),
)]
/// `POST /admin/purge?retention_days=N[&dry_run=true][&force=true]`:
/// deletes the days older than N days (see [`crate::rotate::purge`]);
/// admin only. Answers the purge report.
pub(crate) async fn purge(state: Arc<State>, ctx: Ctx, raw: String) -> Result<Response, ApiError> {
    let who = state.authenticate(&ctx)?;
    let (mut days, mut dry_run, mut force) = (None, None, None);
    for (name, value) in super::params::pairs(&raw)? {
        match name.as_str() {
            "retention_days" => {
                let n = value.parse::<u32>().map_err(|_| {
                    ApiError::param(
                        &name,
                        format!("`{value}` is not a number of days: want a whole number, e.g. 90"),
                    )
                })?;
                once(&mut days, &name, n)?;
            }
            "dry_run" => once(&mut dry_run, &name, bool_param(&name, &value)?)?,
            "force" => once(&mut force, &name, bool_param(&name, &value)?)?,
            _ => {
                return Err(ApiError::param(
                    &name,
                    "unknown parameter; this endpoint takes retention_days, dry_run and force",
                ));
            }
        }
    }
    let Some(days) = days else {
        return Err(ApiError::param(
            "retention_days",
            "required: the days to keep, e.g. retention_days=90",
        ));
    };
    let min = settings(&state).min_retention_days;
    purge::check_retention(days, min).map_err(|m| ApiError::param("retention_days", m))?;
    let (dry_run, force) = (dry_run.unwrap_or(false), force.unwrap_or(false));
    state.require_all_tenants(&ctx, &who, "purge")?;
    // A task of its own, as rotate's: a purge cut off by the response
    // budget still finishes and is recorded.
    let st = state.clone();
    let task = tokio::spawn(async move {
        let opts = purge::options(days, st.log.clock().now(), dry_run, force);
        let report = PurgeReport::new(run(&st, opts).await?, days, force);
        if !dry_run {
            st.metrics
                .purged
                .with_label_values(&["purge"])
                .inc_by(report.deleted);
            record_purge(&st, &who, &report);
        }
        Ok::<_, ApiError>(report)
    });
    let report = task
        .await
        .map_err(|e| ApiError::internal("a purge task", e))??;
    Ok(warp::reply::with_status(warp::reply::json(&report), StatusCode::OK).into_response())
}

fn settings(state: &State) -> crate::settings::RotationSettings {
    *state.rotation.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs one rotation on the blocking pool with the server's policy; the
/// in-process indexer is woken (and waited for) after deletions.
pub(crate) async fn run_rotation(state: &Arc<State>, dry_run: bool) -> Result<Report, ApiError> {
    let s = settings(state);
    let mut opts = Options::new(s.policy, state.log.clock().now());
    opts.dry_run = dry_run;
    opts.keep_open = s.keep_open;
    let r = run(state, opts).await?;
    if !dry_run {
        state
            .metrics
            .purged
            .with_label_values(&["rotation"])
            .inc_by(r.deleted_event_count());
    }
    Ok(r)
}

/// Runs `opts` (a rotation or a purge) on the blocking pool beside the
/// in-process indexer, woken (and waited for) after deletions. A run that
/// fails logs its `EVENT_…_FAILED` line.
async fn run(state: &Arc<State>, mut opts: Options) -> Result<Report, ApiError> {
    let kind = opts.kind;
    let waker = state.indexer.waker();
    opts.index = IndexMode::Running {
        wake: Arc::new(move || {
            let _ = waker.try_send(Wake::Changed);
        }),
    };
    let dir = state.log.storage_path().to_path_buf();
    let at = dir.clone();
    let what = match kind {
        Kind::Rotation => "rotation",
        Kind::Purge => "purge",
    };
    match blocking(move || rotate::run(&dir, &opts)).await? {
        Ok(r) => {
            // The indexer committed the deletions; make sure the next
            // request's searcher sees that commit.
            if let Err(e) = state.search.reload() {
                tracing::warn!(error = %e, "reloading the index reader after {what}");
            }
            Ok(r)
        }
        Err(rotate::Error::Busy(_)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "rotation_running",
            format!(
                "another rotation or purge is running on this storage directory; try {what} again when it ends"
            ),
        )),
        Err(e @ rotate::Error::NoIndex(_)) => {
            // The index directory was deleted under the server: the indexer
            // is rebuilding it.
            tracing::warn!(error = %e, "{what} refused");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "index_rebuilding",
                format!(
                    "the index is being rebuilt; {what} runs once it is back (try again shortly)"
                ),
            ))
        }
        Err(e) => {
            kind.log_failure(&at, &e);
            Err(ApiError::internal(what, e))
        }
    }
}

/// Who ran it, for the report events: an admin key, or the daily schedule.
fn run_by(by: Option<&Principal>) -> String {
    by.map_or("the daily schedule".to_string(), |p| {
        format!("{} (key {})", p.user_id, p.key_id)
    })
}

/// Records a rotation as a `system_config` event of the user `evlog`, run
/// `by` an admin key (its id and user in `metadata.key_id` and
/// `metadata.operator`) or by the daily schedule (`None`). Never under the
/// admin's user: a `user` key of that name would read every report.
fn record(state: &State, by: Option<&Principal>, r: &Report) {
    let status = if r.ok() {
        Status::Success
    } else {
        Status::Failure
    };
    state.appender.append(
        Event::new(
            EventType::SystemConfig,
            SERVER_APPENDER,
            format!(
                "rotation by {}: {} file(s) compressed, {} deleted ({} events), {} failed{}",
                run_by(by),
                r.compressed.len(),
                r.deleted.len(),
                r.deleted_event_count(),
                r.failures.len(),
                if r.kept_open_days.is_empty() {
                    String::new()
                } else {
                    format!("; {} day(s) kept open", r.kept_open_days.len())
                }
            ),
        )
        .status(status)
        .metadata(json!({
            "compressed": r.compressed,
            "deleted": r.deleted,
            "deleted_events": r.deleted_events,
            "kept_open_days": r.kept_open_days,
            "kept_behind_open_days": r.kept_behind_open_days,
            "kept_unpublished_days": r.kept_unpublished_days,
            "failures": r.failures,
            "bytes_before": r.bytes_before,
            "bytes_after": r.bytes_after,
            "operator": by.map(|p| p.user_id.as_str()),
            "key_id": by.map(|p| p.key_id.as_str()),
        })),
    );
}

/// Records a purge as rotations are recorded ([`record`]), naming the admin key.
fn record_purge(state: &State, by: &Principal, r: &PurgeReport) {
    state.appender.append(r.event(
        &run_by(Some(by)),
        Some(by.user_id.as_str()),
        Some(by.key_id.as_str()),
    ));
}

/// The daily rotation: at `at` (UTC, by the log's clock) each day, and at
/// once on start when the last run (`rotate.last`) was missed by at most
/// `grace`; ends when the server shuts down or is dropped.
pub(crate) async fn schedule(state: Weak<State>, at: NaiveTime, grace: Option<chrono::Duration>) {
    let mut first = true;
    loop {
        let (mut shutdown, now, dir) = match state.upgrade() {
            Some(s) => (
                s.shutdown.subscribe(),
                s.log.clock().now(),
                s.log.storage_path().to_path_buf(),
            ),
            None => return,
        };
        let catch_up = first && {
            let last = blocking(move || sched::last_run(&dir)).await.ok().flatten();
            sched::missed(now, at, last, grace)
        };
        first = false;
        if catch_up {
            tracing::info!(
                "the daily rotation was missed while the server was down: running it now"
            );
        } else {
            let wait = (sched::next_run(now, at) - now)
                .to_std()
                .unwrap_or(std::time::Duration::from_secs(60));
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        }
        let Some(s) = state.upgrade() else { return };
        daily(&s).await;
        drop(s);
        // Never twice for one time of day, even if the clock went back.
        tokio::select! {
            () = tokio::time::sleep(std::time::Duration::from_secs(61)) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

/// One daily run: recorded in `rotate.last` first (a run that fails is not
/// retried at the next start), then reported as an event.
async fn daily(s: &Arc<State>) {
    let dir = s.log.storage_path().to_path_buf();
    let started = s.log.clock().now();
    match blocking(move || sched::record_run(&dir, started)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "recording the daily rotation's start"),
        Err(e) => tracing::warn!(error = %e.message, "recording the daily rotation's start"),
    }
    match run_rotation(s, false).await {
        Ok(r) => {
            tracing::info!(
                compressed = r.compressed.len(),
                deleted = r.deleted.len(),
                deleted_events = r.deleted_event_count(),
                kept_open_days = r.kept_open_days.len(),
                failed = r.failures.len(),
                bytes_before = r.bytes_before,
                bytes_after = r.bytes_after,
                "daily rotation done"
            );
            record(s, None, &r);
        }
        Err(e) => {
            // Failures of the run itself were logged by `run`; a refusal
            // (another rotation, the index rebuilding) is one for the daily run.
            if e.status != StatusCode::INTERNAL_SERVER_ERROR {
                Kind::Rotation.log_failure(s.log.storage_path(), &e.message);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boolean_parameters() {
        assert!(bool_param("dry_run", "").unwrap());
        assert!(bool_param("dry_run", "1").unwrap());
        assert!(!bool_param("force", "false").unwrap());
        assert!(bool_param("force", "yes").is_err());
    }
}
