//! Own messages waiting to be committed, sent strictly one at a time in
//! typing order so the cluster sees them in that order.
//!
//! Each message keeps one request id for its whole life: a retry after a
//! timeout or a lost quorum carries the same id, so the cluster applies it
//! exactly once even if an earlier attempt did get through.

use std::collections::VecDeque;

use super::conversations::ConvKey;
use crate::event::{QueuedMessage, SendTo};

/// One message in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxItem {
    pub local_id: u64,
    pub request_id: String,
    pub conv: ConvKey,
    pub to: SendTo,
    pub body: String,
    /// The message it answers (0 = none).
    pub reply_to: u64,
    /// A send effect is out and has not come back yet.
    pub in_flight: bool,
    /// Do not resend before this time (after the cluster was unavailable).
    pub retry_at_ms: u64,
}

/// The queue of unsent own messages. Only the head is ever in flight.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outbox {
    items: VecDeque<OutboxItem>,
}

impl Outbox {
    pub fn push(&mut self, item: OutboxItem) {
        self.items.push_back(item);
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The head's local id.
    pub fn front_local_id(&self) -> Option<u64> {
        self.items.front().map(|i| i.local_id)
    }

    pub fn contains(&self, local_id: u64) -> bool {
        self.items.iter().any(|i| i.local_id == local_id)
    }

    pub fn contains_request(&self, request_id: &str) -> bool {
        self.items.iter().any(|i| i.request_id == request_id)
    }

    /// In sending order.
    pub fn items(&self) -> impl Iterator<Item = &OutboxItem> {
        self.items.iter()
    }

    /// What the store keeps of each message, in sending order.
    pub fn queued(&self) -> Vec<QueuedMessage> {
        self.items
            .iter()
            .map(|i| QueuedMessage {
                request_id: i.request_id.clone(),
                to: i.to.clone(),
                body: i.body.clone(),
                reply_to: i.reply_to,
            })
            .collect()
    }

    /// The head, if it is due to be sent at `now_ms`; marks it in flight.
    pub fn take_due(&mut self, now_ms: u64) -> Option<&OutboxItem> {
        let head = self.items.front_mut()?;
        if head.in_flight || head.retry_at_ms > now_ms {
            return None;
        }
        head.in_flight = true;
        Some(head)
    }

    /// Removes `local_id` (it was committed or failed for good).
    pub fn remove(&mut self, local_id: u64) -> Option<OutboxItem> {
        let pos = self.items.iter().position(|i| i.local_id == local_id)?;
        self.items.remove(pos)
    }

    /// Keeps `local_id` at its place and resends it at `at_ms`.
    pub fn postpone(&mut self, local_id: u64, at_ms: u64) {
        if let Some(item) = self.items.iter_mut().find(|i| i.local_id == local_id) {
            item.in_flight = false;
            item.retry_at_ms = at_ms;
        }
    }

    /// Lets a postponed head go at the next chance (the cluster is back).
    pub fn hurry(&mut self) {
        if let Some(head) = self.items.front_mut() {
            head.retry_at_ms = 0;
        }
    }

    /// Follows a conversation that got its server id.
    pub fn rekey(&mut self, from: &ConvKey, to: &ConvKey) {
        for item in self.items.iter_mut().filter(|i| &i.conv == from) {
            item.conv = to.clone();
        }
    }

    pub fn clear(&mut self) {
        self.items.clear();
    }

    /// Nothing is in flight any more, and everything may go at once (the
    /// session that sent them ended; a new one resends them, with the same
    /// request ids).
    pub fn reset(&mut self) {
        for item in &mut self.items {
            item.in_flight = false;
            item.retry_at_ms = 0;
        }
    }
}
