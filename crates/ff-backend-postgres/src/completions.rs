//! Completion events: the broadcast every `subscribe_completions` stream
//! reads, fed by this process's commits and by the `LISTEN` connection
//! (see `listener`), each outbox entry published once per process.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use ff_backend_support::CompletionBroadcast;
use ff_core::{CompletionBackend, CompletionPayload, CompletionStream, EngineError};

use crate::PostgresBackend;

/// Published seqs remembered for de-duplication.
const REMEMBERED: usize = 65_536;

/// The broadcast of completion events; clones share one channel.
#[derive(Clone, Debug)]
pub(crate) struct Completions {
    broadcast: CompletionBroadcast,
    published: Arc<Mutex<Published>>,
}

#[derive(Debug, Default)]
struct Published {
    seqs: HashSet<u64>,
    order: VecDeque<u64>,
}

impl Published {
    /// Records `seq`; false when it was published already.
    fn insert(&mut self, seq: u64) -> bool {
        if !self.seqs.insert(seq) {
            return false;
        }
        self.order.push_back(seq);
        if self.order.len() > REMEMBERED {
            if let Some(old) = self.order.pop_front() {
                self.seqs.remove(&old);
            }
        }
        true
    }
}

impl Completions {
    pub(crate) fn new() -> Self {
        Self {
            broadcast: CompletionBroadcast::new(),
            published: Arc::default(),
        }
    }

    /// Publishes entries not published before.
    pub(crate) fn publish_local(&self, payloads: Vec<CompletionPayload>) {
        if payloads.is_empty() {
            return;
        }
        let mut published = self
            .published
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for payload in payloads {
            if published.insert(payload.seq) {
                self.broadcast.send(payload);
            }
        }
    }

    /// Of `seqs`, those not published yet.
    pub(crate) fn unpublished(&self, seqs: Vec<u64>) -> Vec<u64> {
        let published = self
            .published
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        seqs.into_iter()
            .filter(|s| !published.seqs.contains(s))
            .collect()
    }

    pub(crate) fn subscribe(&self) -> CompletionStream {
        self.broadcast.subscribe()
    }
}

#[async_trait::async_trait]
impl CompletionBackend for PostgresBackend {
    async fn subscribe_completions(&self) -> Result<CompletionStream, EngineError> {
        Ok(self.inner.completions.subscribe())
    }
}
