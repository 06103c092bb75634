//! The randomized differential test: the same random sequence of operations
//! runs on the [`ReferenceBackend`] and on a real backend, each on its own
//! manual clock moved in step, and after every operation the answers and the
//! full snapshots (state, attempt, epoch, outcome, result, error, times) must
//! be equal. Ids differ between backends, so executions are compared by
//! submission index.
//!
//! Bounded by default; `FF_DIFF_CASES` and `FF_DIFF_STEPS` raise the counts
//! and `FF_DIFF_SEED` replays a failure. The seed is always printed.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use ff_core::{
    ClaimRequest, Claimed, Clock, EngineBackend, EngineError, Execution, ExecutionId, Failure,
    JsonText, LeaseHandle, ManualClock, RetryPolicy, SubmitRequest,
};

use crate::reference::ReferenceBackend;
use crate::BackendFactory;

const LANES: [&str; 3] = ["a", "b", "c"];
const CAPS: [&str; 2] = ["gpu", "eu"];

/// A small, seedable generator (SplitMix64): enough for test sequences.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One side of the comparison: a backend and what it handed out.
struct Side {
    engine: Arc<dyn EngineBackend>,
    ids: Vec<ExecutionId>,
    index: HashMap<ExecutionId, usize>,
    handles: Vec<LeaseHandle>,
}

impl Side {
    fn new(engine: Arc<dyn EngineBackend>) -> Self {
        Self {
            engine,
            ids: Vec::new(),
            index: HashMap::new(),
            handles: Vec::new(),
        }
    }

    fn learn(&mut self, id: ExecutionId) -> usize {
        let next = self.ids.len();
        *self.index.entry(id).or_insert_with(|| {
            self.ids.push(id);
            next
        })
    }

    /// The comparable answer: ids replaced by submission indexes, errors by kind.
    fn normalize<T: Debug>(&self, result: Result<T, EngineError>) -> String {
        let text = match result {
            Ok(value) => format!("ok {value:?}"),
            Err(err) => format!("err {:?} {}", err.kind(), err.field().unwrap_or_default()),
        };
        self.ids.iter().enumerate().fold(text, |text, (i, id)| {
            text.replace(&format!("{id:?}"), &format!("#{i}"))
        })
    }
}

/// The comparable view of one execution.
fn snapshot(exec: &Execution) -> String {
    format!(
        "{} attempt={} epoch={} allowed={} releases={} outcome={:?} result={:?} error={:?} ready_at={} \
         lease_until={:?} attempt_deadline={:?} finished_at={:?} attempts={:?}",
        exec.state,
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
            .map(|a| (a.attempt, a.lease_epoch, a.started_at, a.ended_at, a.end, a.error.clone()))
            .collect::<Vec<_>>(),
    )
}

#[derive(Debug, Clone)]
enum Op {
    Submit(Box<SubmitRequest>),
    Claim {
        lanes: Vec<String>,
        caps: Vec<String>,
        n: u32,
    },
    Renew(usize),
    Release(usize),
    Complete(usize, String),
    Fail(usize, bool),
    Cancel(usize),
    Requeue(usize),
    Advance(u64),
    ExpireLeases,
    PromoteScheduled,
    ExpireDeadlines,
}

fn random_op(rng: &mut Rng, now: i64, submitted: usize, handles: usize) -> Op {
    let roll = rng.below(100);
    match roll {
        0..=24 => {
            let mut req = SubmitRequest::new(
                *rng.pick(&LANES),
                "job",
                JsonText::unchecked(format!("{{\"r\":{}}}", rng.below(1000))),
            )
            .priority(rng.below(3) as i32 - 1)
            .lease_ms(500 + rng.below(3) * 500)
            .retry(RetryPolicy {
                max_attempts: 1 + rng.below(3) as u32,
                initial_backoff_ms: 100,
                max_backoff_ms: 1_000,
                // Jitter hashes the id, and ids differ between the two
                // sides; the conformance suite checks jitter itself.
                jitter_percent: 0,
            });
            if rng.chance(15) {
                req = req.capabilities([*rng.pick(&CAPS)]);
            }
            if rng.chance(15) {
                req = req.run_at(now + rng.below(2_000) as i64);
            }
            if rng.chance(10) {
                req = req.deadline(now + 500 + rng.below(3_000) as i64);
            }
            if rng.chance(10) {
                req = req.attempt_timeout_ms(300 + rng.below(1_000));
            }
            if rng.chance(15) {
                req = req.idempotency_key(format!("k{}", rng.below(5)));
            }
            Op::Submit(Box::new(req))
        }
        25..=44 => {
            let mut lanes = vec![rng.pick(&LANES).to_string()];
            if rng.chance(30) {
                lanes.push(rng.pick(&LANES).to_string());
            }
            let caps = if rng.chance(30) {
                vec![rng.pick(&CAPS).to_string()]
            } else {
                Vec::new()
            };
            Op::Claim {
                lanes,
                caps,
                n: 1 + rng.below(3) as u32,
            }
        }
        45..=74 if handles > 0 => {
            let h = rng.below(handles as u64) as usize;
            match rng.below(5) {
                0 => Op::Renew(h),
                1 => Op::Release(h),
                2 | 3 => Op::Complete(h, format!("{}", rng.below(100))),
                _ => Op::Fail(h, rng.chance(80)),
            }
        }
        75..=79 if submitted > 0 => Op::Cancel(rng.below(submitted as u64) as usize),
        80..=82 if submitted > 0 => Op::Requeue(rng.below(submitted as u64) as usize),
        83..=92 => Op::Advance(1 + rng.below(700)),
        93..=95 => Op::ExpireLeases,
        96..=97 => Op::PromoteScheduled,
        _ => Op::ExpireDeadlines,
    }
}

async fn apply(side: &mut Side, op: &Op) -> String {
    let e = side.engine.clone();
    match op {
        Op::Submit(req) => {
            let result = e.submit(SubmitRequest::clone(req)).await;
            if let Ok(s) = &result {
                side.learn(s.id);
            }
            side.normalize(result)
        }
        Op::Claim { lanes, caps, n } => {
            let req = ClaimRequest::new(lanes.clone(), "w")
                .capabilities(caps.clone())
                .max(*n);
            let result = e.claim(&req).await;
            if let Ok(claimed) = &result {
                side.handles
                    .extend(claimed.iter().map(|c: &Claimed| c.handle.clone()));
            }
            side.normalize(result)
        }
        Op::Renew(h) => side.normalize(e.renew(&side.handles[*h]).await),
        Op::Release(h) => side.normalize(e.release(&side.handles[*h]).await),
        Op::Complete(h, result) => side.normalize(
            e.complete(&side.handles[*h], JsonText::unchecked(result.clone()))
                .await,
        ),
        Op::Fail(h, retryable) => {
            let failure = if *retryable {
                Failure::retryable("boom")
            } else {
                Failure::permanent("fatal")
            };
            side.normalize(e.fail(&side.handles[*h], failure).await)
        }
        Op::Cancel(i) => side.normalize(e.cancel(side.ids[*i]).await),
        Op::Requeue(i) => side.normalize(e.requeue(side.ids[*i]).await),
        Op::Advance(_) => String::new(),
        Op::ExpireLeases => side.normalize(e.expire_leases(1_000).await),
        Op::PromoteScheduled => side.normalize(e.promote_scheduled(1_000).await),
        Op::ExpireDeadlines => side.normalize(e.expire_deadlines(1_000).await),
    }
}

async fn snapshots(side: &Side) -> Vec<String> {
    let mut out = Vec::with_capacity(side.ids.len());
    for id in &side.ids {
        out.push(match side.engine.get_execution(*id).await {
            Ok(exec) => snapshot(&exec),
            Err(err) => format!("get failed: {err}"),
        });
    }
    out
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
        let op = random_op(
            &mut rng,
            ref_clock.now_ms(),
            reference.ids.len(),
            reference.handles.len(),
        );
        if let Op::Advance(by) = op {
            ref_clock.advance(Duration::from_millis(by));
            real_backend.clock.advance(Duration::from_millis(by));
        }
        log.push(format!("{step}: {op:?}"));
        let expected = apply(&mut reference, &op).await;
        let actual = apply(&mut real, &op).await;
        if expected != actual {
            return Err(format!(
                "answers differ at step {step}\n  reference: {expected}\n  backend:   {actual}\nops:\n{}",
                log.join("\n")
            ));
        }
        let (expected, actual) = (snapshots(&reference).await, snapshots(&real).await);
        if let Some(i) = (0..expected.len()).find(|i| expected.get(*i) != actual.get(*i)) {
            return Err(format!(
                "execution #{i} differs after step {step}\n  reference: {}\n  backend:   {}\nops:\n{}",
                expected[i],
                actual.get(i).map(String::as_str).unwrap_or("<missing>"),
                log.join("\n")
            ));
        }
    }
    Ok(())
}
