//! [`FlowTxn`]: `ff_core::cascade::FlowStore` over one partition. Reads go
//! to the server as the algorithm asks (it runs on a blocking thread);
//! writes are buffered and become one [`Plan`], so the whole algorithm
//! commits as one `ff_v2_apply`, checked against the version of every flow
//! it read and every execution it writes.
//!
//! A cascade does not check the executions it only reads: it reads parents
//! that are terminal (and stay so) or that it then writes itself, and it
//! runs after its parent's completion committed, so two cascades into one
//! child cannot both miss the other's parent. Other steps, which run at any
//! time (adding nodes reads the adder and the parents of new edges), check
//! everything they read ([`FlowTxn::check_reads`]).

use std::collections::{HashMap, HashSet};

use redis::{Cmd, FromRedisValue};
use serde::{Deserialize, Serialize};
use tokio::runtime::Handle;

use ff_core::cascade::FlowStore;
use ff_core::flow::{FlowEdge, FlowNode, FlowRecord};
use ff_core::{EngineError, Execution, ExecutionId, FlowId, Millis, State};

use crate::keys::Keys;
use crate::rows::{self, Stored};
use crate::write::Plan;
use crate::ValkeyBackend;

mod prefetch;

/// A node as stored: with its position, which orders a flow's nodes.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct StoredNode {
    pub(crate) position: u64,
    #[serde(flatten)]
    pub(crate) node: FlowNode,
}

/// An edge as stored, in its source's and its target's lists.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredEdge {
    pub(crate) position: u64,
    #[serde(flatten)]
    pub(crate) edge: FlowEdge,
}

/// A flow's `rec`, `_v`, `nodes` and `edges`, as [`flow_read`] answers.
type FlowRead = (Option<String>, Option<u64>, Option<u64>, Option<u64>);

/// The read of a flow's hash [`FlowTxn::keep_flow`] takes.
fn flow_read(keys: &Keys, p: u32, id: FlowId) -> redis::Cmd {
    let mut cmd = redis::cmd("HMGET");
    cmd.arg(keys.flow(p, id))
        .arg(&["rec", "_v", "nodes", "edges"]);
    cmd
}

#[derive(Debug)]
struct FlowEntry {
    /// Version read (0: the flow is new in this step).
    version: u64,
    record: Option<FlowRecord>,
    nodes: u64,
    edges: u64,
    changed: bool,
    new: bool,
}

#[derive(Debug)]
struct ExecEntry {
    read: Option<Stored>,
    current: Option<Execution>,
    changed: bool,
}

/// One flow step's reads and buffered writes, in partition `p`.
#[derive(Debug)]
pub(crate) struct FlowTxn {
    rt: Handle,
    backend: ValkeyBackend,
    p: u32,
    now: Millis,
    execs: HashMap<ExecutionId, ExecEntry>,
    exec_order: Vec<ExecutionId>,
    flows: HashMap<FlowId, FlowEntry>,
    nodes: HashMap<(FlowId, String), Option<StoredNode>>,
    all_nodes: HashSet<FlowId>,
    new_nodes: Vec<(FlowId, String)>,
    edges_out: HashMap<(FlowId, String), Vec<StoredEdge>>,
    edges_in: HashMap<(FlowId, String), Vec<StoredEdge>>,
    all_edges: HashMap<FlowId, Vec<StoredEdge>>,
    changed_lists: Vec<(FlowId, String, bool)>,
    flow_keys: Vec<(String, String, FlowId)>,
    dispatched: Vec<u64>,
    /// Whether executions only read are checked too.
    check_reads: bool,
    /// Outbox entries already looked up: whether each was undispatched.
    undispatched: HashMap<u64, bool>,
}

impl FlowTxn {
    pub(crate) fn new(rt: Handle, backend: ValkeyBackend, p: u32, now: Millis) -> Self {
        Self {
            rt,
            backend,
            p,
            now,
            execs: HashMap::new(),
            exec_order: Vec::new(),
            flows: HashMap::new(),
            nodes: HashMap::new(),
            all_nodes: HashSet::new(),
            new_nodes: Vec::new(),
            edges_out: HashMap::new(),
            edges_in: HashMap::new(),
            all_edges: HashMap::new(),
            changed_lists: Vec::new(),
            flow_keys: Vec::new(),
            dispatched: Vec::new(),
            check_reads: false,
            undispatched: HashMap::new(),
        }
    }

    /// Makes the commit check the version of every execution read, not only
    /// of those written.
    pub(crate) fn check_reads(&mut self) {
        self.check_reads = true;
    }

    fn keys(&self) -> &Keys {
        self.backend.keys()
    }

    fn read<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, EngineError> {
        self.rt.block_on(self.backend.inner.conn.query(cmd))
    }

    fn in_partition(&self, id: &uuid::Uuid, what: &str) -> Result<(), EngineError> {
        if self.keys().partition_of(id) == self.p {
            Ok(())
        } else {
            Err(EngineError::backend(format!(
                "{what} {id} is not in the flow's partition {}",
                self.p
            )))
        }
    }

    fn flow_entry(&mut self, id: FlowId) -> Result<&mut FlowEntry, EngineError> {
        if !self.flows.contains_key(&id) {
            self.in_partition(id.as_uuid(), "flow")?;
            let read: FlowRead = self.read(&flow_read(self.keys(), self.p, id))?;
            self.keep_flow(id, read)?;
        }
        self.flows
            .get_mut(&id)
            .ok_or_else(|| EngineError::backend("flow entry vanished"))
    }

    /// Caches a flow as [`flow_read`] answered it.
    fn keep_flow(
        &mut self,
        id: FlowId,
        (rec, version, nodes, edges): FlowRead,
    ) -> Result<(), EngineError> {
        let record = rec
            .map(|r| serde_json::from_str(&r))
            .transpose()
            .map_err(EngineError::backend)?;
        self.flows.insert(
            id,
            FlowEntry {
                version: version.unwrap_or(0),
                record,
                nodes: nodes.unwrap_or(0),
                edges: edges.unwrap_or(0),
                changed: false,
                new: false,
            },
        );
        Ok(())
    }

    /// Caches an execution as `HGETALL` answered it.
    fn keep_execution(
        &mut self,
        id: ExecutionId,
        fields: HashMap<String, String>,
    ) -> Result<(), EngineError> {
        let read = rows::decode(fields)?;
        let current = read.as_ref().map(|s| s.exec.clone());
        self.execs.insert(
            id,
            ExecEntry {
                read,
                current,
                changed: false,
            },
        );
        Ok(())
    }

    fn exec_entry(&mut self, id: ExecutionId) -> Result<&mut ExecEntry, EngineError> {
        if !self.execs.contains_key(&id) {
            let fields: HashMap<String, String> = if self.keys().exec_partition(id) == self.p {
                self.read(redis::cmd("HGETALL").arg(self.keys().exec(self.p, id)))?
            } else {
                HashMap::new()
            };
            self.keep_execution(id, fields)?;
        }
        self.execs
            .get_mut(&id)
            .ok_or_else(|| EngineError::backend("execution entry vanished"))
    }

    fn load_edges(&mut self, flow: FlowId) -> Result<&Vec<StoredEdge>, EngineError> {
        if !self.all_edges.contains_key(&flow) {
            let lists: Vec<String> =
                self.read(redis::cmd("HVALS").arg(self.keys().edges_out(self.p, flow)))?;
            let mut edges = Vec::new();
            for list in lists {
                let list: Vec<StoredEdge> =
                    serde_json::from_str(&list).map_err(EngineError::backend)?;
                edges.extend(list);
            }
            edges.sort_by_key(|e| e.position);
            self.all_edges.insert(flow, edges);
        }
        self.all_edges
            .get(&flow)
            .ok_or_else(|| EngineError::backend("edge cache vanished"))
    }

    fn edge_list(
        &mut self,
        flow: FlowId,
        key: &str,
        out: bool,
    ) -> Result<Vec<StoredEdge>, EngineError> {
        let cached = if out { &self.edges_out } else { &self.edges_in };
        if let Some(list) = cached.get(&(flow, key.to_owned())) {
            return Ok(list.clone());
        }
        let hash = if out {
            self.keys().edges_out(self.p, flow)
        } else {
            self.keys().edges_in(self.p, flow)
        };
        let text: Option<String> = self.read(redis::cmd("HGET").arg(hash).arg(key))?;
        self.keep_edges(flow, key, out, text)
    }

    /// The buffered writes as one plan; empty when the step changed nothing
    /// and read no flow.
    pub(crate) fn into_plan(self) -> Result<Plan, EngineError> {
        let keys = self.keys().clone();
        let p = self.p;
        let mut plan = Plan::new(p);
        for seq in &self.dispatched {
            plan.check_undispatched(*seq);
            plan.dispatched(*seq);
        }
        for (id, entry) in &self.flows {
            let key = keys.flow(p, *id);
            plan.check_version(&key, entry.version);
            if !entry.changed && !entry.new {
                continue;
            }
            let mut fields = vec![
                ("nodes".to_owned(), entry.nodes.to_string()),
                ("edges".to_owned(), entry.edges.to_string()),
            ];
            if let Some(record) = &entry.record {
                fields.push((
                    "rec".to_owned(),
                    serde_json::to_string(record).map_err(EngineError::backend)?,
                ));
                if entry.new {
                    plan.zadd(&keys.flows(p, &record.namespace), 0.0, &id.to_string());
                }
            }
            plan.put(&key, entry.version + 1, &fields);
        }
        for (namespace, key, id) in &self.flow_keys {
            let hash = keys.flow_keys(p, namespace);
            plan.check_absent(&hash, key);
            plan.hset(&hash, key, &id.to_string());
        }
        for (flow, key) in &self.new_nodes {
            if let Some(Some(node)) = self.nodes.get(&(*flow, key.clone())) {
                let text = serde_json::to_string(node).map_err(EngineError::backend)?;
                plan.hset(&keys.nodes(p, *flow), key, &text);
            }
        }
        for (flow, key, out) in &self.changed_lists {
            let (hash, list) = if *out {
                (
                    keys.edges_out(p, *flow),
                    self.edges_out.get(&(*flow, key.clone())),
                )
            } else {
                (
                    keys.edges_in(p, *flow),
                    self.edges_in.get(&(*flow, key.clone())),
                )
            };
            let text = serde_json::to_string(&list.cloned().unwrap_or_default())
                .map_err(EngineError::backend)?;
            plan.hset(&hash, key, &text);
        }
        for id in &self.exec_order {
            let Some(entry) = self.execs.get(id) else {
                continue;
            };
            if let (true, Some(exec)) = (entry.changed, &entry.current) {
                plan.save(&keys, entry.read.as_ref(), exec, self.now)?;
            }
        }
        if self.check_reads {
            for (id, entry) in &self.execs {
                if let (false, Some(read)) = (entry.changed, &entry.read) {
                    plan.check_version(&keys.exec(p, *id), read.version);
                }
            }
        }
        Ok(plan)
    }
}

impl FlowStore for FlowTxn {
    fn execution(&mut self, id: ExecutionId) -> Result<Option<Execution>, EngineError> {
        Ok(self.exec_entry(id)?.current.clone())
    }

    fn insert_execution(&mut self, exec: &Execution) -> Result<(), EngineError> {
        self.in_partition(exec.id.as_uuid(), "execution")?;
        if exec.has_flow_control_keys() && self.keys().flow_home(&exec.namespace) != self.p {
            // Limited work lives in its namespace's home partition; a flow
            // is placed there when created with such a node.
            return Err(EngineError::invalid(
                "nodes",
                "on this deployment, a flow gains nodes with flow-control keys only if it \
                 was created with one",
            ));
        }
        self.execs.insert(
            exec.id,
            ExecEntry {
                read: None,
                current: Some(exec.clone()),
                changed: true,
            },
        );
        self.exec_order.push(exec.id);
        Ok(())
    }

    fn save_execution(&mut self, exec: &Execution, _before: State) -> Result<(), EngineError> {
        let entry = self.exec_entry(exec.id)?;
        if entry.read.is_none() && entry.current.is_none() {
            return Err(EngineError::execution_not_found(exec.id));
        }
        entry.current = Some(exec.clone());
        if !entry.changed {
            entry.changed = true;
            self.exec_order.push(exec.id);
        }
        Ok(())
    }

    fn flow(&mut self, id: FlowId) -> Result<Option<FlowRecord>, EngineError> {
        if self.keys().flow_partition(id) != self.p {
            return Ok(None);
        }
        Ok(self.flow_entry(id)?.record.clone())
    }

    fn flow_by_key(&mut self, namespace: &str, key: &str) -> Result<Option<FlowId>, EngineError> {
        let id: Option<String> = self.read(
            redis::cmd("HGET")
                .arg(self.keys().flow_keys(self.p, namespace))
                .arg(key),
        )?;
        id.map(|id| id.parse()).transpose()
    }

    fn insert_flow(&mut self, flow: &FlowRecord) -> Result<(), EngineError> {
        self.in_partition(flow.id.as_uuid(), "flow")?;
        self.flows.insert(
            flow.id,
            FlowEntry {
                version: 0,
                record: Some(flow.clone()),
                nodes: 0,
                edges: 0,
                changed: true,
                new: true,
            },
        );
        if let Some(key) = &flow.idempotency_key {
            self.flow_keys
                .push((flow.namespace.clone(), key.clone(), flow.id));
        }
        Ok(())
    }

    fn update_flow(&mut self, flow: &FlowRecord) -> Result<(), EngineError> {
        let entry = self.flow_entry(flow.id)?;
        entry.record = Some(flow.clone());
        entry.changed = true;
        Ok(())
    }

    fn nodes(&mut self, flow: FlowId) -> Result<Vec<FlowNode>, EngineError> {
        if !self.all_nodes.contains(&flow) {
            let stored: Vec<String> =
                self.read(redis::cmd("HVALS").arg(self.keys().nodes(self.p, flow)))?;
            for text in stored {
                let node: StoredNode = serde_json::from_str(&text).map_err(EngineError::backend)?;
                self.nodes
                    .entry((flow, node.node.key.clone()))
                    .or_insert(Some(node));
            }
            self.all_nodes.insert(flow);
        }
        let mut nodes: Vec<&StoredNode> = self
            .nodes
            .iter()
            .filter(|((f, _), _)| *f == flow)
            .filter_map(|(_, n)| n.as_ref())
            .collect();
        nodes.sort_by_key(|n| n.position);
        Ok(nodes.into_iter().map(|n| n.node.clone()).collect())
    }

    fn node(&mut self, flow: FlowId, key: &str) -> Result<Option<FlowNode>, EngineError> {
        let cache_key = (flow, key.to_owned());
        if !self.nodes.contains_key(&cache_key) {
            let text: Option<String> = self.read(
                redis::cmd("HGET")
                    .arg(self.keys().nodes(self.p, flow))
                    .arg(key),
            )?;
            let node = text
                .map(|t| serde_json::from_str::<StoredNode>(&t))
                .transpose()
                .map_err(EngineError::backend)?;
            self.nodes.insert(cache_key.clone(), node);
        }
        Ok(self
            .nodes
            .get(&cache_key)
            .and_then(|n| n.as_ref())
            .map(|n| n.node.clone()))
    }

    fn insert_node(&mut self, flow: FlowId, node: &FlowNode) -> Result<(), EngineError> {
        let entry = self.flow_entry(flow)?;
        let position = entry.nodes;
        entry.nodes += 1;
        entry.changed = true;
        self.nodes.insert(
            (flow, node.key.clone()),
            Some(StoredNode {
                position,
                node: node.clone(),
            }),
        );
        self.new_nodes.push((flow, node.key.clone()));
        Ok(())
    }

    fn edges(&mut self, flow: FlowId) -> Result<Vec<FlowEdge>, EngineError> {
        Ok(self
            .load_edges(flow)?
            .iter()
            .map(|e| e.edge.clone())
            .collect())
    }

    fn edges_from(&mut self, flow: FlowId, key: &str) -> Result<Vec<FlowEdge>, EngineError> {
        Ok(self
            .edge_list(flow, key, true)?
            .into_iter()
            .map(|e| e.edge)
            .collect())
    }

    fn edges_into(&mut self, flow: FlowId, key: &str) -> Result<Vec<FlowEdge>, EngineError> {
        Ok(self
            .edge_list(flow, key, false)?
            .into_iter()
            .map(|e| e.edge)
            .collect())
    }

    fn insert_edge(&mut self, flow: FlowId, edge: &FlowEdge) -> Result<(), EngineError> {
        let entry = self.flow_entry(flow)?;
        let position = entry.edges;
        entry.edges += 1;
        entry.changed = true;
        let is_new = entry.new;
        let stored = StoredEdge {
            position,
            edge: edge.clone(),
        };
        for (out, key) in [(true, &edge.from), (false, &edge.to)] {
            if !is_new {
                // Load what is stored before appending to it.
                self.edge_list(flow, key, out)?;
            }
            let cache = if out {
                &mut self.edges_out
            } else {
                &mut self.edges_in
            };
            cache
                .entry((flow, key.clone()))
                .or_default()
                .push(stored.clone());
            if !self
                .changed_lists
                .iter()
                .any(|(f, k, o)| *f == flow && k == key && *o == out)
            {
                self.changed_lists.push((flow, key.clone(), out));
            }
        }
        if let Some(all) = self.all_edges.get_mut(&flow) {
            all.push(stored);
        }
        Ok(())
    }

    fn claim_outbox(&mut self, partition: u32, seq: u64) -> Result<bool, EngineError> {
        if partition != self.p {
            return Err(EngineError::backend(format!(
                "outbox entry {partition}/{seq} cascaded in partition {}",
                self.p
            )));
        }
        let undispatched = match self.undispatched.get(&seq) {
            Some(known) => *known,
            None => {
                let score: Option<f64> = self.read(
                    redis::cmd("ZSCORE")
                        .arg(self.keys().outbox_undispatched(self.p))
                        .arg(seq),
                )?;
                score.is_some()
            }
        };
        if !undispatched || self.dispatched.contains(&seq) {
            return Ok(false);
        }
        self.dispatched.push(seq);
        Ok(true)
    }

    fn new_flow_id(&mut self) -> FlowId {
        self.keys().new_flow_id(self.p)
    }

    fn new_execution_id(&mut self) -> ExecutionId {
        self.keys().new_execution_id(self.p)
    }
}
