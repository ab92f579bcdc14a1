//! What an open export or live stream holds, and what ends it.
//!
//! A [`Lease`] is taken when an export or stream opens, after its key
//! authenticated: it counts against `max_streams_per_key` (429
//! `too_many_streams` beyond it) until it is dropped, whatever ends the
//! response. It keeps the key as presented and checks it again before each
//! page or batch is queued (reloading the keys file first if it changed),
//! on every change of the keys in force, and at the key's expiry: once the
//! key no longer authenticates as the same key, role and user, the response
//! ends.
//!
//! Responses are fed through a channel of [`Option`]s (`None` ends the body)
//! by an async task that holds no blocking thread while it waits: each page
//! query runs on the blocking pool, the send waits asynchronously for as
//! long as the client keeps reading; a client that reads nothing for
//! `write_timeout_ms` has its connection closed by the connection's write
//! timeout, which ends the response. The page queries of all open exports
//! and streams together run at most one per core at a time
//! ([`Lease::query`]): hundreds of exports filling their buffers at once
//! would otherwise queue every other request's query behind theirs on the
//! blocking pool. A task that ends a response early (revoked key) hangs up
//! its connection ([`Hangup`]): hyper, blocked on a socket that is not
//! being read, would not otherwise notice before the write timeout.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::Stream;
use tokio::sync::{Notify, mpsc, watch};
use warp::http::StatusCode;

use super::access::{Ctx, Presented};
use super::reject::ApiError;
use super::{State, blocking};
use crate::auth::{Denied, Granted, Principal};

/// Seconds a client refused by the per-key cap is told to wait.
const RETRY_AFTER_SECS: u32 = 5;

/// How long a response ended by the server waits for its last message to
/// reach the connection before the connection is closed.
const END_GRACE: Duration = Duration::from_secs(1);

/// Open exports and streams per key id, and the permits of their page queries.
#[derive(Debug)]
pub(crate) struct Open {
    per_key: Mutex<HashMap<String, usize>>,
    queries: tokio::sync::Semaphore,
}

impl Default for Open {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Open {
            per_key: Mutex::default(),
            queries: tokio::sync::Semaphore::new(cores.max(2)),
        }
    }
}

impl Open {
    /// One of the permits of the heavy reads that requests other than
    /// plain queries make (export and stream pages, the duplicate-id scan
    /// of unindexed lines): one per core at a time, waiting without a thread.
    pub(crate) async fn heavy_read(&self) -> Result<tokio::sync::SemaphorePermit<'_>, ApiError> {
        self.queries
            .acquire()
            .await
            .map_err(|e| ApiError::internal("a page query", e))
    }
}

/// Closes the connection a request came on (put into each request by the
/// server's accept loop; absent under `warp::test`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Hangup(Arc<Notify>);

impl Hangup {
    /// Closes the connection (at once, whatever it is writing).
    pub(crate) fn hang_up(&self) {
        self.0.notify_one();
    }

    /// Resolves once [`Hangup::hang_up`] was called.
    pub(crate) async fn wait(&self) {
        self.0.notified().await;
    }
}

/// Why an open export or stream ends before its end.
#[derive(Debug)]
pub(crate) enum Ending {
    /// Its key no longer authenticates as it did: an error code and message.
    Key(&'static str, String),
    /// Its client went away, or stopped reading for `write_timeout_ms`
    /// (the connection's write timeout closed it).
    Gone,
}

/// An open export or live stream: its key and its place under the cap.
pub(crate) struct Lease {
    state: Arc<State>,
    key: String,
    who: Principal,
    expires: Option<DateTime<Utc>>,
    keys: watch::Receiver<u64>,
}

impl Lease {
    /// Takes a place under `max_streams_per_key` for the key of `ctx`,
    /// granted as `granted`; 429 `too_many_streams` when the key has none left.
    pub(crate) fn open(state: &Arc<State>, ctx: &Ctx, granted: Granted) -> Result<Lease, ApiError> {
        let Presented::Key(key) = &ctx.key else {
            return Err(ApiError::internal("opening a stream", "no key presented"));
        };
        let max = state.limits.max_streams_per_key.max(1);
        {
            let mut open = state
                .streams
                .per_key
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let n = open.entry(granted.principal.key_id.clone()).or_default();
            if *n >= max {
                let mut e = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_streams",
                    format!(
                        "this key has {max} live stream(s) and export(s) open (limit max_streams_per_key); retry when one ends"
                    ),
                );
                e.retry_after = Some(RETRY_AFTER_SECS);
                return Err(e);
            }
            *n += 1;
        }
        Ok(Lease {
            keys: state.keys.subscribe(),
            state: state.clone(),
            key: key.clone(),
            who: granted.principal,
            expires: granted.expires,
        })
    }

    /// Who holds it.
    pub(crate) fn who(&self) -> &Principal {
        &self.who
    }

    /// Runs a page query on the blocking pool, once one of the page-query
    /// permits shared by every export and stream is free (waiting for it
    /// holds no thread, and ends early if the key goes meanwhile).
    pub(crate) async fn query<T: Send + 'static>(
        &mut self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<Result<T, ApiError>, Ending> {
        let state = self.state.clone();
        let permit = loop {
            tokio::select! {
                permit = state.streams.heavy_read() => break permit,
                checked = self.next_check() => checked?,
            }
        };
        let _permit = match permit {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        Ok(blocking(f).await)
    }

    /// Whether the key still authenticates as the same key, role and user,
    /// the keys file reloaded first if it changed (a `stat` otherwise). Call
    /// before queueing what was read, so that nothing read after a
    /// revocation is sent.
    pub(crate) fn check(&mut self) -> Result<(), Ending> {
        self.state.reload_keys();
        match self.state.keys.authenticate(&self.key, Utc::now()) {
            Ok(g) if g.principal == self.who => {
                self.expires = g.expires;
                Ok(())
            }
            Ok(g) => Err(Ending::Key(
                "key_changed",
                format!(
                    "the API key {} changed (now a {} key of {}): this response ended",
                    self.who.key_id,
                    g.principal.role.as_str(),
                    g.principal.user_id
                ),
            )),
            Err(d) => Err(ended_by(&self.who.key_id, d)),
        }
    }

    /// Waits for a change of the keys in force or the key's expiry, then
    /// checks the key.
    async fn next_check(&mut self) -> Result<(), Ending> {
        let expiry = self.expires;
        let until_expiry = async move {
            match expiry {
                Some(at) => {
                    let left = (at - Utc::now()).to_std().unwrap_or_default();
                    tokio::time::sleep(left).await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = self.keys.changed() => {
                if changed.is_err() {
                    // The key store went away with the server: nothing changes any more.
                    std::future::pending::<()>().await;
                }
            }
            () = until_expiry => {}
        }
        self.check()
    }

    /// Resolves, with the reason, once the key no longer authenticates as it did.
    pub(crate) async fn revoked(&mut self) -> Ending {
        loop {
            if let Err(e) = self.next_check().await {
                return e;
            }
        }
    }

    /// A place in `tx` for one item, once the client has taken what is
    /// queued; ends early if the key goes. A slow client that keeps reading
    /// is waited for however long its page takes: what ends a stalled one
    /// is the connection's write timeout (`write_timeout_ms` without any
    /// progress), which closes the connection and with it `tx`.
    pub(crate) async fn reserve<'a, T>(
        &mut self,
        tx: &'a mpsc::Sender<Option<T>>,
    ) -> Result<mpsc::Permit<'a, Option<T>>, Ending> {
        match tx.try_reserve() {
            Ok(p) => return Ok(p),
            Err(mpsc::error::TrySendError::Closed(())) => return Err(Ending::Gone),
            Err(mpsc::error::TrySendError::Full(())) => {}
        }
        loop {
            tokio::select! {
                permit = tx.reserve() => return permit.map_err(|_| Ending::Gone),
                checked = self.next_check() => checked?,
            }
        }
    }

    /// Queues `item` into `tx` (see [`Lease::reserve`]).
    pub(crate) async fn send<T>(
        &mut self,
        tx: &mpsc::Sender<Option<T>>,
        item: T,
    ) -> Result<(), Ending> {
        self.reserve(tx).await?.send(Some(item));
        Ok(())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut open = self
            .state
            .streams
            .per_key
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.who.key_id) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.who.key_id);
            }
        }
    }
}

/// How an open response tells its client that its key stopped authenticating.
fn ended_by(key_id: &str, d: Denied) -> Ending {
    match d {
        Denied::Unknown => Ending::Key(
            "key_revoked",
            format!("the API key {key_id} was revoked: this response ended"),
        ),
        Denied::Expired { at, .. } => Ending::Key(
            "key_expired",
            format!(
                "the API key {key_id} expired at {}: this response ended",
                crate::event::format_timestamp(&at)
            ),
        ),
        Denied::NoKeysFile => Ending::Key(
            "key_revoked",
            "the server's keys file was removed: no key is accepted; this response ended".into(),
        ),
        Denied::Unavailable(why) => Ending::Key(
            "keys_unavailable",
            format!(
                "the server cannot load its keys ({why}): no key is accepted; this response ended"
            ),
        ),
    }
}

/// A response body fed through a channel of `cap` items: `Some(item)` is
/// sent, `None` ends the body. The sender stays open after the end, so that
/// [`mpsc::Sender::closed`] says when the connection is done with the body.
pub(crate) fn body<T: Send + 'static>(
    cap: usize,
) -> (
    mpsc::Sender<Option<T>>,
    impl Stream<Item = T> + Send + 'static,
) {
    let (tx, mut rx) = mpsc::channel::<Option<T>>(cap);
    let mut done = false;
    let stream = futures_util::stream::poll_fn(move |cx| {
        if done {
            return std::task::Poll::Ready(None);
        }
        match rx.poll_recv(cx) {
            std::task::Poll::Ready(Some(Some(item))) => std::task::Poll::Ready(Some(item)),
            std::task::Poll::Ready(_) => {
                done = true;
                std::task::Poll::Ready(None)
            }
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    });
    (tx, stream)
}

/// Ends a body early: queues `last` (if there is room) and the end, waits a
/// moment for the connection to take them, then hangs up.
pub(crate) async fn end_early<T>(
    tx: mpsc::Sender<Option<T>>,
    last: Option<T>,
    hangup: Option<&Hangup>,
) {
    let deadline = tokio::time::Instant::now() + END_GRACE;
    let queued =
        last.is_none_or(|item| tx.try_send(Some(item)).is_ok()) && tx.try_send(None).is_ok();
    hang_up_after(tx, queued, deadline, hangup).await;
}

/// Ends a body with a last message: waits for room for it (the client
/// taking what was queued before it: a live stream's body holds one batch),
/// queues it and the end, waits for the connection to take them, then hangs
/// up; [`END_GRACE`] in all.
pub(crate) async fn end_with<T>(tx: mpsc::Sender<Option<T>>, last: T, hangup: Option<&Hangup>) {
    let deadline = tokio::time::Instant::now() + END_GRACE;
    let send = async { tx.send(Some(last)).await.is_ok() && tx.send(None).await.is_ok() };
    let queued = tokio::time::timeout_at(deadline, send)
        .await
        .unwrap_or(false);
    hang_up_after(tx, queued, deadline, hangup).await;
}

/// Waits until `deadline` for the connection to be done with a body whose
/// end is `queued`, then hangs up.
async fn hang_up_after<T>(
    tx: mpsc::Sender<Option<T>>,
    queued: bool,
    deadline: tokio::time::Instant,
    hangup: Option<&Hangup>,
) {
    if queued {
        tokio::select! {
            () = tx.closed() => return,
            () = tokio::time::sleep_until(deadline) => {}
        }
    }
    if let Some(h) = hangup {
        h.hang_up();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use futures_util::StreamExt;

    use super::*;

    /// A live stream ended by its key while a batch is still queued: the
    /// `end` message follows the batch once the client takes it.
    #[tokio::test]
    async fn a_last_message_waits_for_what_was_queued_before_it() {
        let (tx, body) = body::<u32>(1);
        tx.send(Some(1)).await.unwrap();
        let hangup = Hangup::default();
        let ending = tokio::spawn({
            let hangup = hangup.clone();
            async move { end_with(tx, 2, Some(&hangup)).await }
        });
        assert_eq!(body.collect::<Vec<_>>().await, [1, 2]);
        ending.await.unwrap();
        let hung_up = tokio::time::timeout(Duration::from_millis(50), hangup.wait()).await;
        assert!(hung_up.is_err(), "the client took it all: no hang-up");
    }

    /// A client that takes nothing is hung up on once the grace is over,
    /// and gets nothing more.
    #[tokio::test]
    async fn a_client_that_takes_nothing_is_hung_up_on_after_the_grace() {
        let (tx, body) = body::<u32>(1);
        tx.send(Some(1)).await.unwrap();
        let hangup = Hangup::default();
        let start = Instant::now();
        end_with(tx, 2, Some(&hangup)).await;
        assert!(start.elapsed() >= END_GRACE);
        tokio::time::timeout(Duration::from_secs(10), hangup.wait())
            .await
            .expect("hung up");
        assert_eq!(body.collect::<Vec<_>>().await, [1]);
    }
}
