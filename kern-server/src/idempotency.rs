//! `Idempotency-Key` on decisions: a request repeated with the same key (a client retrying
//! after a lost answer) gets the first request's answer instead of a 409, and requests with
//! the same key run one at a time. A key used again with another request is refused rather
//! than answered with the first one's outcome. Answers are kept in this process, for the latest
//! [`Replies::CAPACITY`] keys.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex as AsyncMutex;

/// The longest key accepted, in bytes: keys are kept, and a client's are UUIDs or alike.
pub const MAX_KEY_LEN: usize = 255;

/// A kept answer: the SHA-256 of what the request asked (compared on a repeat; the request
/// itself may be large), its status and JSON body, and the row's `ETag` when it answered with
/// a row.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub request: [u8; 32],
    pub status: StatusCode,
    pub body: Value,
    pub etag: Option<String>,
}

/// The digest a [`Reply`] keeps of `request`.
pub fn request_digest(request: &Value) -> [u8; 32] {
    Sha256::digest(request.to_string().as_bytes()).into()
}

/// One key's slot: empty until its first request has answered.
pub type Slot = Arc<AsyncMutex<Option<Reply>>>;

/// The answers kept by key.
#[derive(Debug, Default)]
pub struct Replies {
    inner: Mutex<Kept>,
}

#[derive(Debug, Default)]
struct Kept {
    slots: HashMap<String, Slot>,
    order: VecDeque<String>,
}

impl Replies {
    /// How many keys are remembered; the oldest is forgotten first.
    pub const CAPACITY: usize = 10_000;

    /// The slot of `key` (a key is scoped by the caller: see the resolve route), created empty
    /// the first time.
    pub fn slot(&self, key: String) -> Slot {
        let mut kept = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(slot) = kept.slots.get(&key) {
            return slot.clone();
        }
        if kept.order.len() >= Self::CAPACITY {
            let oldest = kept.order.pop_front();
            oldest.map(|oldest| kept.slots.remove(&oldest));
        }
        let slot = Slot::default();
        kept.order.push_back(key.clone());
        kept.slots.insert(key, slot.clone());
        slot
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_same_key_finds_the_first_answer() {
        let replies = Replies::default();
        let reply = Reply {
            request: request_digest(&Value::Null),
            status: StatusCode::OK,
            body: Value::Bool(true),
            etag: None,
        };
        *replies.slot("k".into()).lock().await = Some(reply.clone());
        assert_eq!(*replies.slot("k".into()).lock().await, Some(reply));
        assert_eq!(*replies.slot("other".into()).lock().await, None);
    }
}
