//! Writing back: every change goes through a [`Plan`], the argument list of
//! one `ff_v2_apply` call (see `lua/apply.lua`). A plan names the version of
//! everything its rules read; the call writes only if none has changed, so
//! a concurrent writer is detected, never overwritten.

use std::collections::BTreeSet;

use redis::Value;

use ff_core::{CompletionPayload, EngineError, Execution, Millis, State};

use crate::keys::Keys;
use crate::rows::{self, Stored};
use crate::ValkeyBackend;

/// One atomic write to one partition.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) partition: u32,
    checks: Vec<String>,
    writes: Vec<String>,
    /// Lanes that gained claimable work: (namespace, lane).
    pub(crate) wakes: BTreeSet<(String, String)>,
}

/// What a committed plan did.
#[derive(Debug)]
pub(crate) enum Outcome {
    Applied,
    /// Something read had changed (the argument names it); nothing written.
    Conflict(String),
}

impl Plan {
    pub(crate) fn new(partition: u32) -> Self {
        Self {
            partition,
            checks: Vec::new(),
            writes: Vec::new(),
            wakes: BTreeSet::new(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.checks.is_empty() && self.writes.is_empty()
    }

    fn check(&mut self, parts: &[&str]) {
        self.checks.extend(parts.iter().map(|s| (*s).to_owned()));
    }

    fn write(&mut self, parts: &[&str]) {
        self.writes.extend(parts.iter().map(|s| (*s).to_owned()));
    }

    /// The hash at `key` must still be at `version` (0: absent).
    pub(crate) fn check_version(&mut self, key: &str, version: u64) {
        self.check(&["V", key, &version.to_string()]);
    }

    /// The outbox entry must still be undispatched.
    pub(crate) fn check_undispatched(&mut self, seq: u64) {
        self.check(&["D", &seq.to_string()]);
    }

    /// `field` must still be absent from the hash at `key`.
    pub(crate) fn check_absent(&mut self, key: &str, field: &str) {
        self.check(&["F", key, field]);
    }

    /// Sets `fields` of the hash at `key` and its version.
    pub(crate) fn put(&mut self, key: &str, version: u64, fields: &[(String, String)]) {
        self.write(&["H", key, &version.to_string(), &fields.len().to_string()]);
        for (name, value) in fields {
            self.write(&[name, value]);
        }
    }

    pub(crate) fn zadd(&mut self, key: &str, score: f64, member: &str) {
        self.write(&["Z", key, &score.to_string(), member]);
    }

    pub(crate) fn zrem(&mut self, key: &str, member: &str) {
        self.write(&["R", key, member]);
    }

    pub(crate) fn count(&mut self, key: &str, field: &str, delta: i64) {
        self.write(&["C", key, field, &delta.to_string()]);
    }

    pub(crate) fn hset(&mut self, key: &str, field: &str, value: &str) {
        self.write(&["S", key, field, value]);
    }

    pub(crate) fn hdel(&mut self, key: &str, field: &str) {
        self.write(&["U", key, field]);
    }

    pub(crate) fn del(&mut self, key: &str) {
        self.write(&["K", key]);
    }

    pub(crate) fn dispatched(&mut self, seq: u64) {
        self.write(&["X", &seq.to_string()]);
    }

    /// Writes `new` (read at `old`, or inserted when `old` is `None`) with
    /// its index entries, counts and, when it has just become terminal, its
    /// outbox entry. Returns the fields it writes.
    pub(crate) fn save(
        &mut self,
        keys: &Keys,
        old: Option<&Stored>,
        new: &Execution,
        now: Millis,
    ) -> Result<Vec<(String, String)>, EngineError> {
        let p = self.partition;
        let key = keys.exec(p, new.id);
        let version = old.map_or(0, |s| s.version);
        self.check_version(&key, version);
        let fields = rows::changed_fields(old.map(|s| &s.fields), new)?;
        self.put(&key, version + 1, &fields);

        let before = old.map(|s| keys.held(p, &s.exec)).unwrap_or_default();
        let after = keys.placed(p, new, now);
        for entry in &before {
            if !after
                .iter()
                .any(|e| e.key == entry.key && e.member == entry.member)
            {
                self.zrem(&entry.key, &entry.member);
            }
        }
        for entry in &after {
            let kept = before.iter().any(|e| {
                !e.uncertain
                    && e.key == entry.key
                    && e.member == entry.member
                    && e.score == entry.score
            });
            if !kept {
                self.zadd(&entry.key, entry.score, &entry.member);
            }
        }

        let counts = keys.counts(p, &new.namespace);
        let now_field = Keys::count_field(new);
        match old {
            Some(old) if Keys::count_field(&old.exec) == now_field => {}
            Some(old) => {
                self.count(&counts, &Keys::count_field(&old.exec), -1);
                self.count(&counts, &now_field, 1);
            }
            None => self.count(&counts, &now_field, 1),
        }

        let was = old.map(|s| s.exec.state);
        if new.state.is_terminal() && !was.is_some_and(State::is_terminal) {
            if let Some(payload) = CompletionPayload::for_execution(new, now, p, 0) {
                let body = serde_json::to_string(&payload).map_err(EngineError::backend)?;
                self.write(&["O", &body]);
            }
        }
        let waiting = matches!(new.state, State::Ready | State::Scheduled);
        if waiting && was != Some(new.state) {
            if let Some(key) = &new.fairness_key {
                let fairness_keys = keys.fairness_keys(p, &new.namespace, &new.lane);
                self.zadd(&fairness_keys, 0.0, key);
            }
        }
        // A limited execution leaving running frees its slot for another.
        let left_running = was == Some(State::Running) && new.state != State::Running;
        if let Some(key) = new.concurrency_key.as_ref().filter(|_| left_running) {
            // A claim taking the slot starts no earlier than this ended.
            self.write(&["M", &keys.flow_clock(p), &now.to_string()]);
            // Announced only when a claim found the key full: on a cluster
            // every announcement reaches every node.
            let message = format!("{p}|{}|{}", new.namespace, new.lane);
            self.write(&[
                "W",
                &keys.slot_waiters(p, &new.namespace),
                key,
                &keys.work_channel(),
                &message,
            ]);
        }
        if waiting && was != Some(new.state) {
            self.wakes.insert((new.namespace.clone(), new.lane.clone()));
        }
        Ok(fields)
    }
}

impl ValkeyBackend {
    /// Sends `plan` as one `ff_v2_apply` call; on success tells this
    /// process's waiting claimers and, through the work channel, the others.
    pub(crate) async fn commit(&self, mut plan: Plan, now: Millis) -> Result<Outcome, EngineError> {
        if plan.is_empty() {
            return Ok(Outcome::Applied);
        }
        let keys = &self.inner.keys;
        let p = plan.partition;
        let work = keys.work_channel();
        for (namespace, lane) in &plan.wakes {
            let message = format!("{p}|{namespace}|{lane}");
            plan.writes.extend(["P".to_owned(), work.clone(), message]);
        }
        let mut args = Vec::with_capacity(4 + plan.checks.len() + plan.writes.len());
        args.push(now.to_string());
        args.push(keys.done_channel());
        args.push(p.to_string());
        args.push(plan.checks.len().to_string());
        args.append(&mut plan.checks);
        args.append(&mut plan.writes);
        let reply: Vec<Value> = self
            .inner
            .conn
            .fcall("ff_v2_apply", keys.base(p), &args)
            .await?;
        match reply.first() {
            Some(Value::BulkString(tag)) if tag.as_slice() == b"ok" => {
                for (namespace, lane) in &plan.wakes {
                    self.inner.hints.wake(namespace, lane, p);
                }
                if !plan.wakes.is_empty() {
                    self.inner.work.bump();
                }
                Ok(Outcome::Applied)
            }
            Some(Value::BulkString(tag)) if tag.as_slice() == b"conflict" => {
                let what = match reply.get(1) {
                    Some(Value::BulkString(w)) => String::from_utf8_lossy(w).into_owned(),
                    _ => String::new(),
                };
                Ok(Outcome::Conflict(what))
            }
            other => Err(EngineError::backend(format!(
                "unexpected answer from ff_v2_apply: {other:?}"
            ))),
        }
    }
}
