//! The follower: a durable pull consumer on the stream whose messages are
//! appended into this node's store — id, timestamp and content kept, the
//! origin node added — and acknowledged only once that append is durable.
//!
//! Exactly once: a message is redelivered when its acknowledgement was
//! lost (the follower killed between its append and its ack), and the
//! stream holds an event twice when its publisher re-published it after
//! the duplicate window. Either way the id is already stored here, and the
//! copy is acknowledged without a second line. Stored means in the index
//! (which the follower waits for at start, so that it holds every line
//! written before) or appended by this follower since.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, AckKind, consumer::pull};
use futures_util::StreamExt;
use tokio::sync::watch;
use uuid::Uuid;

use super::nats::{self, NatsConfig};
use super::publish::NODE_HEADER;
use crate::event::Event;
use crate::index::IndexSearch;
use crate::store::EventLog;

/// Messages fetched (and appended in one batch) at a time, at most.
const BATCH: usize = 1000;
/// How long a fetch waits for messages.
const FETCH_WAIT: Duration = Duration::from_millis(500);
/// Ids remembered beyond the index; past this the follower waits for the
/// index to hold them, then forgets them.
const MAX_RECENT: usize = 1 << 20;

/// Where and what to follow.
#[derive(Debug, Clone)]
pub struct FollowConfig {
    /// The stream.
    pub nats: NatsConfig,
    /// The durable consumer's name (it keeps the follower's place).
    pub consumer: String,
    /// Only the subjects matching this (`evlog.acme.>`: one tenant).
    pub filter: Option<String>,
    /// This node's name: the events it published itself (when it also
    /// publishes to the stream) are already here, and skipped.
    pub node: String,
}

/// Ids being appended right now, shared by the follower and the server's
/// appends that give their own ids (`serve --follow`): an id is appended by
/// one of them at a time, so a copy and a client's append of the same id
/// cannot both pass the check for a stored event.
pub type Claims = Arc<std::sync::Mutex<HashSet<Uuid>>>;

/// Redelivery delay of a message whose id another append holds.
const BUSY_DELAY: Duration = Duration::from_millis(500);

/// What the follower has done, for `/health`, `/metrics` and the CLI.
#[derive(Debug, Default)]
pub struct FollowStatus {
    /// Whether the last exchange with the stream succeeded.
    pub link_up: AtomicBool,
    /// Events appended here.
    pub appended: AtomicU64,
    /// Copies of events already stored here, acknowledged without a line.
    pub duplicates: AtomicU64,
    /// Messages that are not evlog events, refused (terminated).
    pub refused: AtomicU64,
    /// Messages the stream holds for this consumer that it has not yet
    /// delivered (as of the last message).
    pub pending: AtomicU64,
    /// The last error.
    pub last_error: std::sync::Mutex<Option<String>>,
}

impl FollowStatus {
    fn failed(&self, why: String) {
        self.link_up.store(false, Ordering::Relaxed);
        tracing::warn!(key = "FOLLOW_FAILED", "follow: {why}");
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
    }
}

/// The events of a batch of messages to append, and what to do with each
/// message once they are.
struct Batch {
    events: Vec<Event>,
    acks: Vec<(jetstream::Message, AckKind)>,
}

/// The ids a batch claimed, released on drop.
struct Claimed<'a> {
    claims: &'a Claims,
    ids: Vec<Uuid>,
}

impl Drop for Claimed<'_> {
    fn drop(&mut self) {
        let mut c = self.claims.lock().unwrap_or_else(|e| e.into_inner());
        for id in &self.ids {
            c.remove(id);
        }
    }
}

/// Follows the stream into `log` until `stop` turns true. `claims` are
/// shared with whatever else appends client-given ids to `log`.
pub async fn run(
    cfg: FollowConfig,
    log: EventLog,
    search: IndexSearch,
    claims: Claims,
    status: Arc<FollowStatus>,
    mut stop: watch::Receiver<bool>,
) {
    let mut recent: HashSet<Uuid> = HashSet::new();
    let mut backoff = super::MIN_BACKOFF;
    while !*stop.borrow() {
        let began = Instant::now();
        let attempt = follow_until_error(
            &cfg,
            &log,
            &search,
            &claims,
            &mut recent,
            &status,
            &mut stop,
        );
        match attempt.await {
            Ok(()) => return,
            Err(why) => {
                status.failed(why);
                super::pause(&mut backoff, began, &mut stop).await;
            }
        }
    }
}

async fn follow_until_error(
    cfg: &FollowConfig,
    log: &EventLog,
    search: &IndexSearch,
    claims: &Claims,
    recent: &mut HashSet<Uuid>,
    status: &FollowStatus,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), String> {
    let client = nats::connect(&cfg.nats, &format!("evlog follower {}", cfg.consumer))
        .await
        .map_err(|e| e.to_string())?;
    let js = jetstream::new(client);
    let stream = nats::ensure_stream(&js, &cfg.nats)
        .await
        .map_err(|e| e.to_string())?;
    let consumer: jetstream::consumer::PullConsumer = stream
        .get_or_create_consumer(
            &cfg.consumer,
            pull::Config {
                durable_name: Some(cfg.consumer.clone()),
                filter_subject: cfg.filter.clone().unwrap_or_default(),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                deliver_policy: jetstream::consumer::DeliverPolicy::All,
                ack_wait: Duration::from_secs(30),
                max_ack_pending: 20_000,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| format!("consumer {}: {e}", cfg.consumer))?;
    // An existing durable consumer keeps the filter it was made with.
    let wanted = cfg.filter.clone().unwrap_or_default();
    let has = &consumer.cached_info().config.filter_subject;
    if *has != wanted {
        return Err(format!(
            "consumer {} exists with the filter `{has}`, not `{wanted}`: give this follower \
             another --consumer name (a new one starts from the stream's first message), or \
             delete that consumer (`nats consumer rm {} {}`)",
            cfg.consumer, cfg.nats.stream, cfg.consumer
        ));
    }
    status.link_up.store(true, Ordering::Relaxed);
    // Lines appended before this process (a copy appended, then the
    // follower killed before its ack) must be in the index before the
    // redeliveries are checked against it.
    if recent.is_empty() {
        wait_for_index(log, search).await?;
    }
    loop {
        if *stop.borrow() {
            return Ok(());
        }
        let got = next_batch(&consumer).await?;
        if got.is_empty() {
            continue;
        }
        if recent.len() > MAX_RECENT {
            wait_for_index(log, search).await?;
            recent.clear();
        }
        let (batch, claimed) = sort_out(got, &cfg.node, search, claims, recent, status)?;
        let ids: Vec<Uuid> = batch.events.iter().filter_map(|e| e.id).collect();
        if !batch.events.is_empty() {
            let log = log.clone();
            let events = batch.events;
            tokio::task::spawn_blocking(move || log.append_copies(events))
                .await
                .map_err(|e| format!("append: {e}"))?
                .map_err(|e| format!("append: {e}"))?;
            status
                .appended
                .fetch_add(ids.len() as u64, Ordering::Relaxed);
            recent.extend(ids);
        }
        drop(claimed);
        // Durable now: acknowledge.
        for (m, kind) in batch.acks {
            m.ack_with(kind)
                .await
                .map_err(|e| format!("acknowledgement: {e}"))?;
        }
        status.link_up.store(true, Ordering::Relaxed);
    }
}

/// The messages waiting for this consumer, up to [`BATCH`]: at once when
/// there are some; else the first to arrive within [`FETCH_WAIT`] and
/// those behind it (none when nothing came).
async fn next_batch(
    consumer: &jetstream::consumer::PullConsumer,
) -> Result<Vec<jetstream::Message>, String> {
    async fn drain(
        b: Result<pull::Batch, impl std::fmt::Display>,
    ) -> Result<Vec<jetstream::Message>, String> {
        let mut b = b.map_err(|e| format!("fetch: {e}"))?;
        let mut got = Vec::new();
        while let Some(m) = b.next().await {
            got.push(m.map_err(|e| format!("fetch: {e}"))?);
        }
        Ok(got)
    }
    // `fetch` answers at once, with what is there.
    let got = drain(consumer.fetch().max_messages(BATCH).messages().await).await?;
    if !got.is_empty() {
        return Ok(got);
    }
    // `batch` waits until its messages came or it expires: one message.
    let mut got = drain(
        consumer
            .batch()
            .max_messages(1)
            .expires(FETCH_WAIT)
            .messages()
            .await,
    )
    .await?;
    if !got.is_empty() {
        got.extend(drain(consumer.fetch().max_messages(BATCH - 1).messages().await).await?);
    }
    Ok(got)
}

/// The events of `messages` not stored here yet (and not twice in the
/// batch), claimed, and each message's acknowledgement: `Ack`, `Term` for
/// a message that is not an evlog event, or a delayed `Nak` for one whose
/// id another append holds (it comes back, and is then found stored or
/// appended).
fn sort_out<'a>(
    messages: Vec<jetstream::Message>,
    node: &str,
    search: &IndexSearch,
    claims: &'a Claims,
    recent: &HashSet<Uuid>,
    status: &FollowStatus,
) -> Result<(Batch, Claimed<'a>), String> {
    let mut parsed: Vec<(jetstream::Message, Option<Event>)> = Vec::with_capacity(messages.len());
    let mut own = Vec::new();
    for m in messages {
        if let Ok(info) = m.info() {
            status.pending.store(info.pending, Ordering::Relaxed);
        }
        // Another node's signed checkpoints: theirs to verify, not events.
        if crate::checkpoint::deliver::is_checkpoint_subject(&m.subject) {
            own.push((m, AckKind::Ack));
            continue;
        }
        if published_by(&m) == Some(node) {
            status.duplicates.fetch_add(1, Ordering::Relaxed);
            own.push((m, AckKind::Ack));
            continue;
        }
        let event = match copy_of(&m) {
            Ok(e) => Some(e),
            Err(why) => {
                status.refused.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    key = "FOLLOW_REFUSED",
                    subject = %m.subject,
                    "follow: not an evlog event, refused: {why}"
                );
                None
            }
        };
        parsed.push((m, event));
    }
    let asked: HashSet<Uuid> = parsed
        .iter()
        .filter_map(|(_, e)| e.as_ref().and_then(|e| e.id))
        .filter(|id| !recent.contains(id))
        .collect();
    // Claimed before the index is asked: an append of the same id that
    // starts later finds the claim, or (once this batch is written) the line.
    let (claimed, busy) = {
        let mut c = claims.lock().unwrap_or_else(|e| e.into_inner());
        let busy: HashSet<Uuid> = asked.iter().filter(|id| c.contains(id)).copied().collect();
        let mine: Vec<Uuid> = asked.difference(&busy).copied().collect();
        c.extend(mine.iter().copied());
        (Claimed { claims, ids: mine }, busy)
    };
    let indexed = search
        .indexed_ids(&asked)
        .map_err(|e| format!("checking ids in the index: {e}"))?;
    let mut seen: HashSet<Uuid> = HashSet::new();
    let mut batch = Batch {
        events: Vec::new(),
        acks: own,
    };
    for (m, event) in parsed {
        match event {
            None => batch.acks.push((m, AckKind::Term)),
            Some(e) => {
                let id = e.id.expect("checked by copy_of");
                if busy.contains(&id) {
                    batch.acks.push((m, AckKind::Nak(Some(BUSY_DELAY))));
                    continue;
                }
                if recent.contains(&id) || indexed.contains(&id) || !seen.insert(id) {
                    status.duplicates.fetch_add(1, Ordering::Relaxed);
                } else {
                    batch.events.push(e);
                }
                batch.acks.push((m, AckKind::Ack));
            }
        }
    }
    Ok((batch, claimed))
}

/// The event a message carries, as this store appends it: the stored line
/// of its origin without the origin's `seq` and `hash`, with `origin` set
/// to the publishing node (an event followed on from a follower keeps its
/// first origin).
fn copy_of(m: &jetstream::Message) -> Result<Event, String> {
    let mut e = Event::from_json(&m.payload).map_err(|e| e.to_string())?;
    if e.id.is_none() || e.timestamp.is_none() {
        return Err("no id or timestamp".into());
    }
    e._seq = None;
    e._hash = None;
    if e.origin.is_none() {
        let node = published_by(m).ok_or_else(|| format!("no {NODE_HEADER} header"))?;
        e.origin = Some(node.to_string());
    }
    Ok(e)
}

/// The node that published a message (its `Evlog-Node` header).
fn published_by(m: &jetstream::Message) -> Option<&str> {
    m.headers
        .as_ref()
        .and_then(|h| h.get(NODE_HEADER))
        .map(|v| v.as_str())
}

/// Waits until the index holds every line of the store (its largest `seq`
/// is the files').
pub async fn wait_for_index(log: &EventLog, search: &IndexSearch) -> Result<(), String> {
    let dir = log.storage_path().to_path_buf();
    loop {
        let (dir_, search_) = (dir.clone(), search.clone());
        let caught_up = tokio::task::spawn_blocking(move || {
            let head = super::publish::head_seq(&dir_);
            search_
                .reload()
                .and_then(|_| search_.max_seq())
                .map(|s| s >= head)
        })
        .await
        .map_err(|e| format!("index: {e}"))?
        .map_err(|e| format!("index: {e}"))?;
        if caught_up {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
