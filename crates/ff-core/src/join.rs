//! Join evaluation: whether a blocked node becomes ready, is skipped, or
//! keeps waiting, from the outcomes of its parents.

use crate::flow::{EdgeCondition, Join};
use crate::state::Outcome;

/// What a join decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinDecision {
    /// Not decided yet.
    Wait,
    Ready,
    Skip,
}

/// Decides a join from each incoming edge's condition and its parent's
/// outcome (`None` while the parent is not terminal).
///
/// An edge is satisfied when its parent ended with a matching outcome and
/// dead when it ended otherwise. `all_of` is ready when every edge is
/// satisfied and skipped at the first dead one; `any_of` is ready at the
/// first satisfied edge and skipped when all are dead; `quorum(n)` is ready
/// at `n` satisfied and skipped once dead edges exceed `incoming - n`.
pub fn evaluate(join: Join, edges: &[(EdgeCondition, Option<Outcome>)]) -> JoinDecision {
    let total = edges.len();
    let mut satisfied = 0;
    let mut dead = 0;
    for (condition, outcome) in edges {
        match outcome {
            Some(outcome) if condition.satisfied_by(*outcome) => satisfied += 1,
            Some(_) => dead += 1,
            None => {}
        }
    }
    let needed = match join {
        Join::AllOf => total,
        Join::AnyOf => 1.min(total),
        Join::Quorum(n) => (n as usize).min(total),
    };
    if satisfied >= needed {
        JoinDecision::Ready
    } else if dead > total - needed {
        JoinDecision::Skip
    } else {
        JoinDecision::Wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use EdgeCondition::*;

    const DONE: Option<Outcome> = Some(Outcome::Completed);
    const FAILED: Option<Outcome> = Some(Outcome::Failed);
    const CANCELLED: Option<Outcome> = Some(Outcome::Cancelled);

    #[test]
    fn all_of() {
        assert_eq!(
            evaluate(Join::AllOf, &[(OnSuccess, DONE), (OnSuccess, None)]),
            JoinDecision::Wait
        );
        assert_eq!(
            evaluate(Join::AllOf, &[(OnSuccess, DONE), (OnSuccess, DONE)]),
            JoinDecision::Ready
        );
        assert_eq!(
            evaluate(Join::AllOf, &[(OnSuccess, FAILED), (OnSuccess, None)]),
            JoinDecision::Skip
        );
        assert_eq!(
            evaluate(Join::AllOf, &[(OnFailure, FAILED)]),
            JoinDecision::Ready
        );
        assert_eq!(
            evaluate(Join::AllOf, &[(Always, CANCELLED)]),
            JoinDecision::Ready
        );
        assert_eq!(
            evaluate(Join::AllOf, &[(OnSuccess, CANCELLED)]),
            JoinDecision::Skip
        );
    }

    #[test]
    fn any_of() {
        assert_eq!(
            evaluate(Join::AnyOf, &[(OnSuccess, FAILED), (OnSuccess, None)]),
            JoinDecision::Wait
        );
        assert_eq!(
            evaluate(Join::AnyOf, &[(OnSuccess, None), (OnSuccess, DONE)]),
            JoinDecision::Ready
        );
        assert_eq!(
            evaluate(Join::AnyOf, &[(OnSuccess, FAILED), (OnSuccess, FAILED)]),
            JoinDecision::Skip
        );
    }

    #[test]
    fn quorum() {
        let q2 = Join::Quorum(2);
        assert_eq!(
            evaluate(
                q2,
                &[(OnSuccess, DONE), (OnSuccess, None), (OnSuccess, None)]
            ),
            JoinDecision::Wait
        );
        assert_eq!(
            evaluate(
                q2,
                &[(OnSuccess, DONE), (OnSuccess, DONE), (OnSuccess, None)]
            ),
            JoinDecision::Ready
        );
        assert_eq!(
            evaluate(
                q2,
                &[(OnSuccess, FAILED), (OnSuccess, None), (OnSuccess, None)]
            ),
            JoinDecision::Wait
        );
        assert_eq!(
            evaluate(
                q2,
                &[(OnSuccess, FAILED), (OnSuccess, FAILED), (OnSuccess, None)]
            ),
            JoinDecision::Skip
        );
    }
}
