//! A claim's picks: the lanes' candidates merged in claim order, a lane a
//! fair-share policy names interleaving its fairness keys by weight
//! (smooth weighted round-robin, [`Credits`]), and every pick admitted by
//! the [`ClaimGate`]. A candidate the gate holds is passed over and the
//! claim goes on to the next one, so a limited execution never blocks its
//! lane; its fairness key is not charged for it.

use std::iter::Peekable;

use super::fairness::Credits;
use super::gate::{ClaimGate, Held};
use crate::execution::Execution;

/// One lane's candidates, each source in claim order.
pub enum LaneSource<I: Iterator> {
    /// The lane's candidates in claim order.
    Plain(Peekable<I>),
    /// A fair-share lane: one source per fairness key with its weight, and
    /// the credits carried between claims.
    Fair {
        keys: Vec<(String, u32, Peekable<I>)>,
        credits: Credits,
    },
}

impl<I: Iterator> std::fmt::Debug for LaneSource<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Plain(_) => f.write_str("LaneSource::Plain"),
            Self::Fair { keys, credits } => f
                .debug_struct("LaneSource::Fair")
                .field(
                    "keys",
                    &keys.iter().map(|(k, w, _)| (k, w)).collect::<Vec<_>>(),
                )
                .field("credits", credits)
                .finish(),
        }
    }
}

impl<I: Iterator> LaneSource<I> {
    pub fn plain(candidates: I) -> Self {
        Self::Plain(candidates.peekable())
    }

    /// The credits to store after the claim (a plain lane has none).
    pub fn credits(&self) -> Option<&Credits> {
        match self {
            Self::Plain(_) => None,
            Self::Fair { credits, .. } => Some(credits),
        }
    }

    /// The next candidate's index among the keys (0 for a plain lane).
    fn next_key(&mut self) -> Option<usize> {
        match self {
            Self::Plain(c) => c.peek().map(|_| 0),
            Self::Fair { keys, credits } => {
                let key = credits.choose(&waiting(keys))?.to_owned();
                keys.iter().position(|(k, _, _)| *k == key)
            }
        }
    }

    fn peek(&mut self, key: usize) -> Option<&I::Item> {
        match self {
            Self::Plain(c) => c.peek(),
            Self::Fair { keys, .. } => keys.get_mut(key)?.2.peek(),
        }
    }

    /// Takes the next candidate of `key`; a fair lane charges the key
    /// when the candidate was `taken`.
    fn pop(&mut self, key: usize, taken: bool) -> Option<I::Item> {
        match self {
            Self::Plain(c) => c.next(),
            Self::Fair { keys, credits } => {
                if taken {
                    let chosen = keys.get(key)?.0.clone();
                    credits.charge(&waiting(keys), &chosen);
                }
                keys.get_mut(key)?.2.next()
            }
        }
    }
}

/// Candidates read beyond a key's share of a claim, for the ones the gate
/// holds and the keys that run out.
pub const FAIR_SLACK: usize = 4;

/// How many candidates of a fairness key of `weight` (of `total` among the
/// keys with work) a claim of `n` reads: its share and some slack, so a
/// fair-share claim reads about `n` rows, not `n` per key.
pub fn fair_fetch(n: usize, weight: u32, total: u32) -> usize {
    let total = u64::from(total.max(1));
    let share = (n as u64 * u64::from(weight)).div_ceil(total);
    usize::try_from(share).unwrap_or(n).min(n) + FAIR_SLACK
}

/// The keys with a candidate left, with their weights.
fn waiting<I: Iterator>(keys: &mut [(String, u32, Peekable<I>)]) -> Vec<(&str, u32)> {
    let has: Vec<bool> = keys
        .iter_mut()
        .map(|(_, _, c)| c.peek().is_some())
        .collect();
    keys.iter()
        .zip(has)
        .filter(|(_, has)| *has)
        .map(|((k, w, _), _)| (k.as_str(), *w))
        .collect()
}

/// Picks up to `n` candidates from `lanes`: at each step the lane whose
/// next candidate comes first in claim order, that candidate taken when
/// the gate admits it and passed over (its hold pushed to `passed`) when
/// not. `exec` reads a candidate's execution; `prepare` loads into the
/// gate the state a candidate's keys name, before the gate decides.
pub fn select<I, T>(
    lanes: &mut [LaneSource<I>],
    gate: &mut ClaimGate<'_>,
    n: usize,
    exec: impl Fn(&T) -> &Execution,
    mut prepare: impl FnMut(&mut ClaimGate<'_>, &Execution),
    passed: &mut Vec<Held>,
) -> Vec<T>
where
    I: Iterator<Item = T>,
{
    let mut picked = Vec::with_capacity(n);
    while picked.len() < n {
        let mut best: Option<(usize, usize, _)> = None;
        for (lane, source) in lanes.iter_mut().enumerate() {
            let Some(key) = source.next_key() else {
                continue;
            };
            let Some(order) = source.peek(key).map(|c| exec(c).order_key()) else {
                continue;
            };
            if best.as_ref().is_none_or(|(_, _, o)| order < *o) {
                best = Some((lane, key, order));
            }
        }
        let Some((lane, key, _)) = best else {
            break;
        };
        let source = &mut lanes[lane];
        let admitted = match source.peek(key) {
            Some(candidate) => {
                prepare(gate, exec(candidate));
                gate.admit(exec(candidate))
            }
            None => break,
        };
        match admitted {
            Ok(()) => picked.extend(source.pop(key, true)),
            Err(held) => {
                passed.push(held);
                source.pop(key, false);
            }
        }
    }
    picked
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::flow_control::concurrency::{ConcurrencyPolicy, KeyPattern};
    use crate::flow_control::policy::{Policy, PolicySet, PolicySpec};
    use crate::ids::ExecutionId;
    use crate::json::JsonText;
    use crate::limits::Limits;
    use crate::SubmitRequest;

    fn exec(key: Option<&str>, fairness: &str) -> Execution {
        let mut req = SubmitRequest::new("l", "k", JsonText::null()).fairness_key(fairness);
        if let Some(key) = key {
            req = req.concurrency_key(key);
        }
        Execution::new(ExecutionId::new(), req, 0)
    }

    fn limit(key: &str, n: u32) -> PolicySet {
        PolicySet::new(&[Policy {
            namespace: "default".into(),
            name: "p".into(),
            version: 1,
            spec: PolicySpec::Concurrency(ConcurrencyPolicy {
                pattern: KeyPattern::parse(key, &Limits::default()).expect("pattern"),
                limit: n,
            }),
            updated_at: 0,
        }])
    }

    #[test]
    fn a_held_candidate_does_not_block_the_lane() {
        let set = limit("k", 1);
        let mut gate = ClaimGate::new(&set, 0);
        let execs = vec![exec(Some("k"), "a"), exec(Some("k"), "a"), exec(None, "a")];
        let ids: Vec<_> = execs.iter().map(|e| e.id).collect();
        let mut lanes = [LaneSource::plain(execs.into_iter())];
        let mut passed = Vec::new();
        let got = select(&mut lanes, &mut gate, 3, |e| e, |_, _| {}, &mut passed);
        assert_eq!(
            got.iter().map(|e| e.id).collect::<Vec<_>>(),
            [ids[0], ids[2]]
        );
        assert_eq!(passed.len(), 1);
    }

    #[test]
    fn a_fair_fetch_reads_a_share_and_some_slack() {
        assert_eq!(fair_fetch(100, 1, 10), 10 + FAIR_SLACK);
        assert_eq!(fair_fetch(100, 3, 4), 75 + FAIR_SLACK);
        assert_eq!(fair_fetch(1, 1, 10), 1 + FAIR_SLACK);
        assert_eq!(fair_fetch(10, 5, 0), 10 + FAIR_SLACK);
    }

    #[test]
    fn a_fair_lane_shares_by_weight() {
        let set = PolicySet::default();
        let mut gate = ClaimGate::new(&set, 0);
        let source = |key: &str| {
            let execs: Vec<_> = (0..100).map(|_| exec(None, key)).collect();
            execs.into_iter().peekable()
        };
        let mut lanes = [LaneSource::Fair {
            keys: vec![
                ("a".to_owned(), 3, source("a")),
                ("b".to_owned(), 1, source("b")),
            ],
            credits: Credits::default(),
        }];
        let got = select(&mut lanes, &mut gate, 40, |e| e, |_, _| {}, &mut Vec::new());
        let mut shares = BTreeMap::new();
        for e in &got {
            *shares.entry(e.fairness().to_owned()).or_insert(0) += 1;
        }
        assert_eq!((shares["a"], shares["b"]), (30, 10));
    }
}
