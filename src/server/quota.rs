//! What appends in flight may hold, in all and per key: append slots
//! (`max_pending_appends`, `max_pending_appends_per_key`) and request-body
//! bytes (`max_buffered_body_bytes`, `max_buffered_body_bytes_per_key`),
//! the bytes counted in KiB.
//!
//! An append is admitted (a slot) and then covers its body (the whole
//! `Content-Length` at once, or a chunked body's buffer as it grows)
//! before it reads a byte, and holds both until it is answered, when its
//! [`Ticket`] is dropped: the body, then the lines made from it, are about
//! that size. Past any limit the answer is 503 `overloaded` with
//! `Retry-After`, at once rather than after a wait: a waiting client would
//! hold its connection and a slot. The per-key shares keep one key's
//! stalled bodies from holding every slot or byte while others wait.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::Limits;
use super::reject::ApiError;

/// KiB (rounded up) of `bytes`.
fn kib(bytes: usize) -> usize {
    bytes.div_ceil(1024)
}

/// The limits of appends in flight, and what each key holds of them.
pub(crate) struct Quota {
    slots: Arc<Semaphore>,
    kib: Arc<Semaphore>,
    keys: Arc<Mutex<HashMap<String, Held>>>,
    key_slots: usize,
    key_kib: usize,
}

/// What one key's appends in flight hold.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Held {
    slots: usize,
    kib: usize,
}

fn lock(keys: &Mutex<HashMap<String, Held>>) -> MutexGuard<'_, HashMap<String, Held>> {
    keys.lock().unwrap_or_else(|e| e.into_inner())
}

impl Quota {
    /// The quota of `limits`. The byte budgets are at least one largest
    /// body (`max_body_bytes`), so that one always fits alone; a key's
    /// shares are at most the totals.
    pub(crate) fn new(limits: &Limits) -> Quota {
        let body = kib(limits.max_body_bytes).max(1);
        let total_kib = kib(limits.max_buffered_body_bytes)
            .max(body)
            .min(Semaphore::MAX_PERMITS);
        let slots = limits.max_pending_appends.clamp(1, Semaphore::MAX_PERMITS);
        Quota {
            slots: Arc::new(Semaphore::new(slots)),
            kib: Arc::new(Semaphore::new(total_kib)),
            keys: Arc::default(),
            key_slots: limits.max_pending_appends_per_key.clamp(1, slots),
            key_kib: kib(limits.max_buffered_body_bytes_per_key)
                .max(body)
                .min(total_kib),
        }
    }

    /// An append slot for the key `key_id`, or 503 `overloaded`.
    pub(crate) fn admit(&self, key_id: &str) -> Result<Ticket, ApiError> {
        let mut keys = lock(&self.keys);
        let held = keys.get(key_id).copied().unwrap_or_default();
        if held.slots >= self.key_slots {
            return Err(ApiError::overloaded(
                "this key has as many appends in flight as one key may (limit max_pending_appends_per_key); retry shortly",
            ));
        }
        let slot = self.slots.clone().try_acquire_owned().map_err(|_| {
            ApiError::overloaded(
                "too many appends in flight (limit max_pending_appends); retry shortly",
            )
        })?;
        keys.entry(key_id.to_string()).or_default().slots += 1;
        Ok(Ticket {
            keys: self.keys.clone(),
            key_id: key_id.to_string(),
            key_kib: self.key_kib,
            kib: self.kib.clone(),
            _slot: slot,
            body: None,
        })
    }

    /// KiB of the body budget no append holds.
    #[cfg(test)]
    pub(crate) fn available_kib(&self) -> usize {
        self.kib.available_permits()
    }
}

/// One admitted append: its slot and the body bytes it covers, given back
/// on drop.
pub(crate) struct Ticket {
    keys: Arc<Mutex<HashMap<String, Held>>>,
    key_id: String,
    key_kib: usize,
    kib: Arc<Semaphore>,
    _slot: OwnedSemaphorePermit,
    body: Option<OwnedSemaphorePermit>,
}

impl Ticket {
    fn held_kib(&self) -> usize {
        self.body
            .as_ref()
            .map_or(0, OwnedSemaphorePermit::num_permits)
    }

    /// Covers `bytes` of body in all (growing what it holds), or refuses
    /// with 503 `overloaded` naming the limit; a refusal takes nothing.
    pub(crate) fn cover(&mut self, bytes: usize) -> Result<(), ApiError> {
        let held = self.held_kib();
        let want = kib(bytes);
        if want <= held {
            return Ok(());
        }
        let more = want - held;
        let mut keys = lock(&self.keys);
        let mine = keys.entry(self.key_id.clone()).or_default();
        if mine.kib + more > self.key_kib {
            return Err(ApiError::overloaded(
                "this key's appends in flight hold as many request bodies as one key may (limit max_buffered_body_bytes_per_key); retry shortly",
            ));
        }
        let permit = u32::try_from(more)
            .ok()
            .and_then(|n| self.kib.clone().try_acquire_many_owned(n).ok())
            .ok_or_else(|| {
                ApiError::overloaded(
                    "the server holds as many request bodies as it may (limit max_buffered_body_bytes); retry shortly",
                )
            })?;
        mine.kib += more;
        match &mut self.body {
            Some(p) => p.merge(permit),
            None => self.body = Some(permit),
        }
        Ok(())
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let kib = self.held_kib();
        let mut keys = lock(&self.keys);
        if let Some(mine) = keys.get_mut(&self.key_id) {
            mine.slots = mine.slots.saturating_sub(1);
            mine.kib = mine.kib.saturating_sub(kib);
            if mine.slots == 0 {
                keys.remove(&self.key_id);
            }
        }
        // The slot and the body permits go back to the totals as the
        // fields drop.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(total_kib: usize, key_kib: usize, slots: usize, key_slots: usize) -> Quota {
        Quota::new(&Limits {
            max_body_bytes: 10 << 10,
            max_buffered_body_bytes: total_kib << 10,
            max_buffered_body_bytes_per_key: key_kib << 10,
            max_pending_appends: slots,
            max_pending_appends_per_key: key_slots,
            ..Limits::default()
        })
    }

    #[test]
    fn slots_and_bytes_are_limited_in_all_and_per_key() {
        let q = quota(100, 60, 3, 2);
        let mut a1 = q.admit("k_a").unwrap();
        let mut a2 = q.admit("k_a").unwrap();
        let e = q.admit("k_a").err().unwrap();
        assert!(
            e.message.contains("max_pending_appends_per_key"),
            "{}",
            e.message
        );
        let mut b1 = q.admit("k_b").unwrap();
        let e = q.admit("k_c").err().unwrap();
        assert!(
            e.message.contains("limit max_pending_appends)"),
            "{}",
            e.message
        );
        assert_eq!(e.retry_after, Some(1));
        // Bytes: k_a may hold 60 KiB of the 100.
        a1.cover(40 << 10).unwrap();
        a1.cover(30 << 10).unwrap(); // already covered
        let e = a2.cover(21 << 10).err().unwrap();
        assert!(
            e.message.contains("max_buffered_body_bytes_per_key"),
            "{}",
            e.message
        );
        a2.cover(20 << 10).unwrap();
        assert_eq!(q.available_kib(), 40);
        let e = b1.cover(41 << 10).err().unwrap();
        assert!(
            e.message.contains("limit max_buffered_body_bytes)"),
            "{}",
            e.message
        );
        assert_eq!(q.available_kib(), 40, "a refusal takes nothing");
        b1.cover(40 << 10).unwrap();
        // Given back on drop: slots and bytes, in all and per key.
        drop((a1, a2));
        assert_eq!(q.available_kib(), 60);
        let mut a3 = q.admit("k_a").unwrap();
        a3.cover(60 << 10).unwrap();
        drop((a3, b1));
        assert_eq!(q.available_kib(), 100);
        assert!(lock(&q.keys).is_empty());
    }

    #[test]
    fn the_budgets_hold_at_least_one_largest_body() {
        let q = quota(1, 1, 1, 1);
        let mut t = q.admit("k").unwrap();
        t.cover(10 << 10).unwrap();
    }
}
