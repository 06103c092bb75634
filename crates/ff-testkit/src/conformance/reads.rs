//! Lookups, lists with filters and cursors, counts.

use std::collections::HashSet;

use ff_core::{ErrorKind, ExecutionId, JsonText, LaneStateCount, LeaseHandle, ListFilter, State};

use super::support::*;
use crate::BackendFactory;

pub async fn get_unknown_is_not_found(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let unknown = ExecutionId::new();
    expect_err(b.engine.get_execution(unknown).await, ErrorKind::NotFound);
    expect_err(b.engine.cancel(unknown).await, ErrorKind::NotFound);
    let handle = LeaseHandle {
        execution_id: unknown,
        namespace: ff_core::DEFAULT_NAMESPACE.to_owned(),
        attempt: 1,
        lease_epoch: 1,
        lease_token: ff_core::LeaseToken::random(),
    };
    expect_err(
        b.engine.complete(&handle, JsonText::null()).await,
        ErrorKind::NotFound,
    );
    expect_err(b.engine.renew(&handle).await, ErrorKind::NotFound);
}

pub async fn describe_names_the_backend(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let described = b.engine.describe().await.expect("describe");
    assert!(!described.name.is_empty(), "{described:?}");
    assert!(!described.version.trim().is_empty(), "{described:?}");
    assert!(!described.durability.is_empty(), "{described:?}");
}

pub async fn list_pages_through_everything_once(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let reqs = (0..600)
        .map(|i| job(if i % 3 == 0 { "x" } else { "y" }))
        .collect();
    let submitted = b.engine.submit_batch(reqs).await.expect("batch");
    let mut all: Vec<ExecutionId> = submitted.iter().map(|s| s.id).collect();
    all.sort();
    let walk = |lane: Option<&str>| {
        let engine = b.engine.clone();
        let mut filter = ListFilter {
            lane: lane.map(str::to_owned),
            limit: 70,
            ..ListFilter::default()
        };
        async move {
            let mut seen = Vec::new();
            loop {
                let page = engine.list_executions(&filter).await.expect("list");
                assert!(page.items.len() <= 70);
                seen.extend(page.items.iter().map(|e| e.id));
                match page.next_cursor {
                    Some(cursor) => filter.cursor = Some(cursor),
                    None => return seen,
                }
            }
        }
    };
    assert_eq!(walk(None).await, all, "every execution once, in id order");
    let x: Vec<ExecutionId> = submitted
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 3 == 0)
        .map(|(_, s)| s.id)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(walk(Some("x")).await, x, "a filtered walk skips nothing");
}

pub async fn list_filters_and_paginates(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let mut ids = Vec::new();
    for i in 0..7 {
        let env = if i % 2 == 0 { "prod" } else { "dev" };
        ids.push(submit(&b, job("a").tag("env", env)).await);
    }
    for _ in 0..3 {
        let req = ff_core::SubmitRequest::new("b", "report", JsonText::null());
        ids.push(submit(&b, req).await);
    }
    submit(&b, job("a").namespace("other")).await;

    let mut seen = Vec::new();
    let mut filter = ListFilter {
        limit: 3,
        ..ListFilter::default()
    };
    loop {
        let page = b.engine.list_executions(&filter).await.expect("list");
        assert!(page.items.len() <= 3);
        seen.extend(page.items.iter().map(|e| e.id));
        match page.next_cursor {
            Some(cursor) => filter.cursor = Some(cursor),
            None => break,
        }
    }
    assert_eq!(seen, ids, "every execution once, in id order");

    let count = |filter: ListFilter| {
        let engine = b.engine.clone();
        async move {
            engine
                .list_executions(&filter)
                .await
                .expect("list")
                .items
                .len()
        }
    };
    assert_eq!(
        count(ListFilter {
            lane: Some("b".into()),
            ..ListFilter::default()
        })
        .await,
        3
    );
    assert_eq!(
        count(ListFilter {
            kind: Some("report".into()),
            ..ListFilter::default()
        })
        .await,
        3
    );
    let prod = ListFilter {
        tag: Some(("env".into(), "prod".into())),
        ..ListFilter::default()
    };
    assert_eq!(count(prod).await, 4);
    assert_eq!(
        count(ListFilter {
            namespace: "other".into(),
            ..ListFilter::default()
        })
        .await,
        1
    );

    b.engine.claim(&claim_req("a", 2)).await.expect("claim");
    let running = ListFilter {
        state: Some(State::Running),
        ..ListFilter::default()
    };
    let page = b.engine.list_executions(&running).await.expect("list");
    assert_eq!(
        page.items.iter().map(|e| e.id).collect::<HashSet<_>>(),
        ids[..2].iter().copied().collect()
    );

    let bad = ListFilter {
        cursor: Some("not-a-cursor".into()),
        ..ListFilter::default()
    };
    expect_invalid(b.engine.list_executions(&bad).await, "cursor");
    let zero = ListFilter {
        limit: 0,
        ..ListFilter::default()
    };
    expect_invalid(b.engine.list_executions(&zero).await, "limit");
}

pub async fn counts_per_lane_and_state(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    for _ in 0..3 {
        submit(&b, job("a")).await;
    }
    submit(&b, job("b")).await;
    submit(&b, job("b").run_at(b.clock.now_ms() + 60_000)).await;
    submit(&b, job("a").namespace("other")).await;
    claim_one(&b, "a").await;
    let done = claim_one(&b, "b").await;
    b.engine
        .complete(&done.handle, JsonText::null())
        .await
        .expect("complete");

    let counts = b
        .engine
        .count_by_lane_and_state("default")
        .await
        .expect("counts");
    let expected = vec![
        LaneStateCount {
            lane: "a".into(),
            state: State::Ready,
            count: 2,
        },
        LaneStateCount {
            lane: "a".into(),
            state: State::Running,
            count: 1,
        },
        LaneStateCount {
            lane: "b".into(),
            state: State::Scheduled,
            count: 1,
        },
        LaneStateCount {
            lane: "b".into(),
            state: State::Completed,
            count: 1,
        },
    ];
    assert_eq!(counts, expected);
}
