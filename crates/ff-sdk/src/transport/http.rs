//! The HTTP transport: the API under `/v1/namespaces/{namespace}/`, its
//! JSON errors ([`WireError`]) mapped back, by their structured fields, to
//! the same [`EngineError`] kinds the embedded transport returns.

use std::time::Duration;

use async_trait::async_trait;
use ff_core::cascade::{FlowCancelResponse, NodesAdded};
use ff_core::explain::Explanation;
use ff_core::flow::{EdgeSpec, FlowCreated, FlowFilter, FlowSpec, FlowSummary, FlowView, NodeSpec};
use ff_core::flow_control::{BudgetStatus, Policy, PolicySpec, UsageReport};
use ff_core::suspension::{
    SignalRequest, SignalResponse, SuspendRequest, SuspendResponse, WaitpointGrant,
    WaitpointRequest,
};
use ff_core::{
    CancelResponse, ClaimRequest, Claimed, CompleteResponse, EngineError, Execution, ExecutionId,
    FailResponse, Failure, FlowId, JsonText, LaneStateCount, LeaseHandle, ListFilter, Page,
    Renewed, SubmitRequest, Submitted, WireError,
};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;

use super::sse::SseParser;
use super::{CompletionWatch, Transport};
use crate::error::HttpError;

/// How long an ordinary request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub(crate) struct Http {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Http {
    pub(crate) fn new(base_url: &str, token: Option<String>) -> Result<Self, EngineError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(EngineError::backend)?;
        Ok(Self {
            base: base_url.trim_end_matches('/').to_owned(),
            token: token.filter(|t| !t.is_empty()),
            http,
        })
    }

    fn url(&self, ns: &str, path: &str) -> String {
        // Namespaces may contain `/`; it must stay inside one path segment.
        format!(
            "{}/v1/namespaces/{}{path}",
            self.base,
            ns.replace('/', "%2F")
        )
    }

    fn request(&self, method: Method, url: String) -> RequestBuilder {
        let req = self.http.request(method, url).timeout(REQUEST_TIMEOUT);
        match &self.token {
            Some(token) => req.bearer_auth(token),
            None => req,
        }
    }

    /// Sends and checks the status; an error answer becomes its `EngineError`.
    async fn send(&self, req: RequestBuilder) -> Result<Response, EngineError> {
        let resp = req.send().await.map_err(|e| self.transport_error(e))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        Err(map_error(status, &text))
    }

    async fn call<T: DeserializeOwned>(&self, req: RequestBuilder) -> Result<T, EngineError> {
        let resp = self.send(req).await?;
        let bytes = resp.bytes().await.map_err(|e| self.transport_error(e))?;
        // Straight from the bytes: `JsonText` keeps raw JSON, which only a
        // direct deserializer can hand over.
        serde_json::from_slice(&bytes)
            .map_err(|e| EngineError::backend(format!("unexpected answer from {}: {e}", self.base)))
    }

    async fn get<T: DeserializeOwned>(&self, ns: &str, path: &str) -> Result<T, EngineError> {
        self.call(self.request(Method::GET, self.url(ns, path)))
            .await
    }

    async fn post<T: DeserializeOwned>(
        &self,
        ns: &str,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, EngineError> {
        self.call(self.request(Method::POST, self.url(ns, path)).json(body))
            .await
    }

    /// A POST answered by 204.
    async fn post_empty(
        &self,
        ns: &str,
        path: &str,
        body: &impl Serialize,
    ) -> Result<(), EngineError> {
        self.send(self.request(Method::POST, self.url(ns, path)).json(body))
            .await
            .map(drop)
    }

    /// A request that never reached an answer: the server is unreachable
    /// (retryable), or something else went wrong.
    fn transport_error(&self, err: reqwest::Error) -> EngineError {
        // The URL may hold a waitpoint token, which no message may carry.
        let err = err.without_url();
        if err.is_connect() || err.is_timeout() || err.is_request() {
            EngineError::Unavailable {
                message: format!("cannot reach {}: {}", self.base, error_chain(&err)),
            }
        } else {
            EngineError::backend(err)
        }
    }
}

/// An error and its sources on one line (reqwest's own message is terse).
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Maps an HTTP error answer back to the kind the server mapped it from,
/// by its code and structured fields; an answer that is not the server's
/// JSON error (a proxy's page, say) is judged by its status alone.
pub(crate) fn map_error(status: StatusCode, text: &str) -> EngineError {
    let wire: WireError = serde_json::from_str(text)
        .unwrap_or_else(|_| WireError::new("", text.chars().take(512).collect::<String>()));
    if let Some(err) = wire.engine_error() {
        return err;
    }
    match status {
        StatusCode::SERVICE_UNAVAILABLE => EngineError::Unavailable {
            message: wire.message,
        },
        StatusCode::NOT_FOUND if wire.code.is_empty() => EngineError::NotFound {
            entity: "resource",
            id: String::new(),
        },
        _ => EngineError::backend(HttpError {
            status: status.as_u16(),
            code: if wire.code.is_empty() {
                "http".to_owned()
            } else {
                wire.code
            },
            message: wire.message,
        }),
    }
}

#[derive(Serialize)]
struct ClaimBody<'a> {
    lanes: &'a [String],
    capabilities: &'a [String],
    n: u32,
    worker_id: &'a str,
    wait_ms: u64,
}

#[async_trait]
impl Transport for Http {
    async fn submit(&self, ns: &str, req: SubmitRequest) -> Result<Submitted, EngineError> {
        self.post(ns, "/executions", &req).await
    }

    async fn submit_batch(
        &self,
        ns: &str,
        reqs: Vec<SubmitRequest>,
    ) -> Result<Vec<Submitted>, EngineError> {
        self.post(ns, "/executions/batch", &json!({ "requests": reqs }))
            .await
    }

    async fn create_flow(&self, ns: &str, spec: FlowSpec) -> Result<FlowCreated, EngineError> {
        self.post(ns, "/flows", &spec).await
    }

    async fn get_execution(&self, ns: &str, id: ExecutionId) -> Result<Execution, EngineError> {
        self.get(ns, &format!("/executions/{id}")).await
    }

    async fn list_executions(&self, filter: &ListFilter) -> Result<Page<Execution>, EngineError> {
        let mut query: Vec<(&str, String)> = vec![("limit", filter.limit.to_string())];
        if let Some(state) = filter.state {
            query.push(("state", state.to_string()));
        }
        if let Some(lane) = &filter.lane {
            query.push(("lane", lane.clone()));
        }
        if let Some(kind) = &filter.kind {
            query.push(("kind", kind.clone()));
        }
        if let Some((key, value)) = &filter.tag {
            query.push(("tag", format!("{key}:{value}")));
        }
        if let Some(cursor) = &filter.cursor {
            query.push(("cursor", cursor.clone()));
        }
        let url = self.url(&filter.namespace, "/executions");
        self.call(self.request(Method::GET, url).query(&query))
            .await
    }

    async fn get_flow(&self, ns: &str, id: FlowId) -> Result<FlowView, EngineError> {
        self.get(ns, &format!("/flows/{id}")).await
    }

    async fn list_flows(&self, filter: &FlowFilter) -> Result<Page<FlowSummary>, EngineError> {
        let mut query: Vec<(&str, String)> = vec![("limit", filter.limit.to_string())];
        if let Some(state) = filter.state {
            query.push(("state", state.as_str().to_owned()));
        }
        if let Some(cursor) = &filter.cursor {
            query.push(("cursor", cursor.clone()));
        }
        let url = self.url(&filter.namespace, "/flows");
        self.call(self.request(Method::GET, url).query(&query))
            .await
    }

    async fn counts(&self, ns: &str) -> Result<Vec<LaneStateCount>, EngineError> {
        self.get(ns, "/counts").await
    }

    async fn why(&self, ns: &str, id: ExecutionId) -> Result<Explanation, EngineError> {
        self.get(ns, &format!("/executions/{id}/why")).await
    }

    async fn cancel(&self, ns: &str, id: ExecutionId) -> Result<CancelResponse, EngineError> {
        self.post(ns, &format!("/executions/{id}/cancel"), &json!({}))
            .await
    }

    async fn cancel_flow(&self, ns: &str, id: FlowId) -> Result<FlowCancelResponse, EngineError> {
        self.post(ns, &format!("/flows/{id}/cancel"), &json!({}))
            .await
    }

    async fn requeue(&self, ns: &str, id: ExecutionId) -> Result<(), EngineError> {
        self.post_empty(ns, &format!("/executions/{id}/requeue"), &json!({}))
            .await
    }

    async fn watch(
        &self,
        ns: &str,
        id: ExecutionId,
    ) -> Result<Box<dyn CompletionWatch>, EngineError> {
        // No overall timeout: the stream stays open until the execution
        // ends; the waiter bounds how long it listens.
        let mut req = self
            .http
            .get(self.url(ns, &format!("/executions/{id}/events")))
            .header("accept", "text/event-stream");
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        let resp = self.send(req).await?;
        Ok(Box::new(SseWatch {
            resp: Some(resp),
            parser: SseParser::default(),
        }))
    }

    async fn claim(&self, req: &ClaimRequest, wait: Duration) -> Result<Vec<Claimed>, EngineError> {
        let body = ClaimBody {
            lanes: &req.lanes,
            capabilities: &req.capabilities,
            n: req.n,
            worker_id: &req.worker_id,
            wait_ms: wait.as_millis() as u64,
        };
        let request = self
            .request(Method::POST, self.url(&req.namespace, "/claims"))
            .timeout(wait + REQUEST_TIMEOUT)
            .json(&body);
        let resp = self.send(request).await?;
        if resp.status() == StatusCode::NO_CONTENT {
            return Ok(Vec::new());
        }
        let bytes = resp.bytes().await.map_err(|e| self.transport_error(e))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| EngineError::backend(format!("unexpected claim answer: {e}")))
    }

    async fn renew(&self, ns: &str, handle: &LeaseHandle) -> Result<Renewed, EngineError> {
        self.post(ns, "/leases/renew", &json!({ "handle": handle }))
            .await
    }

    async fn release(&self, ns: &str, handle: &LeaseHandle) -> Result<(), EngineError> {
        self.post_empty(ns, "/leases/release", &json!({ "handle": handle }))
            .await
    }

    async fn complete(
        &self,
        ns: &str,
        handle: &LeaseHandle,
        result: JsonText,
    ) -> Result<CompleteResponse, EngineError> {
        self.post(
            ns,
            "/leases/complete",
            &json!({ "handle": handle, "result": result }),
        )
        .await
    }

    async fn fail(
        &self,
        ns: &str,
        handle: &LeaseHandle,
        failure: Failure,
    ) -> Result<FailResponse, EngineError> {
        self.post(
            ns,
            "/leases/fail",
            &json!({ "handle": handle, "error": failure.error, "retryable": failure.retryable }),
        )
        .await
    }

    async fn add_nodes(
        &self,
        ns: &str,
        handle: &LeaseHandle,
        nodes: Vec<NodeSpec>,
        edges: Vec<EdgeSpec>,
    ) -> Result<NodesAdded, EngineError> {
        self.post(
            ns,
            "/leases/add-nodes",
            &json!({ "handle": handle, "nodes": nodes, "edges": edges }),
        )
        .await
    }

    async fn create_waitpoint(
        &self,
        ns: &str,
        handle: &LeaseHandle,
        req: &WaitpointRequest,
    ) -> Result<WaitpointGrant, EngineError> {
        self.post(
            ns,
            "/leases/waitpoint",
            &json!({ "handle": handle, "key": req.key, "ttl_ms": req.ttl_ms }),
        )
        .await
    }

    async fn suspend(
        &self,
        ns: &str,
        handle: &LeaseHandle,
        req: &SuspendRequest,
    ) -> Result<SuspendResponse, EngineError> {
        let mut body = serde_json::to_value(req).map_err(EngineError::backend)?;
        body["handle"] = serde_json::to_value(handle).map_err(EngineError::backend)?;
        self.post(ns, "/leases/suspend", &body).await
    }

    async fn signal_by_token(
        &self,
        token: &str,
        req: &SignalRequest,
    ) -> Result<SignalResponse, EngineError> {
        // A token is base64url with one `.`: safe in a path segment as is;
        // anything else would change the URL, so it goes no further.
        let url_safe = !token.is_empty()
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !url_safe {
            return Err(EngineError::invalid("token", "is not a waitpoint token"));
        }
        let url = format!("{}/v1/signals/{token}", self.base);
        self.call(self.http.post(url).timeout(REQUEST_TIMEOUT).json(req))
            .await
    }

    async fn signal(
        &self,
        ns: &str,
        id: ExecutionId,
        waitpoint: &str,
        req: &SignalRequest,
    ) -> Result<SignalResponse, EngineError> {
        self.post(
            ns,
            &format!(
                "/executions/{id}/waitpoints/{}/signals",
                waitpoint.replace('/', "%2F")
            ),
            req,
        )
        .await
    }

    async fn policies(&self, ns: &str) -> Result<Vec<Policy>, EngineError> {
        self.get(ns, "/policies").await
    }

    async fn put_policy(
        &self,
        ns: &str,
        name: &str,
        spec: &PolicySpec,
    ) -> Result<Policy, EngineError> {
        let url = self.url(ns, &format!("/policies/{}", segment(name)));
        self.call(self.request(Method::PUT, url).json(spec)).await
    }

    async fn delete_policy(&self, ns: &str, name: &str) -> Result<(), EngineError> {
        let url = self.url(ns, &format!("/policies/{}", segment(name)));
        self.send(self.request(Method::DELETE, url)).await.map(drop)
    }

    async fn budget(&self, ns: &str, name: &str) -> Result<BudgetStatus, EngineError> {
        self.get(ns, &format!("/budgets/{}", segment(name))).await
    }

    async fn report_usage(
        &self,
        ns: &str,
        handle: &LeaseHandle,
        report: &UsageReport,
    ) -> Result<Vec<BudgetStatus>, EngineError> {
        let mut body = serde_json::to_value(report).map_err(EngineError::backend)?;
        body["handle"] = serde_json::to_value(handle).map_err(EngineError::backend)?;
        self.post(ns, "/leases/usage", &body).await
    }

    async fn shutdown(&self) {}
}

/// A name as one path segment (names may hold `/`).
fn segment(name: &str) -> String {
    name.replace('%', "%25").replace('/', "%2F")
}

/// Wakes on the `completion` event of the per-execution SSE stream.
struct SseWatch {
    /// `None` once the stream ended.
    resp: Option<Response>,
    parser: SseParser,
}

#[async_trait]
impl CompletionWatch for SseWatch {
    async fn next(&mut self) -> bool {
        while let Some(resp) = self.resp.as_mut() {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if self
                        .parser
                        .feed(&chunk)
                        .iter()
                        .any(|event| event.name == "completion")
                    {
                        return true;
                    }
                }
                Ok(None) | Err(_) => self.resp = None,
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ff_core::{ErrorKind, Outcome};

    fn mapped(status: u16, body: serde_json::Value) -> EngineError {
        map_error(
            StatusCode::from_u16(status).expect("status"),
            &body.to_string(),
        )
    }

    #[test]
    fn maps_every_code_back_to_its_kind() {
        let err = mapped(
            404,
            json!({"code": "not_found", "message": "execution 0190 not found",
                   "entity": "execution", "id": "0190"}),
        );
        assert!(
            matches!(&err, EngineError::NotFound { entity: "execution", id } if id == "0190"),
            "{err:?}"
        );
        let err = mapped(
            422,
            json!({"code": "invalid", "message": "must not be empty", "field": "lane"}),
        );
        assert!(
            matches!(&err, EngineError::Invalid { field, message } if field == "lane" && message == "must not be empty"),
            "{err:?}"
        );
        assert_eq!(
            mapped(409, json!({"code": "lease_lost", "message": "x"})).kind(),
            ErrorKind::LeaseLost
        );
        let err = mapped(
            409,
            json!({"code": "not_active", "message": "it was cancelled", "outcome": "cancelled"}),
        );
        assert!(matches!(
            err,
            EngineError::NotActive {
                outcome: Outcome::Cancelled
            }
        ));
        let err = mapped(409, json!({"code": "conflict", "message": "busy"}));
        assert!(matches!(&err, EngineError::Conflict { message } if message == "busy"));
        assert_eq!(
            mapped(503, json!({"code": "unavailable", "message": "down"})).kind(),
            ErrorKind::Unavailable
        );
        assert_eq!(
            map_error(StatusCode::SERVICE_UNAVAILABLE, "<html>").kind(),
            ErrorKind::Unavailable
        );
        let err = mapped(
            401,
            json!({"code": "unauthorized", "message": "a valid bearer token is required"}),
        );
        assert_eq!(err.kind(), ErrorKind::Backend);
        assert!(err.to_string().contains("401 unauthorized"), "{err}");
    }

    /// The SDK reads the code and fields, never the wording: every answer
    /// the server gives maps to the same error with its message reworded.
    #[test]
    fn a_reworded_message_maps_to_the_same_error() {
        let errors = || {
            [
                EngineError::execution_not_found("0190"),
                EngineError::invalid("lane", "must not be empty"),
                EngineError::LeaseLost,
                EngineError::NotActive {
                    outcome: Outcome::Failed,
                },
                EngineError::conflict("busy"),
                EngineError::Unavailable {
                    message: "down".to_owned(),
                },
            ]
        };
        for (sent, expected) in errors().into_iter().zip(errors()) {
            let mut wire = WireError::from_engine(&sent);
            let status = if wire.code == "invalid" { 422 } else { 409 };
            wire.message = format!("something else entirely ({})", wire.message);
            let back = mapped(status, serde_json::to_value(&wire).unwrap_or_default());
            assert_eq!(back.kind(), expected.kind(), "{back:?}");
            match (&back, &expected) {
                (
                    EngineError::NotFound { entity, id },
                    EngineError::NotFound { entity: e, id: i },
                ) => {
                    assert_eq!((entity, id), (e, i));
                }
                (EngineError::NotActive { outcome }, EngineError::NotActive { outcome: o }) => {
                    assert_eq!(outcome, o);
                }
                (EngineError::Invalid { field, .. }, EngineError::Invalid { field: f, .. }) => {
                    assert_eq!(field, f);
                }
                _ => {}
            }
        }
    }
}
