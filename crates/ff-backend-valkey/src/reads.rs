//! `ReadOps`: lookups, and lists that merge each partition's id index in id
//! order behind the usual opaque cursor (the last id returned).

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;

use ff_core::flow::{FlowEdge, FlowFilter, FlowRecord, FlowState, FlowSummary, FlowView, NodeView};
use ff_core::{
    BackendDescription, EngineError, Execution, ExecutionId, FlowId, LaneStateCount, ListFilter,
    Page, ReadOps, State,
};

use crate::flow_txn::{StoredEdge, StoredNode};
use crate::{config, ValkeyBackend};

/// Ids read from each partition per round.
const CHUNK: usize = 256;

#[async_trait]
impl ReadOps for ValkeyBackend {
    /// The members of the lane's queue that score below `exec`, on every
    /// partition: due scheduled ones a claim has not moved yet are left
    /// out, so the count is a close lower bound.
    async fn count_ahead(&self, exec: &Execution) -> Result<u64, EngineError> {
        let below = format!("({}", crate::keys::order_score(exec));
        let mut total = 0u64;
        for p in 0..self.keys().partitions() {
            let queue = self.keys().queue_of(p, exec);
            let n: u64 = self
                .inner
                .conn
                .query(redis::cmd("ZCOUNT").arg(queue).arg("-inf").arg(&below))
                .await?;
            total += n;
        }
        Ok(total)
    }

    async fn get_execution(&self, id: ExecutionId) -> Result<Execution, EngineError> {
        self.load(id)
            .await?
            .map(|stored| stored.exec)
            .ok_or_else(|| EngineError::execution_not_found(id))
    }

    async fn list_executions(&self, filter: &ListFilter) -> Result<Page<Execution>, EngineError> {
        let after = filter.validate(&self.inner.limits)?;
        let want = filter.limit as usize + 1;
        let sets: Vec<String> = (0..self.keys().partitions())
            .map(|p| self.keys().ids(p, &filter.namespace))
            .collect();
        let mut cursor = after.map(|id| id.to_string());
        let mut items = Vec::new();
        loop {
            let (ids, next) = self.next_ids(&sets, cursor.as_deref()).await?;
            let mut by_partition: BTreeMap<u32, Vec<String>> = BTreeMap::new();
            for (p, id) in &ids {
                by_partition.entry(*p).or_default().push(id.clone());
            }
            let mut found: HashMap<String, Execution> = HashMap::new();
            for (p, part) in by_partition {
                for stored in self.load_many(p, &part).await?.into_iter().flatten() {
                    found.insert(stored.exec.id.to_string(), stored.exec);
                }
            }
            for (_, id) in ids {
                if let Some(exec) = found.remove(&id).filter(|e| filter.matches(e)) {
                    items.push(exec);
                    if items.len() == want {
                        return Ok(Page::from_overfetch(items, filter.limit));
                    }
                }
            }
            match next {
                Some(next) => cursor = Some(next),
                None => return Ok(Page::from_overfetch(items, filter.limit)),
            }
        }
    }

    async fn count_by_lane_and_state(
        &self,
        namespace: &str,
    ) -> Result<Vec<LaneStateCount>, EngineError> {
        let mut totals: BTreeMap<(String, State), u64> = BTreeMap::new();
        for p in 0..self.keys().partitions() {
            let counts: HashMap<String, u64> = self
                .inner
                .conn
                .query(redis::cmd("HGETALL").arg(self.keys().counts(p, namespace)))
                .await?;
            for (field, count) in counts {
                let Some((lane, state)) = field.split_once('\n') else {
                    continue;
                };
                *totals.entry((lane.to_owned(), state.parse()?)).or_default() += count;
            }
        }
        Ok(totals
            .into_iter()
            .filter(|(_, count)| *count > 0)
            .map(|((lane, state), count)| LaneStateCount { lane, state, count })
            .collect())
    }

    async fn get_flow(&self, id: FlowId) -> Result<FlowView, EngineError> {
        let (record, nodes, edges) = self.flow_parts(id).await?;
        Ok(FlowView::new(record, nodes, edges))
    }

    async fn list_flows(&self, filter: &FlowFilter) -> Result<Page<FlowSummary>, EngineError> {
        let after = filter.validate(&self.inner.limits)?;
        let want = filter.limit as usize + 1;
        let sets: Vec<String> = (0..self.keys().partitions())
            .map(|p| self.keys().flows(p, &filter.namespace))
            .collect();
        let mut cursor = after.map(|id| id.to_string());
        let mut items = Vec::new();
        loop {
            let (ids, next) = self.next_ids(&sets, cursor.as_deref()).await?;
            for (_, id) in ids {
                let (record, nodes, _) = self.flow_parts(id.parse()?).await?;
                let state = FlowState::derive(record.cancelled, nodes.iter().map(|n| n.state));
                if filter.state.is_some_and(|s| s != state) {
                    continue;
                }
                items.push(FlowSummary {
                    id: record.id,
                    namespace: record.namespace,
                    state,
                    fail_fast: record.fail_fast,
                    created_at: record.created_at,
                    nodes: nodes.len() as u64,
                });
                if items.len() == want {
                    return Ok(Page::from_overfetch(items, filter.limit));
                }
            }
            match next {
                Some(next) => cursor = Some(next),
                None => return Ok(Page::from_overfetch(items, filter.limit)),
            }
        }
    }

    /// Asks one node (a cluster's first seed) on a connection of its own:
    /// `INFO` and `CONFIG` are per node, and the backend's cluster
    /// connection would fan them out to every node.
    async fn describe(&self) -> Result<BackendDescription, EngineError> {
        let client =
            redis::Client::open(self.inner.first_node.as_str()).map_err(EngineError::backend)?;
        let timeouts = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(config::DEFAULT_CONNECT_TIMEOUT)
            .set_response_timeout(config::DEFAULT_RESPONSE_TIMEOUT);
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&timeouts)
            .await
            .map_err(crate::error::classify)?;
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut conn)
            .await
            .map_err(crate::error::classify)?;
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(':')))
                .map(|v| v.trim().to_owned())
        };
        let version = match field("valkey_version") {
            Some(v) => format!("valkey {v}"),
            None => format!("redis {}", field("redis_version").unwrap_or_default()),
        };
        let settings: HashMap<String, String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("append*")
            .query_async(&mut conn)
            .await
            .map_err(crate::error::classify)?;
        let durability = match settings.get("appendonly").map(String::as_str) {
            Some("yes") => format!(
                "appendonly=yes appendfsync={}",
                settings.get("appendfsync").map_or("?", String::as_str)
            ),
            _ => "appendonly=no".to_owned(),
        };
        Ok(BackendDescription {
            name: "valkey".to_owned(),
            version,
            durability,
        })
    }
}

impl ValkeyBackend {
    /// The next ids after `after` across the partitions' sets, merged in
    /// order, each with its partition; and where to go on from, `None` once
    /// every set is exhausted. Only ids up to the smallest last id of a full
    /// answer are returned, so none is skipped.
    async fn next_ids(
        &self,
        sets: &[String],
        after: Option<&str>,
    ) -> Result<(Vec<(u32, String)>, Option<String>), EngineError> {
        let start = after.map_or("-".to_owned(), |a| format!("({a}"));
        let mut all = Vec::new();
        let mut bound: Option<String> = None;
        for (p, set) in sets.iter().enumerate() {
            let ids: Vec<String> = self
                .inner
                .conn
                .query(
                    redis::cmd("ZRANGE")
                        .arg(set)
                        .arg(&start)
                        .arg("+")
                        .arg("BYLEX")
                        .arg("LIMIT")
                        .arg(0)
                        .arg(CHUNK),
                )
                .await?;
            if ids.len() == CHUNK {
                if let Some(last) = ids.last() {
                    if bound.as_ref().is_none_or(|b| last < b) {
                        bound = Some(last.clone());
                    }
                }
            }
            all.extend(ids.into_iter().map(|id| (p as u32, id)));
        }
        all.sort_by(|a, b| a.1.cmp(&b.1));
        if let Some(bound) = &bound {
            all.retain(|(_, id)| id <= bound);
        }
        Ok((all, bound))
    }

    /// A flow's record, nodes with their states, and edges.
    async fn flow_parts(
        &self,
        id: FlowId,
    ) -> Result<(FlowRecord, Vec<NodeView>, Vec<FlowEdge>), EngineError> {
        let keys = self.keys();
        let p = keys.flow_partition(id);
        let not_found = || EngineError::NotFound {
            entity: "flow",
            id: id.to_string(),
        };
        let mut pipe = redis::pipe();
        pipe.cmd("HGET").arg(keys.flow(p, id)).arg("rec");
        pipe.cmd("HVALS").arg(keys.nodes(p, id));
        pipe.cmd("HVALS").arg(keys.edges_out(p, id));
        let (record, nodes, lists): (Option<String>, Vec<String>, Vec<String>) =
            self.query_pipe(&pipe).await?;
        let record: FlowRecord =
            serde_json::from_str(&record.ok_or_else(not_found)?).map_err(EngineError::backend)?;
        let mut nodes = nodes
            .iter()
            .map(|t| serde_json::from_str::<StoredNode>(t))
            .collect::<Result<Vec<_>, _>>()
            .map_err(EngineError::backend)?;
        nodes.sort_by_key(|n| n.position);
        let mut edges: Vec<StoredEdge> = Vec::new();
        for list in lists {
            edges.extend(
                serde_json::from_str::<Vec<StoredEdge>>(&list).map_err(EngineError::backend)?,
            );
        }
        edges.sort_by_key(|e| e.position);
        let mut pipe = redis::pipe();
        for node in &nodes {
            pipe.cmd("HGET")
                .arg(keys.exec(p, node.node.execution_id))
                .arg("state");
        }
        let states: Vec<Option<String>> = if nodes.is_empty() {
            Vec::new()
        } else {
            self.query_pipe(&pipe).await?
        };
        let views = nodes
            .into_iter()
            .zip(states)
            .map(|(n, state)| {
                let state: State = serde_json::from_str(state.as_deref().unwrap_or("null"))
                    .map_err(|_| EngineError::backend("a flow member has no state"))?;
                Ok(NodeView {
                    key: n.node.key,
                    execution_id: n.node.execution_id,
                    state,
                    join: n.node.join,
                })
            })
            .collect::<Result<Vec<_>, EngineError>>()?;
        Ok((record, views, edges.into_iter().map(|e| e.edge).collect()))
    }
}
