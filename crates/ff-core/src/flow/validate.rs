//! The flow rules checked before anything is stored: names and limits,
//! unique node keys, edges between known nodes, quorums within their incoming
//! edges, and no cycles (the cycle named).

use std::collections::{BTreeMap, HashMap, HashSet};

use super::spec::{EdgeSpec, FlowSpec, Join, NodeSpec};
use crate::error::EngineError;
use crate::limits::Limits;

impl FlowSpec {
    /// Checks the whole spec: names, executions, edges, joins and cycles.
    pub fn validate(&self, limits: &Limits) -> Result<(), EngineError> {
        limits.check_name("namespace", self.resolved_namespace())?;
        if let Some(key) = &self.idempotency_key {
            if key.is_empty() {
                return Err(EngineError::invalid("idempotency_key", "must not be empty"));
            }
            limits.check_size("idempotency_key", key.len(), limits.max_tag_bytes)?;
        }
        if self.nodes.is_empty() {
            return Err(EngineError::invalid(
                "nodes",
                "a flow needs at least one node",
            ));
        }
        validate_graph(
            self.resolved_namespace(),
            &self.nodes,
            &self.edges,
            &[],
            limits,
        )
    }
}

/// Validates new nodes and edges against the keys a flow already has
/// (`existing`): unique keys, valid executions, edges between known nodes,
/// quorums within their incoming edges. Cycles are checked by the caller
/// over the whole graph with [`find_cycle`].
pub fn validate_graph(
    namespace: &str,
    nodes: &[NodeSpec],
    edges: &[EdgeSpec],
    existing: &[String],
    limits: &Limits,
) -> Result<(), EngineError> {
    if nodes.len() + existing.len() > limits.max_flow_nodes {
        return Err(EngineError::invalid(
            "nodes",
            format!("a flow holds at most {} nodes", limits.max_flow_nodes),
        ));
    }
    let mut keys: HashSet<&str> = existing.iter().map(String::as_str).collect();
    for (i, node) in nodes.iter().enumerate() {
        let field = format!("nodes[{i}]");
        limits
            .check_name("key", &node.key)
            .map_err(|e| e.in_field(&field))?;
        if !keys.insert(&node.key) {
            return Err(EngineError::invalid(
                format!("{field}.key"),
                format!("node key `{}` appears twice", node.key),
            ));
        }
        node.execution
            .validate(limits)
            .map_err(|e| e.in_field(&format!("{field}.execution")))?;
        if node.execution.idempotency_key.is_some() {
            return Err(EngineError::invalid(
                format!("{field}.execution.idempotency_key"),
                "flow nodes are deduplicated by their key; use the flow's idempotency key",
            ));
        }
        if node
            .execution
            .namespace
            .as_deref()
            .is_some_and(|ns| ns != namespace)
        {
            return Err(EngineError::invalid(
                format!("{field}.execution.namespace"),
                "a node runs in its flow's namespace",
            ));
        }
    }
    let mut seen = HashSet::new();
    for (i, edge) in edges.iter().enumerate() {
        for end in [&edge.from, &edge.to] {
            if !keys.contains(end.as_str()) {
                return Err(EngineError::invalid(
                    format!("edges[{i}]"),
                    format!("unknown node `{end}`"),
                ));
            }
        }
        if edge.from == edge.to {
            return Err(EngineError::invalid(
                format!("edges[{i}]"),
                format!("cycle: {} -> {}", edge.from, edge.to),
            ));
        }
        if !seen.insert((&edge.from, &edge.to)) {
            return Err(EngineError::invalid(
                format!("edges[{i}]"),
                format!("edge {} -> {} appears twice", edge.from, edge.to),
            ));
        }
    }
    Ok(())
}

/// Checks each quorum against the node's incoming edge count.
pub fn validate_quorums<'a>(
    nodes: impl IntoIterator<Item = (&'a str, Join)>,
    incoming: &HashMap<&str, usize>,
) -> Result<(), EngineError> {
    for (key, join) in nodes {
        if let Join::Quorum(n) = join {
            let edges = incoming.get(key).copied().unwrap_or(0);
            if n == 0 || n as usize > edges {
                return Err(EngineError::invalid(
                    "join",
                    format!("node `{key}`: quorum({n}) needs 1..={edges} (its incoming edges)"),
                ));
            }
        }
    }
    Ok(())
}

/// Finds a cycle among `edges` (pairs of node keys) and names it as
/// `a -> b -> c -> a`.
pub fn find_cycle<'a>(edges: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<String> {
    let mut out: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (from, to) in edges {
        out.entry(from).or_default().push(to);
        out.entry(to).or_default();
    }
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let mut mark: HashMap<&str, Mark> = out.keys().map(|k| (*k, Mark::New)).collect();
    for start in out.keys().copied() {
        if mark[start] != Mark::New {
            continue;
        }
        // Iterative DFS; `path` holds the open nodes in order.
        let mut stack = vec![(start, 0usize)];
        let mut path = vec![start];
        mark.insert(start, Mark::Open);
        while let Some((node, next)) = stack.last_mut() {
            let children = &out[*node];
            if *next == children.len() {
                mark.insert(node, Mark::Done);
                stack.pop();
                path.pop();
                continue;
            }
            let child = children[*next];
            *next += 1;
            match mark[child] {
                Mark::Open => {
                    let from = path.iter().position(|k| *k == child).unwrap_or(0);
                    let mut cycle: Vec<&str> = path[from..].to_vec();
                    cycle.push(child);
                    return Some(cycle.join(" -> "));
                }
                Mark::New => {
                    mark.insert(child, Mark::Open);
                    stack.push((child, 0));
                    path.push(child);
                }
                Mark::Done => {}
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_and_names_a_cycle() {
        let edges = [("a", "b"), ("b", "c"), ("c", "d"), ("d", "b")];
        assert_eq!(find_cycle(edges).as_deref(), Some("b -> c -> d -> b"));
        assert_eq!(
            find_cycle([("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")]),
            None
        );
    }
}
