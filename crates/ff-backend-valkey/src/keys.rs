//! The key layout. Every key of partition `p` starts with the partition's
//! base, `<prefix>:{<prefix>:<p>}`: the braces are the cluster hash tag, so
//! one partition's keys share a slot and a Lua function may touch them all.
//!
//! Under a base (ns: namespace, fid: flow id):
//! - `e:<id>`: an execution, a hash of its fields (each JSON text) and `_v`;
//! - `q:<ns>|<lane>`: the lane's ready executions and its due scheduled
//!   ones, scored in claim order; `l:<ns>|<lane>`: its scheduled ones not
//!   yet moved to the queue, by due time, members `<rank>|<id>`;
//!   `sched`, `run`, `dl`, `blocked`: scheduled by due time, running by
//!   expiry, by deadline, blocked flow members;
//!   With a fairness key `fk` an execution waits in `q:<ns>|<lane>\n<fk>`
//!   instead, and `fk:<ns>|<lane>` names the lane's fairness keys;
//! - flow control, all in the namespace's home partition (with every
//!   execution that carries a flow-control key): `pol:<ns>` (policies),
//!   `bkt:<ns>` (rate buckets), `use:<ns>|<policy>` (budget usage),
//!   `crun:<ns>|<key>` (running with a concurrency key, by expiry),
//!   `cwait:<ns>` (concurrency keys a claim found full), `fcclock` and
//!   `fair:<ns>|<lane>` (fair-share credits);
//! - `ids:<ns>`: every execution (lexical order is id order); `cnt:<ns>`:
//!   counts per lane and state; `idem:<ns>`: idempotency key → id;
//! - `f:<fid>` (record and `_v`), `fn:<fid>` (nodes), `fo:<fid>` and
//!   `fi:<fid>` (edges by source and by target), `flows:<ns>`, `fidem:<ns>`;
//! - `ob` (outbox stream, entry `<seq>-0`), `obseq`, `obu` (undispatched
//!   seqs by commit time) and `obd` (dispatched seqs by dispatch time).
//!
//! Ids carry their partition in 16 of their random bits.

use ff_core::{Execution, ExecutionId, FlowId, Millis, State};

/// Where in a UUID's random bits the partition is kept: below the 42-bit
/// counter a UUIDv7 carries after its timestamp (bits 32 to 75), so ids
/// made in one millisecond keep their creation order.
const PARTITION_SHIFT: u32 = 16;
const PARTITION_MASK: u128 = 0xFFFF << PARTITION_SHIFT;

/// A deployment's keys: its prefix and partition count.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
    partitions: u32,
    bases: Vec<String>,
}

impl Keys {
    pub(crate) fn new(prefix: &str, partitions: u32) -> Self {
        let bases = (0..partitions)
            .map(|p| format!("{prefix}:{{{prefix}:{p}}}"))
            .collect();
        Self {
            prefix: prefix.to_owned(),
            partitions,
            bases,
        }
    }

    pub(crate) fn partitions(&self) -> u32 {
        self.partitions
    }

    /// The prefix every key of partition `p` starts with.
    pub(crate) fn base(&self, p: u32) -> &str {
        &self.bases[p as usize]
    }

    pub(crate) fn done_channel(&self) -> String {
        format!("{}:done", self.prefix)
    }

    pub(crate) fn work_channel(&self) -> String {
        format!("{}:work", self.prefix)
    }

    pub(crate) fn partition_of(&self, uuid: &uuid::Uuid) -> u32 {
        let bits = (uuid.as_u128() & PARTITION_MASK) >> PARTITION_SHIFT;
        (bits % u128::from(self.partitions)) as u32
    }

    pub(crate) fn exec_partition(&self, id: ExecutionId) -> u32 {
        self.partition_of(id.as_uuid())
    }

    pub(crate) fn flow_partition(&self, id: FlowId) -> u32 {
        self.partition_of(id.as_uuid())
    }

    /// The partition an idempotency key selects: the same in every process.
    pub(crate) fn key_partition(&self, namespace: &str, key: &str) -> u32 {
        (fnv1a(&[namespace.as_bytes(), b"\n", key.as_bytes()]) % u64::from(self.partitions)) as u32
    }

    pub(crate) fn exec(&self, p: u32, id: ExecutionId) -> String {
        self.exec_str(p, &id.to_string())
    }

    /// [`Keys::exec`] for an id as an index holds it.
    pub(crate) fn exec_str(&self, p: u32, id: &str) -> String {
        format!("{}:e:{id}", self.base(p))
    }

    pub(crate) fn queue(&self, p: u32, namespace: &str, lane: &str) -> String {
        // `|` cannot occur in names, so no two (namespace, lane) pairs
        // share a queue.
        format!("{}:q:{namespace}|{lane}", self.base(p))
    }

    /// The queue of an execution: its lane's, or with a fairness key, the
    /// lane's queue of that key (`\n` cannot occur in names either).
    pub(crate) fn queue_of(&self, p: u32, exec: &Execution) -> String {
        let queue = self.queue(p, &exec.namespace, &exec.lane);
        match &exec.fairness_key {
            Some(key) => format!("{queue}\n{key}"),
            None => queue,
        }
    }

    /// The fairness keys that have (or had) a queue in a lane.
    pub(crate) fn fairness_keys(&self, p: u32, namespace: &str, lane: &str) -> String {
        format!("{}:fk:{namespace}|{lane}", self.base(p))
    }

    /// The partition holding every execution of `namespace` that carries a
    /// flow-control key, with the namespace's policies and their state, so
    /// one claim decides a key's limit atomically.
    pub(crate) fn flow_home(&self, namespace: &str) -> u32 {
        self.key_partition(namespace, "\u{0}flow-control")
    }

    /// The namespace's policies: one field per name (a `Policy` as JSON),
    /// and `_v`.
    pub(crate) fn policies(&self, p: u32, namespace: &str) -> String {
        format!("{}:pol:{namespace}", self.base(p))
    }

    /// Rate buckets: one field per rate key, `<level>:<at>`.
    pub(crate) fn buckets(&self, p: u32, namespace: &str) -> String {
        format!("{}:bkt:{namespace}", self.base(p))
    }

    /// One budget's usage: field `usage` (a `Usage` as JSON) and `_v`.
    pub(crate) fn usage(&self, p: u32, namespace: &str, policy: &str) -> String {
        format!("{}:use:{namespace}|{policy}", self.base(p))
    }

    /// The latest time a limited execution left running here: a claim of
    /// limited work starts no earlier, so no attempt is recorded as
    /// starting before the one whose slot it took ended.
    pub(crate) fn flow_clock(&self, p: u32) -> String {
        format!("{}:fcclock", self.base(p))
    }

    /// The concurrency keys of `namespace` a claim found full, whose next
    /// freed slot is announced on the work channel.
    pub(crate) fn slot_waiters(&self, p: u32, namespace: &str) -> String {
        format!("{}:cwait:{namespace}", self.base(p))
    }

    /// Executions running with concurrency key `key`, by lease expiry.
    pub(crate) fn running_with_key(&self, p: u32, namespace: &str, key: &str) -> String {
        format!("{}:crun:{namespace}|{key}", self.base(p))
    }

    pub(crate) fn scheduled(&self, p: u32) -> String {
        format!("{}:sched", self.base(p))
    }

    pub(crate) fn running(&self, p: u32) -> String {
        format!("{}:run", self.base(p))
    }

    /// Suspended executions with a timeout, by when it passes.
    pub(crate) fn suspended(&self, p: u32) -> String {
        format!("{}:susp", self.base(p))
    }

    /// The waitpoint keyring: one hash field per key id.
    pub(crate) fn waitpoint_keys(&self) -> String {
        format!("{}:wpkeys", self.prefix)
    }

    pub(crate) fn deadlines(&self, p: u32) -> String {
        format!("{}:dl", self.base(p))
    }

    pub(crate) fn blocked(&self, p: u32) -> String {
        format!("{}:blocked", self.base(p))
    }

    pub(crate) fn ids(&self, p: u32, namespace: &str) -> String {
        format!("{}:ids:{namespace}", self.base(p))
    }

    pub(crate) fn counts(&self, p: u32, namespace: &str) -> String {
        format!("{}:cnt:{namespace}", self.base(p))
    }

    pub(crate) fn idempotency(&self, p: u32, namespace: &str) -> String {
        format!("{}:idem:{namespace}", self.base(p))
    }

    pub(crate) fn flow(&self, p: u32, id: FlowId) -> String {
        format!("{}:f:{id}", self.base(p))
    }

    pub(crate) fn nodes(&self, p: u32, id: FlowId) -> String {
        format!("{}:fn:{id}", self.base(p))
    }

    pub(crate) fn edges_out(&self, p: u32, id: FlowId) -> String {
        format!("{}:fo:{id}", self.base(p))
    }

    pub(crate) fn edges_in(&self, p: u32, id: FlowId) -> String {
        format!("{}:fi:{id}", self.base(p))
    }

    pub(crate) fn flows(&self, p: u32, namespace: &str) -> String {
        format!("{}:flows:{namespace}", self.base(p))
    }

    pub(crate) fn flow_keys(&self, p: u32, namespace: &str) -> String {
        format!("{}:fidem:{namespace}", self.base(p))
    }

    pub(crate) fn outbox_undispatched(&self, p: u32) -> String {
        format!("{}:obu", self.base(p))
    }

    /// The sorted-set entries `exec` is written with at `now`. A ready
    /// execution waits in its lane's queue; a scheduled one in `sched` and,
    /// until due, in its lane's `later` set, from which a claim moves it
    /// into the queue once due (so the queue holds only what may be claimed
    /// now, and a long run of future work costs a claim nothing).
    pub(crate) fn placed(&self, p: u32, exec: &Execution, now: Millis) -> Vec<IndexEntry> {
        let id = exec.id.to_string();
        let mut out = vec![IndexEntry::new(self.ids(p, &exec.namespace), 0.0, &id)];
        match exec.state {
            State::Ready => out.push(self.queued(p, exec)),
            State::Scheduled => {
                out.push(IndexEntry::new(
                    self.scheduled(p),
                    exec.ready_at as f64,
                    &id,
                ));
                if exec.ready_at <= now {
                    out.push(self.queued(p, exec));
                } else {
                    out.push(self.waiting(p, exec));
                }
            }
            State::Running => {
                let expires = match (exec.lease_until, exec.attempt_deadline) {
                    (Some(a), Some(b)) => a.min(b),
                    (Some(a), None) | (None, Some(a)) => a,
                    (None, None) => exec.updated_at,
                };
                out.push(IndexEntry::new(self.running(p), expires as f64, &id));
                if let Some(key) = &exec.concurrency_key {
                    let running = self.running_with_key(p, &exec.namespace, key);
                    out.push(IndexEntry::new(running, expires as f64, &id));
                }
            }
            State::Blocked => out.push(IndexEntry::new(self.blocked(p), 0.0, &id)),
            State::Suspended => {
                if let Some(at) = ff_core::suspension::rules::timeout_at(exec) {
                    out.push(IndexEntry::new(self.suspended(p), at as f64, &id));
                }
            }
            _ => {}
        }
        if let Some(deadline) = exec.deadline.filter(|_| !exec.state.is_terminal()) {
            out.push(IndexEntry::new(self.deadlines(p), deadline as f64, &id));
        }
        out
    }

    /// The entries `exec` may be held in, as read: where it was placed,
    /// except that a scheduled execution may be in its lane's queue or its
    /// `later` set (a claim moves it when due); those two are marked
    /// `uncertain`.
    pub(crate) fn held(&self, p: u32, exec: &Execution) -> Vec<IndexEntry> {
        let mut out = self.placed(p, exec, Millis::MIN);
        if exec.state == State::Scheduled {
            let mut queued = self.queued(p, exec);
            queued.uncertain = true;
            out.push(queued);
            let later = self.later(p, &exec.namespace, &exec.lane);
            for entry in out.iter_mut().filter(|e| e.key == later) {
                entry.uncertain = true;
            }
        }
        out
    }

    fn queued(&self, p: u32, exec: &Execution) -> IndexEntry {
        IndexEntry::new(
            self.queue_of(p, exec),
            order_score(exec),
            &exec.id.to_string(),
        )
    }

    fn waiting(&self, p: u32, exec: &Execution) -> IndexEntry {
        IndexEntry::new(
            self.later(p, &exec.namespace, &exec.lane),
            exec.ready_at as f64,
            &format!("{}|{}", rank(exec), exec.id),
        )
    }

    /// A lane's scheduled executions not yet moved to its queue, by due
    /// time; members `<rank>|<id>` (see [`order_score`]).
    pub(crate) fn later(&self, p: u32, namespace: &str, lane: &str) -> String {
        format!("{}:l:{namespace}|{lane}", self.base(p))
    }

    /// The field of `cnt:<ns>` counting `exec`.
    pub(crate) fn count_field(exec: &Execution) -> String {
        format!("{}\n{}", exec.lane, exec.state.as_str())
    }

    /// `id` moved into partition `p`.
    pub(crate) fn in_partition(&self, uuid: uuid::Uuid, p: u32) -> uuid::Uuid {
        let bits = (uuid.as_u128() & !PARTITION_MASK) | (u128::from(p) << PARTITION_SHIFT);
        uuid::Uuid::from_u128(bits)
    }

    pub(crate) fn new_execution_id(&self, p: u32) -> ExecutionId {
        ExecutionId::from_uuid(self.in_partition(*ExecutionId::new().as_uuid(), p))
    }

    pub(crate) fn new_flow_id(&self, p: u32) -> FlowId {
        FlowId::from_uuid(self.in_partition(*FlowId::new().as_uuid(), p))
    }
}

/// One member of one sorted set, with its score.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct IndexEntry {
    pub(crate) key: String,
    pub(crate) score: f64,
    pub(crate) member: String,
    /// Held perhaps, perhaps not (see [`Keys::held`]).
    pub(crate) uncertain: bool,
}

impl IndexEntry {
    fn new(key: String, score: f64, member: &str) -> Self {
        Self {
            key,
            score,
            member: member.to_owned(),
            uncertain: false,
        }
    }
}

/// Priority as a rank: 0 for the highest (100), 200 for the lowest.
fn rank(exec: &Execution) -> i64 {
    i64::from(100 - exec.priority.clamp(-100, 100))
}

/// The lane's claim order as one score: priority (higher first), then
/// `ready_at`; ties go by member, which is the id. Exact in a double: 201
/// priorities times 2^42 ms (until the year 2109) stay below 2^53.
pub(crate) fn order_score(exec: &Execution) -> f64 {
    let ready = exec.ready_at.clamp(0, (1 << 42) - 1);
    ((rank(exec) << 42) + ready) as f64
}

/// FNV-1a, 64 bits: a stable hash that every process computes alike.
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in *part {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_keep_their_partition() {
        let keys = Keys::new("t", 7);
        for p in 0..7 {
            let id = keys.new_execution_id(p);
            assert_eq!(keys.exec_partition(id), p);
            assert_eq!(id.as_uuid().get_version_num(), 7);
        }
        assert_eq!(keys.base(3), "t:{t:3}");
    }

    #[test]
    fn ids_of_one_partition_keep_creation_order() {
        let keys = Keys::new("t", 16);
        let ids: Vec<ExecutionId> = (0..50_000).map(|i| keys.new_execution_id(i % 3)).collect();
        for p in 0..3 {
            let mine: Vec<&ExecutionId> = ids
                .iter()
                .filter(|id| keys.exec_partition(**id) == p)
                .collect();
            assert!(mine.windows(2).all(|w| w[0] < w[1]), "partition {p}");
        }
    }

    #[test]
    fn order_score_sorts_priority_then_time() {
        let mut a = Execution::new(
            ExecutionId::new(),
            ff_core::SubmitRequest::new("l", "k", ff_core::JsonText::null()),
            1_000,
        );
        let mut b = a.clone();
        b.ready_at = 2_000;
        assert!(order_score(&a) < order_score(&b));
        a.priority = -1;
        assert!(order_score(&b) < order_score(&a));
    }
}
