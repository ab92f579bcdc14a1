//! Admin endpoints: `POST /admin/rotate`, and the daily rotation schedule.

use std::sync::{Arc, Weak};

use chrono::{DateTime, NaiveTime, Utc};
use serde_json::json;
use warp::http::StatusCode;
use warp::reply::{Reply, Response};

use super::access::Ctx;
use super::reject::ApiError;
use super::{State, blocking};
use crate::auth::Principal;
use crate::event::{Event, EventType, SERVER_APPENDER, Status};
use crate::index::Wake;
use crate::rotate::{self, IndexMode, Options, Report};

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
    let mut dry_run = false;
    let mut seen = false;
    for (name, value) in super::params::pairs(&raw)? {
        if name != "dry_run" {
            return Err(ApiError::param(
                &name,
                "unknown parameter; this endpoint takes dry_run",
            ));
        }
        if seen {
            return Err(ApiError::param(&name, "given more than once"));
        }
        seen = true;
        dry_run = match value.as_str() {
            "true" | "1" | "" => true,
            "false" | "0" => false,
            v => {
                return Err(ApiError::param(
                    "dry_run",
                    format!("`{v}` is not a boolean: want true or false"),
                ));
            }
        };
    }
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

/// Runs one rotation on the blocking pool with the server's policy; the
/// in-process indexer is woken (and waited for) after deletions.
pub(crate) async fn run_rotation(state: &Arc<State>, dry_run: bool) -> Result<Report, ApiError> {
    let policy = *state.rotation.lock().unwrap_or_else(|e| e.into_inner());
    let mut opts = Options::new(policy, state.log.clock().now());
    opts.dry_run = dry_run;
    let waker = state.indexer.waker();
    opts.index = IndexMode::Running {
        wake: Arc::new(move || {
            let _ = waker.try_send(Wake::Changed);
        }),
    };
    let dir = state.log.storage_path().to_path_buf();
    match blocking(move || rotate::run(&dir, &opts)).await? {
        Ok(r) => {
            // The indexer committed the deletions; make sure the next
            // request's searcher sees that commit.
            if let Err(e) = state.search.reload() {
                tracing::warn!(error = %e, "reloading the index reader after rotation");
            }
            Ok(r)
        }
        Err(rotate::Error::Busy(_)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "rotation_running",
            "another rotation is running on this storage directory; try again when it ends",
        )),
        Err(e @ rotate::Error::NoIndex(_)) => {
            // The index directory was deleted under the server: the indexer
            // is rebuilding it.
            tracing::warn!(error = %e, "rotation refused");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "index_rebuilding",
                "the index is being rebuilt; rotation runs once it is back (try again shortly)",
            ))
        }
        Err(e) => Err(ApiError::internal("rotation", e)),
    }
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
    let run_by = by.map_or("the daily schedule".to_string(), |p| {
        format!("{} (key {})", p.user_id, p.key_id)
    });
    state.appender.append(
        Event::new(
            EventType::SystemConfig,
            SERVER_APPENDER,
            format!(
                "rotation by {run_by}: {} file(s) compressed, {} deleted, {} failed",
                r.compressed.len(),
                r.deleted.len(),
                r.failures.len()
            ),
        )
        .status(status)
        .metadata(json!({
            "compressed": r.compressed,
            "deleted": r.deleted,
            "failures": r.failures,
            "bytes_before": r.bytes_before,
            "bytes_after": r.bytes_after,
            "operator": by.map(|p| p.user_id.as_str()),
            "key_id": by.map(|p| p.key_id.as_str()),
        })),
    );
}

/// The next `at` (UTC) strictly after `now`.
pub(crate) fn next_run(now: DateTime<Utc>, at: NaiveTime) -> DateTime<Utc> {
    let today = now.date_naive().and_time(at).and_utc();
    if today > now {
        today
    } else {
        today + chrono::Duration::days(1)
    }
}

/// The daily rotation: sleeps until `at` (UTC, by the system clock), runs,
/// repeats; ends when the server shuts down or is dropped.
pub(crate) async fn schedule(state: Weak<State>, at: NaiveTime) {
    loop {
        let mut shutdown = match state.upgrade() {
            Some(s) => s.shutdown.subscribe(),
            None => return,
        };
        let now = Utc::now();
        let wait = (next_run(now, at) - now)
            .to_std()
            .unwrap_or(std::time::Duration::from_secs(60));
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        let Some(s) = state.upgrade() else { return };
        match run_rotation(&s, false).await {
            Ok(r) => {
                tracing::info!(
                    compressed = r.compressed.len(),
                    deleted = r.deleted.len(),
                    failed = r.failures.len(),
                    bytes_before = r.bytes_before,
                    bytes_after = r.bytes_after,
                    "daily rotation done"
                );
                record(&s, None, &r);
            }
            Err(e) => tracing::error!(error = %e.message, "daily rotation did not run"),
        }
        // Never twice for one time of day, even if the clock went back.
        tokio::time::sleep(std::time::Duration::from_secs(61)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_run_is_today_or_tomorrow() {
        let at = NaiveTime::from_hms_opt(0, 15, 0).unwrap();
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert_eq!(
            next_run(t("2026-11-23T00:10:00Z"), at),
            t("2026-11-23T00:15:00Z")
        );
        assert_eq!(
            next_run(t("2026-11-23T00:15:00Z"), at),
            t("2026-11-24T00:15:00Z")
        );
        assert_eq!(
            next_run(t("2026-11-23T23:59:00Z"), at),
            t("2026-11-24T00:15:00Z")
        );
    }
}
