//! Read models: list filters, cursors and counts, and what a backend
//! says it runs on.

use serde::{Deserialize, Serialize};

use crate::error::EngineError;
use crate::execution::{Execution, DEFAULT_NAMESPACE};
use crate::ids::ExecutionId;
use crate::limits::Limits;
use crate::state::State;

/// What a backend runs on, as [`crate::ReadOps::describe`] answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendDescription {
    /// `sqlite`, `postgres`, `valkey`, ...
    pub name: String,
    /// The server's or the linked library's version, e.g. `3.46.0`,
    /// `17.2` or `valkey 8.0.1`.
    pub version: String,
    /// The durability writes are committed with, in the backend's own
    /// terms, e.g. `full` or `appendonly=yes appendfsync=everysec`.
    pub durability: String,
}

/// The page size when a list names none.
pub const DEFAULT_PAGE_SIZE: u32 = 100;

/// Which executions to list: all filters must match. Results are ordered by
/// id (creation order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ListFilter {
    pub namespace: String,
    pub state: Option<State>,
    pub lane: Option<String>,
    pub kind: Option<String>,
    /// `(key, value)`: the tag must be present with this value.
    pub tag: Option<(String, String)>,
    pub limit: u32,
    /// From a previous page's `next_cursor`.
    pub cursor: Option<String>,
}

impl Default for ListFilter {
    fn default() -> Self {
        Self {
            namespace: DEFAULT_NAMESPACE.to_owned(),
            state: None,
            lane: None,
            kind: None,
            tag: None,
            limit: DEFAULT_PAGE_SIZE,
            cursor: None,
        }
    }
}

impl ListFilter {
    /// Checks the filter; returns the id after which the page starts.
    pub fn validate(&self, limits: &Limits) -> Result<Option<ExecutionId>, EngineError> {
        limits.check_name("namespace", &self.namespace)?;
        if let Some(lane) = &self.lane {
            limits.check_name("lane", lane)?;
        }
        if let Some(kind) = &self.kind {
            limits.check_name("kind", kind)?;
        }
        check_page_limit(self.limit, limits)?;
        self.cursor
            .as_deref()
            .map(|c| decode_cursor(c).map(ExecutionId::from_uuid))
            .transpose()
    }

    /// Whether `exec` passes every filter but the cursor.
    pub fn matches(&self, exec: &Execution) -> bool {
        exec.namespace == self.namespace
            && self.state.is_none_or(|s| exec.state == s)
            && self.lane.as_ref().is_none_or(|l| &exec.lane == l)
            && self.kind.as_ref().is_none_or(|k| &exec.kind == k)
            && self
                .tag
                .as_ref()
                .is_none_or(|(k, v)| exec.tags.get(k) == Some(v))
    }
}

/// A page size between 1 and the batch limit.
pub(crate) fn check_page_limit(limit: u32, limits: &Limits) -> Result<(), EngineError> {
    if limit == 0 || limit as usize > limits.max_batch {
        return Err(EngineError::invalid(
            "limit",
            format!("must be between 1 and {}", limits.max_batch),
        ));
    }
    Ok(())
}

/// An opaque cursor naming the last id of a page.
pub fn encode_cursor(last: &uuid::Uuid) -> String {
    format!("x{}", last.simple())
}

pub(crate) fn decode_cursor(cursor: &str) -> Result<uuid::Uuid, EngineError> {
    cursor
        .strip_prefix('x')
        .and_then(|hex| uuid::Uuid::try_parse(hex).ok())
        .ok_or_else(|| EngineError::invalid("cursor", "not a cursor returned by a list"))
}

/// Items a page can hold: each names the id its cursor continues after.
pub trait Paged {
    fn cursor_id(&self) -> &uuid::Uuid;
}

impl Paged for Execution {
    fn cursor_id(&self) -> &uuid::Uuid {
        self.id.as_uuid()
    }
}

impl Paged for crate::flow::FlowSummary {
    fn cursor_id(&self) -> &uuid::Uuid {
        self.id.as_uuid()
    }
}

/// One page of a list.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Present when more items may follow.
    pub next_cursor: Option<String>,
}

impl<T: Paged> Page<T> {
    /// Builds a page from up to `limit + 1` items in id order.
    pub fn from_overfetch(mut items: Vec<T>, limit: u32) -> Self {
        let more = items.len() > limit as usize;
        items.truncate(limit as usize);
        let next_cursor = more
            .then(|| items.last().map(|e| encode_cursor(e.cursor_id())))
            .flatten();
        Self { items, next_cursor }
    }
}

/// How many executions of one lane are in one state.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LaneStateCount {
    pub lane: String,
    pub state: State,
    pub count: u64,
}
