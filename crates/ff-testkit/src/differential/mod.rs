//! The randomized differential test: the same random sequence of operations
//! runs on the [`ReferenceBackend`] and on a real backend, each on its own
//! manual clock moved in step, and after every operation the answers and the
//! full snapshots must be equal: every execution (state, attempt, epoch,
//! outcome, result, error, times, flow membership, inputs) and every flow
//! (state, nodes with their states, edges). Ids differ between backends, so
//! executions and flows are compared by the order they were learned in, and
//! lease tokens (random per claim) never enter a comparison.
//!
//! The operations are the solo ones (submit, claim, the lease operations,
//! cancel, requeue, the maintenance scans, time) and the flow ones: create a
//! flow, add nodes with a running member's handle, cancel a flow, and
//! cascade outbox entries as the engine's listener and reconciler would;
//! and the signal ones: create a waitpoint, suspend, signal by token or by
//! id and key, and the suspension timeout scan. Signal ids are compared by
//! the order they were first seen, and tokens never enter a comparison.
//!
//! - [`ops`]: the operations, how one is drawn and how it is applied.
//! - [`flows`]: random flow specs and dynamic adds, outbox cascades.
//! - [`Rng`]: the seeded generator.
//!
//! Bounded by default; `FF_DIFF_CASES` and `FF_DIFF_STEPS` raise the counts
//! and `FF_DIFF_SEED` replays a failure. The seed is always printed.

mod flows;
mod ops;
mod rng;

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use ff_core::{
    Clock, EngineBackend, EngineError, Execution, ExecutionId, FlowId, LeaseHandle, ManualClock,
    SignalId,
};

pub use rng::Rng;

use crate::reference::ReferenceBackend;
use crate::BackendFactory;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A lease a flow member was claimed under: what dynamic adds act with.
#[derive(Debug, Clone)]
struct MemberLease {
    /// Index into [`Side::handles`].
    handle: usize,
    /// Index into [`Side::flows`].
    flow: usize,
    node_key: String,
}

/// One side of the comparison: a backend and what it handed out, each in
/// the order it was learned (the same on both sides while answers agree).
struct Side {
    engine: Arc<dyn EngineBackend>,
    ids: Vec<ExecutionId>,
    index: HashMap<ExecutionId, usize>,
    handles: Vec<LeaseHandle>,
    members: Vec<MemberLease>,
    flows: Vec<FlowId>,
    flow_index: HashMap<FlowId, usize>,
    /// Each flow's node keys, by flow index.
    flow_keys: Vec<Vec<String>>,
    /// Waitpoint tokens handed out, in order (they differ between sides).
    tokens: Vec<String>,
    /// Signal ids by the order they were first seen in an answer.
    signal_index: RefCell<HashMap<SignalId, usize>>,
}

impl Side {
    fn new(engine: Arc<dyn EngineBackend>) -> Self {
        Self {
            engine,
            ids: Vec::new(),
            index: HashMap::new(),
            handles: Vec::new(),
            members: Vec::new(),
            flows: Vec::new(),
            flow_index: HashMap::new(),
            flow_keys: Vec::new(),
            tokens: Vec::new(),
            signal_index: RefCell::new(HashMap::new()),
        }
    }

    fn learn(&mut self, id: ExecutionId) -> usize {
        let next = self.ids.len();
        *self.index.entry(id).or_insert_with(|| {
            self.ids.push(id);
            next
        })
    }

    fn learn_flow(&mut self, id: FlowId) -> usize {
        let next = self.flows.len();
        *self.flow_index.entry(id).or_insert_with(|| {
            self.flows.push(id);
            self.flow_keys.push(Vec::new());
            next
        })
    }

    /// Records a node of flow `flow`, once.
    fn learn_node(&mut self, flow: usize, key: &str, id: ExecutionId) {
        self.learn(id);
        let keys = &mut self.flow_keys[flow];
        if !keys.iter().any(|k| k == key) {
            keys.push(key.to_owned());
        }
    }

    /// The comparable answer: ids replaced by learned indexes, errors by kind.
    fn normalize<T: Debug>(&self, result: Result<T, EngineError>) -> String {
        match result {
            Ok(value) => self.replace_ids(&format!("ok {value:?}")),
            Err(err) => format!("err {:?} {}", err.kind(), err.field().unwrap_or_default()),
        }
    }

    /// Replaces every `ExecutionId(..)` and `FlowId(..)` in `text` with its
    /// learned index (`#i`, `F#i`); an unknown id stays as it is, so it shows
    /// as a difference.
    fn replace_ids(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        loop {
            let next = [("ExecutionId(", 0), ("FlowId(", 1), ("SignalId(", 2)]
                .into_iter()
                .filter_map(|(tag, flow)| rest.find(tag).map(|at| (at, tag, flow)))
                .min_by_key(|(at, _, _)| *at);
            let Some((at, tag, flow)) = next else {
                out.push_str(rest);
                return out;
            };
            out.push_str(&rest[..at]);
            let after = &rest[at + tag.len()..];
            let Some(end) = after.find(')') else {
                out.push_str(&rest[at..]);
                return out;
            };
            let uuid = &after[..end];
            let known = match flow {
                1 => uuid
                    .parse()
                    .ok()
                    .and_then(|u| self.flow_index.get(&FlowId::from_uuid(u)))
                    .map(|i| format!("F#{i}")),
                2 => uuid.parse::<SignalId>().ok().map(|id| {
                    let mut seen = self.signal_index.borrow_mut();
                    let next = seen.len();
                    format!("S#{}", seen.entry(id).or_insert(next))
                }),
                _ => uuid
                    .parse()
                    .ok()
                    .and_then(|u| self.index.get(&ExecutionId::from_uuid(u)))
                    .map(|i| format!("#{i}")),
            };
            match known {
                Some(index) => out.push_str(&index),
                None => out.push_str(&rest[at..at + tag.len() + end + 1]),
            }
            rest = &after[end + 1..];
        }
    }

    /// The comparable view of one execution.
    fn snapshot(&self, exec: &Execution) -> String {
        format!(
            "{} lane={} payload={} attempt={} epoch={} allowed={} releases={} outcome={:?} \
             result={:?} error={:?} ready_at={} lease_until={:?} attempt_deadline={:?} \
             finished_at={:?} attempts={:?} flow={:?} inputs={:?} wait={}",
            exec.state,
            exec.lane,
            exec.payload,
            exec.attempt,
            exec.lease_epoch,
            exec.attempts_allowed,
            exec.releases,
            exec.outcome(),
            exec.result,
            exec.error,
            exec.ready_at,
            exec.lease_until,
            exec.attempt_deadline,
            exec.finished_at,
            exec.attempts
                .iter()
                .map(|a| (
                    a.attempt,
                    a.lease_epoch,
                    a.started_at,
                    a.ended_at,
                    a.end,
                    a.error.clone()
                ))
                .collect::<Vec<_>>(),
            exec.flow
                .as_ref()
                .map(|m| (self.flow_index.get(&m.flow_id), m.node_key.as_str())),
            exec.inputs,
            self.wait_snapshot(exec),
        )
    }

    /// The comparable view of an execution's waitpoints, signals and
    /// suspensions: everything but the signal ids, compared by position.
    fn wait_snapshot(&self, exec: &Execution) -> String {
        let Some(wait) = &exec.wait else {
            return "none".to_owned();
        };
        let signals: Vec<_> = wait
            .signals
            .iter()
            .map(|s| {
                (
                    &s.waitpoint,
                    &s.name,
                    s.payload.as_str(),
                    &s.source,
                    &s.idempotency_key,
                    s.received_at,
                )
            })
            .collect();
        let position = |id: &SignalId| wait.signals.iter().position(|s| s.id == *id);
        let suspensions: Vec<_> = wait
            .suspensions
            .iter()
            .map(|s| {
                (
                    &s.key,
                    s.attempt,
                    s.lease_epoch,
                    &s.waitpoints,
                    s.condition,
                    s.timeout_at,
                    s.on_timeout,
                    s.suspended_at,
                    s.ended,
                    s.satisfied_by.iter().map(position).collect::<Vec<_>>(),
                )
            })
            .collect();
        format!("{:?} {signals:?} {suspensions:?}", wait.waitpoints)
    }

    /// Every execution's snapshot, then every flow's view.
    async fn snapshots(&self) -> Vec<String> {
        let mut out = Vec::with_capacity(self.ids.len() + self.flows.len());
        for id in &self.ids {
            out.push(match self.engine.get_execution(*id).await {
                Ok(exec) => self.snapshot(&exec),
                Err(err) => format!("get failed: {err}"),
            });
        }
        for (i, id) in self.flows.iter().enumerate() {
            let view = self.engine.get_flow(*id).await;
            out.push(format!("flow F#{i}: {}", self.normalize(view)));
        }
        out
    }
}

/// Runs the differential test against `factory`, panicking with the seed,
/// the case and the step on the first difference.
pub async fn run(factory: &dyn BackendFactory) {
    let seed = env_u64(
        "FF_DIFF_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    );
    let cases = env_u64("FF_DIFF_CASES", 12);
    let steps = env_u64("FF_DIFF_STEPS", 120);
    println!("differential test: FF_DIFF_SEED={seed} FF_DIFF_CASES={cases} FF_DIFF_STEPS={steps}");
    let mut rng = Rng::new(seed);
    for case in 0..cases {
        let case_seed = rng.next_u64();
        run_case(factory, case_seed, steps)
            .await
            .unwrap_or_else(|diff| {
                panic!("seed {seed}, case {case} (case seed {case_seed}): {diff}")
            });
    }
}

async fn run_case(factory: &dyn BackendFactory, case_seed: u64, steps: u64) -> Result<(), String> {
    let mut rng = Rng::new(case_seed);
    let real_backend = factory.open_default().await;
    let ref_clock = ManualClock::new(real_backend.clock.now_ms());
    let mut reference = Side::new(Arc::new(ReferenceBackend::new(Arc::new(ref_clock.clone()))));
    let mut real = Side::new(real_backend.engine.clone());
    let mut log = Vec::new();
    for step in 0..steps {
        let op = ops::random_op(&mut rng, ref_clock.now_ms(), &reference);
        if let ops::Op::Advance(by) = op {
            ref_clock.advance(Duration::from_millis(by));
            real_backend.clock.advance(Duration::from_millis(by));
        }
        log.push(format!("{step}: {op:?}"));
        let expected = ops::apply(&mut reference, &op).await;
        let actual = ops::apply(&mut real, &op).await;
        let answers_differ = expected != actual;
        let (before, after) = (reference.snapshots().await, real.snapshots().await);
        let differs = (0..before.len()).find(|i| before.get(*i) != after.get(*i));
        let snapshot_diff = differs.map(|i| {
            format!(
                "snapshot {i} differs after step {step}\n  reference: {}\n  backend:   {}",
                before[i],
                after.get(i).map(String::as_str).unwrap_or("<missing>"),
            )
        });
        if answers_differ || snapshot_diff.is_some() {
            let answers = if answers_differ {
                format!("answers differ at step {step}\n  reference: {expected}\n  backend:   {actual}\n")
            } else {
                String::new()
            };
            return Err(format!(
                "{answers}{}\nops:\n{}",
                snapshot_diff.unwrap_or_else(|| "snapshots agree".to_owned()),
                log.join("\n")
            ));
        }
    }
    Ok(())
}
