//! The operations of the differential test: how one is drawn from the
//! reference side's state, and how it is applied to a side, answering a
//! comparable string.

use ff_core::flow::{EdgeSpec, FlowSpec, NodeSpec};
use ff_core::flow_control::{
    BudgetPolicy, ConcurrencyPolicy, DimensionLimit, FairSharePolicy, KeyPattern, PolicySpec,
    RateLimitPolicy, UsageReport,
};
use ff_core::suspension::{
    ResumeCondition, SignalRequest, SuspendRequest, SuspendResponse, TimeoutPolicy,
    WaitpointRequest,
};
use ff_core::{ClaimRequest, Failure, JsonText, RetryPolicy, SubmitRequest};

use super::flows;
use super::{MemberLease, Rng, Side};

pub(super) const LANES: [&str; 3] = ["a", "b", "c"];
const CAPS: [&str; 2] = ["gpu", "eu"];
const WAITPOINTS: [&str; 3] = ["x", "y", "z"];

/// At most this many flows per case, so snapshots stay cheap.
const MAX_FLOWS: usize = 8;

#[derive(Debug, Clone)]
pub(super) enum Op {
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
    CreateFlow(Box<FlowSpec>),
    /// Dynamic fan-out with the lease of `handle` (an index into the
    /// side's handles; usually a flow member's).
    AddNodes {
        handle: usize,
        nodes: Vec<NodeSpec>,
        edges: Vec<EdgeSpec>,
    },
    CancelFlow(usize),
    /// Cascades the undispatched entry at this position (modulo their
    /// count), so cascades also run out of commit order.
    CascadeOne(usize),
    /// Cascades every undispatched entry in batches until none is left,
    /// the first of each batch twice when `repeat` is set.
    CascadeAll {
        repeat: bool,
    },
    ReconcileBlocked,
    /// Creates a waitpoint with the lease of this handle.
    Waitpoint(usize, String),
    Suspend(usize, Box<SuspendRequest>),
    /// Signals with the token at this position of the side's tokens.
    SignalByToken(usize, Box<SignalRequest>),
    /// Signals execution `i`'s waitpoint by id and key.
    Signal(usize, String, Box<SignalRequest>),
    ExpireSuspensions,
    PutPolicy(&'static str, Box<PolicySpec>),
    DeletePolicy(&'static str),
    /// Reports usage with the lease of this handle.
    ReportUsage(usize, Box<UsageReport>),
}

/// The policies a case may set, by name, over the keys submits draw.
const POLICY_NAMES: [&str; 4] = ["conc", "rate", "budget", "shares"];

fn pattern(text: &str) -> KeyPattern {
    KeyPattern::parse(text, &ff_core::Limits::default())
        .unwrap_or(KeyPattern::Prefix(String::new()))
}

fn random_policy(rng: &mut Rng) -> Op {
    let name = *rng.pick(&POLICY_NAMES);
    let spec = match name {
        "conc" => PolicySpec::Concurrency(ConcurrencyPolicy {
            pattern: pattern(if rng.chance(50) { "k1" } else { "k*" }),
            limit: 1 + rng.below(3) as u32,
        }),
        "rate" => PolicySpec::Rate(RateLimitPolicy {
            pattern: pattern("r1"),
            n: 1 + rng.below(3),
            window_ms: 1_000,
            burst: 1 + rng.below(2),
        }),
        "budget" => PolicySpec::Budget(BudgetPolicy {
            scope: "t1".to_owned(),
            limits: vec![DimensionLimit {
                dimension: "tokens".to_owned(),
                soft: Some(5),
                hard: Some(10 + rng.below(20)),
            }],
            reset_every_ms: rng.chance(50).then_some(2_000),
            cancel_pending: rng.chance(30),
        }),
        _ => PolicySpec::FairShare(FairSharePolicy {
            lane: rng.pick(&LANES).to_string(),
            weights: [
                ("t1".to_owned(), 1 + rng.below(3) as u32),
                ("t2".to_owned(), 1 + rng.below(3) as u32),
            ]
            .into(),
            default_weight: 1,
        }),
    };
    Op::PutPolicy(name, Box::new(spec))
}

fn random_usage(rng: &mut Rng, handle: usize) -> Op {
    Op::ReportUsage(
        handle,
        Box::new(UsageReport {
            dedup_key: format!("u{}", rng.below(4)),
            amounts: [("tokens".to_owned(), 1 + rng.below(8))].into(),
        }),
    )
}

fn random_signal(rng: &mut Rng) -> Box<SignalRequest> {
    let mut req = SignalRequest::new(
        *rng.pick(&["ok", "no"]),
        JsonText::unchecked(format!("{{\"v\":{}}}", rng.below(10))),
    );
    if rng.chance(40) {
        req = req.idempotency_key(format!("d{}", rng.below(3)));
    }
    Box::new(req)
}

fn random_suspend(rng: &mut Rng) -> Box<SuspendRequest> {
    let n = 1 + rng.below(3) as usize;
    let waitpoints: Vec<&str> = WAITPOINTS[..n].to_vec();
    let condition = match rng.below(3) {
        0 => ResumeCondition::Any,
        1 => ResumeCondition::All,
        _ => ResumeCondition::Count {
            n: 1 + rng.below(n as u64) as u32,
            distinct: rng.chance(50),
        },
    };
    let mut req = SuspendRequest::on(format!("s{}", rng.below(2)), waitpoints).condition(condition);
    if rng.chance(50) {
        let policy = *rng.pick(&[
            TimeoutPolicy::Fail,
            TimeoutPolicy::Cancel,
            TimeoutPolicy::Resume,
        ]);
        req = req.timeout(200 + rng.below(1_500), policy);
    }
    Box::new(req)
}

/// A signal op: by token when the side holds one, else by id and key.
fn random_signal_op(rng: &mut Rng, side: &Side) -> Op {
    if !side.tokens.is_empty() && rng.chance(60) {
        let at = side.tokens.len() - 1 - rng.below(side.tokens.len().min(4) as u64) as usize;
        return Op::SignalByToken(at, random_signal(rng));
    }
    let i = side.ids.len() - 1 - rng.below(side.ids.len().min(4) as u64) as usize;
    Op::Signal(i, rng.pick(&WAITPOINTS).to_string(), random_signal(rng))
}

fn random_submit(rng: &mut Rng, now: i64) -> Op {
    let mut req = SubmitRequest::new(
        *rng.pick(&LANES),
        "job",
        JsonText::unchecked(format!("{{\"r\":{}}}", rng.below(1000))),
    )
    .priority(rng.below(3) as i32 - 1)
    .lease_ms(500 + rng.below(3) * 500)
    .retry(random_retry(rng));
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
    if rng.chance(20) {
        req = req.concurrency_key(*rng.pick(&["k1", "k2"]));
    }
    if rng.chance(15) {
        req = req.rate_key("r1");
    }
    if rng.chance(25) {
        req = req.fairness_key(*rng.pick(&["t1", "t2"]));
    }
    Op::Submit(Box::new(req))
}

/// One to three attempts with a short backoff.
pub(super) fn random_retry(rng: &mut Rng) -> RetryPolicy {
    RetryPolicy {
        max_attempts: 1 + rng.below(3) as u32,
        initial_backoff_ms: 100,
        max_backoff_ms: 1_000,
        // Jitter hashes the id, and ids differ between the two sides; the
        // conformance suite checks jitter itself.
        jitter_percent: 0,
    }
}

/// Draws the next operation from what the reference side knows.
pub(super) fn random_op(rng: &mut Rng, now: i64, side: &Side) -> Op {
    let (submitted, handles, flows) = (side.ids.len(), side.handles.len(), side.flows.len());
    match rng.below(100) {
        0..=13 => random_submit(rng, now),
        14..=21 if flows < MAX_FLOWS => Op::CreateFlow(Box::new(flows::random_flow(rng))),
        14..=21 => random_submit(rng, now),
        22..=39 => {
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
        40..=62 if handles > 0 => {
            // Mostly a recent lease, which is likelier to be live.
            let h = if rng.chance(60) {
                handles - 1 - rng.below(handles.min(3) as u64) as usize
            } else {
                rng.below(handles as u64) as usize
            };
            match rng.below(5) {
                0 => Op::Renew(h),
                1 => Op::Release(h),
                2 | 3 => Op::Complete(h, format!("{}", rng.below(100))),
                _ => Op::Fail(h, rng.chance(80)),
            }
        }
        63..=66 if !side.members.is_empty() => flows::random_add(rng, side),
        67..=69 if submitted > 0 => Op::Cancel(rng.below(submitted as u64) as usize),
        70..=71 if submitted > 0 => Op::Requeue(rng.below(submitted as u64) as usize),
        72..=73 if flows > 0 => Op::CancelFlow(rng.below(flows as u64) as usize),
        74..=78 => Op::CascadeOne(rng.below(8) as usize),
        79..=82 => Op::CascadeAll {
            repeat: rng.chance(30),
        },
        83 => Op::ReconcileBlocked,
        84..=87 => Op::Advance(1 + rng.below(700)),
        88 => random_policy(rng),
        89 if rng.chance(30) => {
            Op::DeletePolicy(POLICY_NAMES[rng.below(POLICY_NAMES.len() as u64) as usize])
        }
        89 => random_policy(rng),
        90 if handles > 0 => {
            let h = handles - 1 - rng.below(handles.min(3) as u64) as usize;
            random_usage(rng, h)
        }
        90 => Op::Advance(1 + rng.below(700)),
        91..=92 => Op::ExpireLeases,
        93 => Op::PromoteScheduled,
        94 => Op::ExpireDeadlines,
        95 => Op::ExpireSuspensions,
        96..=99 if handles > 0 => {
            let h = handles - 1 - rng.below(handles.min(3) as u64) as usize;
            match rng.below(4) {
                0 => Op::Waitpoint(h, rng.pick(&WAITPOINTS).to_string()),
                1 | 2 => Op::Suspend(h, random_suspend(rng)),
                _ if submitted > 0 => random_signal_op(rng, side),
                _ => Op::Suspend(h, random_suspend(rng)),
            }
        }
        96..=99 if submitted > 0 => random_signal_op(rng, side),
        _ => Op::ExpireDeadlines,
    }
}

/// Applies `op` to `side`, learning what it hands out; the comparable answer.
pub(super) async fn apply(side: &mut Side, op: &Op) -> String {
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
            for claimed in result.iter().flatten() {
                let handle = side.handles.len();
                side.handles.push(claimed.handle.clone());
                let member = claimed.flow_id.zip(claimed.node_key.clone());
                if let Some((flow, node_key)) = member {
                    let flow = side.learn_flow(flow);
                    side.members.push(MemberLease {
                        handle,
                        flow,
                        node_key,
                    });
                }
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
        Op::CreateFlow(spec) => flows::create(side, spec).await,
        Op::AddNodes {
            handle,
            nodes,
            edges,
        } => flows::add_nodes(side, *handle, nodes, edges).await,
        Op::CancelFlow(f) => side.normalize(e.cancel_flow(side.flows[*f]).await),
        Op::CascadeOne(at) => flows::cascade_one(side, *at).await,
        Op::CascadeAll { repeat } => flows::cascade_all(side, *repeat).await,
        Op::ReconcileBlocked => side.normalize(e.reconcile_blocked(0, 1_000).await),
        Op::Waitpoint(h, key) => {
            let result = e
                .create_waitpoint(&side.handles[*h], &WaitpointRequest::new(key))
                .await;
            if let Ok(grant) = &result {
                side.tokens.push(grant.token.clone());
            }
            side.normalize(result)
        }
        Op::Suspend(h, req) => {
            let result = e.suspend(&side.handles[*h], req).await;
            if let Ok(SuspendResponse::Suspended { waitpoints, .. }) = &result {
                side.tokens
                    .extend(waitpoints.iter().map(|w| w.token.clone()));
            }
            side.normalize(result)
        }
        Op::SignalByToken(at, req) => {
            side.normalize(e.signal_by_token(&side.tokens[*at], req).await)
        }
        Op::Signal(i, key, req) => {
            side.normalize(e.signal("default", side.ids[*i], key, req).await)
        }
        Op::ExpireSuspensions => side.normalize(e.expire_suspensions(1_000).await),
        Op::PutPolicy(name, spec) => {
            side.normalize(e.put_policy("default", name, PolicySpec::clone(spec)).await)
        }
        Op::DeletePolicy(name) => side.normalize(e.delete_policy("default", name).await),
        Op::ReportUsage(h, report) => {
            side.normalize(e.report_usage(&side.handles[*h], report).await)
        }
    }
}
