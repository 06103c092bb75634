//! A batch of completions split the way every backend cascades one, so the
//! split and the answer order are written once and each backend supplies
//! only how it runs each part.
//!
//! - Solo executions: their cascade only claims the outbox entry, so a
//!   backend dispatches them together (one statement, one call per
//!   partition).
//! - Flow members: their cascade applies edges, each its own atomic step.
//! - Repeats of an earlier payload's outbox entry `(partition, seq)`: they run
//!   after the rest, so the first dispatches and the repeat finds it done,
//!   whatever the backend runs concurrently.

use std::collections::HashSet;
use std::future::Future;

use crate::cascade::CascadeReport;
use crate::completion::CompletionPayload;
use crate::error::EngineError;

/// One payload's answer in a batch.
pub type CascadeAnswer = Result<CascadeReport, EngineError>;

/// Which payloads of a batch are solo, flow members or repeats, by index
/// into the batch; each list in batch order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletionBatch<'a> {
    payloads: &'a [CompletionPayload],
    solo: Vec<usize>,
    members: Vec<usize>,
    repeats: Vec<usize>,
}

impl<'a> CompletionBatch<'a> {
    /// Splits `payloads`: the first payload of each outbox entry is solo or a
    /// member by whether it names a flow; every later one is a repeat.
    pub fn split(payloads: &'a [CompletionPayload]) -> Self {
        let mut seen = HashSet::new();
        let (mut solo, mut members, mut repeats) = (Vec::new(), Vec::new(), Vec::new());
        for (i, payload) in payloads.iter().enumerate() {
            if !seen.insert((payload.partition, payload.seq)) {
                repeats.push(i);
            } else if payload.flow_id.is_some() {
                members.push(i);
            } else {
                solo.push(i);
            }
        }
        Self {
            payloads,
            solo,
            members,
            repeats,
        }
    }

    /// The solo executions' payloads.
    pub fn solo(&self) -> Vec<&'a CompletionPayload> {
        self.pick(&self.solo)
    }

    /// The flow members' payloads.
    pub fn members(&self) -> Vec<&'a CompletionPayload> {
        self.pick(&self.members)
    }

    /// The payloads repeating an earlier one's outbox entry.
    pub fn repeats(&self) -> Vec<&'a CompletionPayload> {
        self.pick(&self.repeats)
    }

    fn pick(&self, indices: &[usize]) -> Vec<&'a CompletionPayload> {
        indices.iter().map(|&i| &self.payloads[i]).collect()
    }

    /// Puts the answers of each part (in that part's order) back in payload
    /// order. A payload its part left unanswered gets a `Backend` error.
    pub fn answers(
        &self,
        solo: Vec<CascadeAnswer>,
        members: Vec<CascadeAnswer>,
        repeats: Vec<CascadeAnswer>,
    ) -> Vec<CascadeAnswer> {
        let mut slots: Vec<Option<CascadeAnswer>> = self.payloads.iter().map(|_| None).collect();
        for (indices, answers) in [
            (&self.solo, solo),
            (&self.members, members),
            (&self.repeats, repeats),
        ] {
            for (&i, answer) in indices.iter().zip(answers) {
                slots[i] = Some(answer);
            }
        }
        slots
            .into_iter()
            .map(|slot| {
                slot.unwrap_or_else(|| Err(EngineError::backend("a cascade went unanswered")))
            })
            .collect()
    }
}

/// Cascades `payloads` as `FlowOps::cascade_completions` promises: the solo
/// part through `solo` and the member part through `members`, concurrently,
/// then each repeat through `one`, in order; the answers in payload order.
/// An outer error from either part is the whole call's error.
pub async fn cascade_batch<'a, SoloFut, MembersFut, OneFut>(
    payloads: &'a [CompletionPayload],
    solo: impl FnOnce(Vec<&'a CompletionPayload>) -> SoloFut,
    members: impl FnOnce(Vec<&'a CompletionPayload>) -> MembersFut,
    one: impl Fn(&'a CompletionPayload) -> OneFut,
) -> Result<Vec<CascadeAnswer>, EngineError>
where
    SoloFut: Future<Output = Result<Vec<CascadeAnswer>, EngineError>>,
    MembersFut: Future<Output = Result<Vec<CascadeAnswer>, EngineError>>,
    OneFut: Future<Output = CascadeAnswer>,
{
    let batch = CompletionBatch::split(payloads);
    let (solo, members) = futures::future::join(solo(batch.solo()), members(batch.members())).await;
    let (solo, members) = (solo?, members?);
    let mut repeats = Vec::new();
    for payload in batch.repeats() {
        repeats.push(one(payload).await);
    }
    Ok(batch.answers(solo, members, repeats))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ExecutionId, FlowId};
    use crate::state::Outcome;

    fn payload(seq: u64, flow: bool) -> CompletionPayload {
        CompletionPayload {
            execution_id: ExecutionId::new(),
            namespace: "default".to_owned(),
            flow_id: flow.then(FlowId::new),
            node_key: flow.then(|| "n".to_owned()),
            outcome: Outcome::Completed,
            attempt: 1,
            committed_at: 0,
            partition: 0,
            seq,
        }
    }

    fn seq_of(answer: &CascadeAnswer) -> Option<u64> {
        answer.as_ref().ok().map(|r| r.cascaded_at as u64)
    }

    #[test]
    fn splits_solo_members_and_repeats_and_answers_in_payload_order() {
        let a = payload(1, true);
        let payloads = [a.clone(), payload(2, false), payload(3, true), a];
        let batch = CompletionBatch::split(&payloads);
        let seqs = |part: Vec<&CompletionPayload>| part.iter().map(|p| p.seq).collect::<Vec<_>>();
        assert_eq!(seqs(batch.solo()), vec![2]);
        assert_eq!(seqs(batch.members()), vec![1, 3]);
        assert_eq!(seqs(batch.repeats()), vec![1]);
        let answer = |seq: u64| {
            Ok(CascadeReport {
                cascaded_at: seq as i64,
                ..CascadeReport::default()
            })
        };
        let answers = batch.answers(vec![answer(2)], vec![answer(1)], vec![answer(10)]);
        assert_eq!(
            answers.iter().map(seq_of).collect::<Vec<_>>(),
            vec![Some(1), Some(2), None, Some(10)],
            "the member left unanswered gets an error, the rest their own answer"
        );
    }
}
