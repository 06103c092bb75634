//! Reading ahead for a cascade: what `ff_core::cascade::cascade` will ask
//! for, fetched in a few pipelined rounds (the entry, the flow and the
//! completed node's edges; the children's nodes and incoming edges; the
//! executions and the other parents' nodes; those parents' executions)
//! instead of one round trip per read. Anything it misses is read on
//! demand as before, so the read-ahead changes how fast, never what.

use std::collections::{BTreeSet, HashMap};

use ff_core::{CompletionPayload, EngineError, ExecutionId, FlowId};

use super::{flow_read, FlowRead, FlowTxn, StoredEdge, StoredNode};

impl FlowTxn {
    /// Fetches what a cascade of `payload` will read.
    pub(crate) fn prefetch_cascade(
        &mut self,
        payload: &CompletionPayload,
    ) -> Result<(), EngineError> {
        let (Some(flow), Some(node_key)) = (payload.flow_id, payload.node_key.as_deref()) else {
            return Ok(());
        };
        if payload.partition != self.p || self.keys().flow_partition(flow) != self.p {
            return Ok(());
        }
        let keys = self.keys().clone();
        let p = self.p;

        let mut pipe = redis::pipe();
        pipe.cmd("ZSCORE")
            .arg(keys.outbox_undispatched(p))
            .arg(payload.seq);
        pipe.add_command(flow_read(&keys, p, flow));
        pipe.cmd("HGET").arg(keys.edges_out(p, flow)).arg(node_key);
        let (score, read, out): (Option<f64>, FlowRead, Option<String>) = self.read_pipe(&pipe)?;
        self.undispatched.insert(payload.seq, score.is_some());
        if score.is_none() {
            // A duplicate: the cascade stops at the entry.
            return Ok(());
        }
        self.keep_flow(flow, read)?;
        let out = self.keep_edges(flow, node_key, true, out)?;
        let children: BTreeSet<String> = out.into_iter().map(|e| e.edge.to).collect();
        if children.is_empty() {
            return Ok(());
        }

        let mut pipe = redis::pipe();
        for child in &children {
            pipe.cmd("HGET").arg(keys.nodes(p, flow)).arg(child);
            pipe.cmd("HGET").arg(keys.edges_in(p, flow)).arg(child);
        }
        let answers: Vec<Option<String>> = self.read_pipe(&pipe)?;
        let mut wanted: Vec<ExecutionId> = vec![payload.execution_id];
        let mut parents: BTreeSet<String> = BTreeSet::new();
        for (child, pair) in children.iter().zip(answers.chunks(2)) {
            let [node, incoming] = pair else { continue };
            if let Some(node) = self.keep_node(flow, child, node.clone())? {
                wanted.push(node);
            }
            for edge in self.keep_edges(flow, child, false, incoming.clone())? {
                parents.insert(edge.edge.from);
            }
        }
        parents.remove(node_key);
        parents.retain(|k| !self.nodes.contains_key(&(flow, k.clone())));

        let mut later = self.fetch_round(flow, &wanted, &parents)?;
        later.retain(|id| !self.execs.contains_key(id));
        self.fetch_round(flow, &later, &BTreeSet::new())?;
        Ok(())
    }

    /// One round: the executions `ids` and the nodes `node_keys`; answers
    /// the execution ids of those nodes.
    fn fetch_round(
        &mut self,
        flow: FlowId,
        ids: &[ExecutionId],
        node_keys: &BTreeSet<String>,
    ) -> Result<Vec<ExecutionId>, EngineError> {
        let ids: Vec<ExecutionId> = ids
            .iter()
            .copied()
            .filter(|id| !self.execs.contains_key(id) && self.keys().exec_partition(*id) == self.p)
            .collect();
        if ids.is_empty() && node_keys.is_empty() {
            return Ok(Vec::new());
        }
        let keys = self.keys().clone();
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.cmd("HGETALL").arg(keys.exec(self.p, *id));
        }
        for key in node_keys {
            pipe.cmd("HGET").arg(keys.nodes(self.p, flow)).arg(key);
        }
        let answers: Vec<redis::Value> = self.read_pipe(&pipe)?;
        let mut answers = answers.into_iter();
        for id in ids {
            let fields: HashMap<String, String> = match answers.next() {
                Some(value) => {
                    redis::FromRedisValue::from_redis_value(&value).map_err(EngineError::backend)?
                }
                None => break,
            };
            self.keep_execution(id, fields)?;
        }
        let mut found = Vec::new();
        for key in node_keys {
            let node: Option<String> = match answers.next() {
                Some(value) => {
                    redis::FromRedisValue::from_redis_value(&value).map_err(EngineError::backend)?
                }
                None => break,
            };
            found.extend(self.keep_node(flow, key, node)?);
        }
        Ok(found)
    }

    /// Caches a node as `HGET` answered it; its execution id.
    fn keep_node(
        &mut self,
        flow: FlowId,
        key: &str,
        text: Option<String>,
    ) -> Result<Option<ExecutionId>, EngineError> {
        let node = text
            .map(|t| serde_json::from_str::<StoredNode>(&t))
            .transpose()
            .map_err(EngineError::backend)?;
        let id = node.as_ref().map(|n| n.node.execution_id);
        self.nodes.insert((flow, key.to_owned()), node);
        Ok(id)
    }

    /// Caches a node's outgoing (`out`) or incoming edge list as `HGET`
    /// answered it; the list.
    pub(super) fn keep_edges(
        &mut self,
        flow: FlowId,
        key: &str,
        out: bool,
        text: Option<String>,
    ) -> Result<Vec<StoredEdge>, EngineError> {
        let list: Vec<StoredEdge> = match text {
            Some(t) => serde_json::from_str(&t).map_err(EngineError::backend)?,
            None => Vec::new(),
        };
        let cache = if out {
            &mut self.edges_out
        } else {
            &mut self.edges_in
        };
        cache.insert((flow, key.to_owned()), list.clone());
        Ok(list)
    }

    fn read_pipe<T: redis::FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
    ) -> Result<T, EngineError> {
        self.rt.block_on(self.backend.query_pipe(pipe))
    }
}
