//! Fair shares within a lane: smooth weighted round-robin across the
//! fairness keys that have claimable work. Each pick adds every waiting
//! key's weight to its credit, takes the key with the most credit (ties to
//! the smaller key, so every backend picks alike) and charges it the total
//! weight. Over any run of picks each key's share follows its weight,
//! interleaved rather than in blocks, and a key that arrives late is served
//! from its first pick without a debt to pay off; a key with no work keeps
//! no credit, so idling never banks a burst.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The weight of a key no policy names.
pub const DEFAULT_WEIGHT: u32 = 1;

/// The credit of each fairness key with work, carried between picks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credits {
    pub credit: BTreeMap<String, i64>,
}

impl Credits {
    /// Picks the next key among `waiting` (key, weight) and charges it;
    /// `None` when nothing waits.
    pub fn pick(&mut self, waiting: &[(&str, u32)]) -> Option<String> {
        let key = self.choose(waiting)?.to_owned();
        self.charge(waiting, &key);
        Some(key)
    }

    /// The key the next pick takes, changing nothing.
    pub fn choose<'k>(&self, waiting: &[(&'k str, u32)]) -> Option<&'k str> {
        let mut best: Option<(&str, i64)> = None;
        for (key, weight) in waiting {
            let credit = self.credit.get(*key).copied().unwrap_or(0) + i64::from(*weight);
            let better = match best {
                None => true,
                Some((best_key, best_credit)) => {
                    credit > best_credit || (credit == best_credit && *key < best_key)
                }
            };
            if better {
                best = Some((key, credit));
            }
        }
        best.map(|(key, _)| key)
    }

    /// Takes a pick of `key`: every waiting key gains its weight, `key`
    /// pays the total, and keys no longer waiting lose their credit.
    pub fn charge(&mut self, waiting: &[(&str, u32)], key: &str) {
        self.credit
            .retain(|k, _| waiting.iter().any(|(w, _)| w == k));
        let total: i64 = waiting.iter().map(|(_, w)| i64::from(*w)).sum();
        for (k, weight) in waiting {
            *self.credit.entry((*k).to_owned()).or_insert(0) += i64::from(*weight);
        }
        if let Some(credit) = self.credit.get_mut(key) {
            *credit -= total;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shares(
        credits: &mut Credits,
        waiting: &[(&str, u32)],
        picks: usize,
    ) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for _ in 0..picks {
            let key = credits.pick(waiting).expect("a key");
            *out.entry(key).or_insert(0) += 1;
        }
        out
    }

    #[test]
    fn shares_follow_the_weights_exactly_over_a_cycle() {
        let mut credits = Credits::default();
        let got = shares(&mut credits, &[("a", 3), ("b", 2), ("c", 1)], 600);
        assert_eq!(got["a"], 300);
        assert_eq!(got["b"], 200);
        assert_eq!(got["c"], 100);
    }

    #[test]
    fn picks_interleave_rather_than_come_in_blocks() {
        let mut credits = Credits::default();
        let order: Vec<String> = (0..6)
            .filter_map(|_| credits.pick(&[("a", 3), ("b", 2), ("c", 1)]))
            .collect();
        assert_eq!(order, ["a", "b", "a", "c", "b", "a"]);
    }

    #[test]
    fn a_late_key_gets_its_share_at_once() {
        let mut credits = Credits::default();
        shares(&mut credits, &[("a", 1)], 1_000);
        let got = shares(&mut credits, &[("a", 1), ("late", 1)], 10);
        assert_eq!(got["late"], 5);
    }

    #[test]
    fn nothing_waiting_picks_nothing() {
        assert_eq!(Credits::default().pick(&[]), None);
    }
}
