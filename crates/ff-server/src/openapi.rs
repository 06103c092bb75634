//! The OpenAPI document: generated from the handlers' annotations, then
//! completed with what the derive cannot see — the bearer scheme, the error
//! answers every route can give, the limits `ff-core` enforces (taken from
//! [`Limits`] so they cannot drift), and schema names for readers rather
//! than Rust's generic type names.

use std::sync::OnceLock;

use ff_core::execution::{PRIORITY_RANGE, TIME_RANGE_MS};
use ff_core::suspension::model::MAX_WAITPOINT_TTL_MS;
use ff_core::Limits;
use serde_json::{json, Map, Value};
use utoipa::OpenApi;

use crate::routes::{events, executions, flows, health, limits, signals, workers};

#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "FlowFabric", description = "Durable executions and flows over HTTP."),
    paths(
        executions::submit,
        executions::submit_batch,
        executions::list,
        executions::get,
        executions::result,
        executions::why,
        executions::cancel,
        executions::requeue,
        executions::counts,
        flows::create,
        flows::list,
        flows::get,
        flows::cancel,
        workers::claim,
        workers::renew,
        workers::release,
        workers::complete,
        workers::fail,
        workers::add_nodes,
        signals::create_waitpoint,
        signals::suspend,
        signals::signal_by_token,
        signals::signal,
        signals::list,
        limits::list,
        limits::put,
        limits::delete,
        limits::budget,
        limits::report_usage,
        events::completions,
        events::execution,
        health::healthz,
        health::readyz,
        health::metrics,
    ),
    tags(
        (name = "executions", description = "Submit and steer executions"),
        (name = "flows", description = "DAGs of executions"),
        (name = "workers", description = "The worker protocol: claim, renew, complete, fail"),
        (name = "signals", description = "Waitpoints, suspend, and signals from the outside world"),
        (name = "limits", description = "Flow control: concurrency, rate, budget and fair-share policies"),
        (name = "events", description = "Server-sent events"),
        (name = "ops", description = "Health, readiness, metrics"),
    )
)]
pub struct ApiDoc;

/// The document served at `/openapi.json`, built once.
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_else(|_| json!({}));
        complete(&mut doc, &Limits::default());
        doc
    })
}

/// Generic and primitive Rust names the derive gives schemas, and the
/// names a reader of the API gets instead.
const RENAMES: [(&str, &str); 4] = [
    ("Page_Execution", "ExecutionPage"),
    ("Page_FlowSummary", "FlowPage"),
    ("BTreeMap", "Inputs"),
    ("i64", "EpochMillis"),
];

/// The error answers, each a reusable response with the `ErrorBody` schema.
const ERRORS: [(&str, &str, &str); 8] = [
    (
        "400",
        "BadRequest",
        "Malformed JSON, or a path that does not decode",
    ),
    (
        "401",
        "Unauthorized",
        "A bearer token is required and was missing or wrong",
    ),
    (
        "404",
        "NotFound",
        "No such execution or flow in this namespace",
    ),
    (
        "409",
        "Conflict",
        "A stale lease, an execution no longer active, or a conflict",
    ),
    (
        "413",
        "PayloadTooLarge",
        "The request body is over the server's limit",
    ),
    (
        "415",
        "UnsupportedMediaType",
        "The body was not sent as application/json",
    ),
    ("422", "Invalid", "A field is invalid; `field` names it"),
    (
        "503",
        "Unavailable",
        "The backend is unavailable; retry after `Retry-After` seconds",
    ),
];

fn complete(doc: &mut Value, limits: &Limits) {
    rename_schemas(doc);
    let name = name_schema(limits);
    add_components(doc, &name);
    constrain_schemas(doc, limits);
    unsigned_ranges(doc);
    for (path, item) in object_mut(doc, "paths").iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for op in item.values_mut().filter_map(Value::as_object_mut) {
            complete_operation(path, op, limits);
        }
    }
}

fn rename_schemas(doc: &mut Value) {
    let schemas = object_mut(
        object_mut(doc, "components")
            .entry("schemas")
            .or_insert(json!({})),
        "",
    );
    for (from, to) in RENAMES {
        if let Some(schema) = schemas.remove(from) {
            schemas.insert(to.to_owned(), schema);
        }
    }
    rewrite_refs(doc);
}

fn rewrite_refs(value: &mut Value) {
    match value {
        Value::Object(map) => {
            // `Option<JsonText>`: JSON's null is already any JSON value, and
            // a oneOf that both branches match is invalid.
            let json_text = json!({"$ref": "#/components/schemas/JsonText"});
            let nullable_json =
                map.get("oneOf") == Some(&json!([{"type": "null"}, json_text.clone()]));
            if nullable_json {
                map.remove("oneOf");
                map.insert("$ref".to_owned(), json_text["$ref"].clone());
            }
            if let Some(Value::String(target)) = map.get_mut("$ref") {
                for (from, to) in RENAMES {
                    if target == &format!("#/components/schemas/{from}") {
                        *target = format!("#/components/schemas/{to}");
                    }
                }
            }
            map.values_mut().for_each(rewrite_refs);
        }
        Value::Array(items) => items.iter_mut().for_each(rewrite_refs),
        _ => {}
    }
}

/// The derive writes Rust's `u32`/`u64` as `int32`/`int64` with a minimum
/// of 0, which caps them at the signed range; the server takes the whole
/// unsigned range, so the schema says so (where no tighter bound is set).
fn unsigned_ranges(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let unsigned = map.get("minimum") == Some(&json!(0));
            let max = match map.get("format").and_then(Value::as_str) {
                Some("int32") if unsigned => Some(json!(u32::MAX)),
                Some("int64") if unsigned => Some(json!(u64::MAX)),
                _ => None,
            };
            if let Some(max) = max {
                map.remove("format");
                map.entry("maximum").or_insert(max);
            }
            map.values_mut().for_each(unsigned_ranges);
        }
        Value::Array(items) => items.iter_mut().for_each(unsigned_ranges),
        _ => {}
    }
}

/// A name: namespace, lane, kind, capability, worker id, node key.
fn name_schema(limits: &Limits) -> Value {
    json!({
        "type": "string",
        "minLength": 1,
        "maxLength": limits.max_name_bytes,
        "pattern": "^[A-Za-z0-9_.:/-]+$",
        "description": "Letters, digits and `_ - . : /`",
    })
}

fn add_components(doc: &mut Value, name: &Value) {
    let components = object_mut(doc, "components");
    components.insert(
        "securitySchemes".to_owned(),
        json!({"bearer": {"type": "http", "scheme": "bearer",
            "description": "`FF_API_TOKEN`; `/metrics` takes `FF_METRICS_TOKEN` when that is set"}}),
    );
    let responses = object_mut(components.entry("responses").or_insert(json!({})), "");
    for (status, id, description) in ERRORS {
        let mut response = json!({
            "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
        });
        if status == "503" {
            response["headers"] =
                json!({"Retry-After": {"schema": {"type": "integer", "minimum": 1}}});
        }
        responses.insert(id.to_owned(), response);
    }
    let schemas = object_mut(components.entry("schemas").or_insert(json!({})), "");
    schemas.insert("Name".to_owned(), name.clone());
    doc["security"] = json!([{"bearer": []}]);
}

/// The limits `ff-core` checks, written into the schemas they apply to.
fn constrain_schemas(doc: &mut Value, limits: &Limits) {
    let name_ref = json!({"$ref": "#/components/schemas/Name"});
    let names = json!({"type": "array", "items": name_ref});
    let time = json!({"oneOf": [{"type": "null"}, {
        "type": "integer", "format": "int64",
        "minimum": TIME_RANGE_MS.start, "maximum": TIME_RANGE_MS.end - 1,
        "description": "Epoch milliseconds, from 2000-01-01 up to 3000-01-01 (UTC)",
    }]});
    let duration = |max: u64| json!({"type": ["integer", "null"], "format": "int64", "minimum": 1, "maximum": max});
    let schemas = &mut doc["components"]["schemas"];

    // The path names the namespace; a body may repeat it only verbatim, so
    // the schema leaves it out.
    if let Some(props) = schemas["SubmitRequest"]["properties"].as_object_mut() {
        props.remove("namespace");
    }
    if let Some(props) = schemas["FlowSpec"]["properties"].as_object_mut() {
        props.remove("namespace");
    }
    let submit = &mut schemas["SubmitRequest"]["properties"];
    submit["lane"] = name_ref.clone();
    submit["kind"] = name_ref.clone();
    submit["capabilities"] = names.clone();
    submit["capabilities"]["maxItems"] = json!(limits.max_capabilities);
    submit["priority"] = json!({"type": ["integer", "null"], "format": "int32",
        "minimum": PRIORITY_RANGE.start(), "maximum": PRIORITY_RANGE.end()});
    submit["tags"] = json!({"type": "object", "maxProperties": limits.max_tags,
        "propertyNames": {"minLength": 1},
        "additionalProperties": {"type": "string"},
        "description": format!("At most {} tags, each key and value together at most {} bytes",
            limits.max_tags, limits.max_tag_bytes)});
    submit["idempotency_key"] = json!({"type": ["string", "null"], "minLength": 1,
        "maxLength": limits.max_tag_bytes, "description": "At most this many bytes"});
    submit["lease_ms"] = duration(limits.max_lease_ms);
    submit["attempt_timeout_ms"] = duration(limits.max_lease_ms * 30);
    submit["deadline"] = time.clone();
    submit["run_at"] = time;
    let optional_name = json!({"oneOf": [{"type": "null"}, name_ref.clone()]});
    for key in ["concurrency_key", "rate_key", "fairness_key"] {
        submit[key] = optional_name.clone();
    }

    // A node's execution takes the flow's namespace and no key of its own.
    let mut node_execution = schemas["SubmitRequest"].clone();
    if let Some(props) = node_execution["properties"].as_object_mut() {
        props.remove("idempotency_key");
    }
    node_execution["description"] =
        json!("A flow node's execution: a submission without namespace or idempotency key.");
    schemas["NodeExecution"] = node_execution;
    schemas["NodeSpec"]["properties"]["execution"] =
        json!({"$ref": "#/components/schemas/NodeExecution"});
    schemas["NodeSpec"]["properties"]["key"] = name_ref.clone();
    schemas["EdgeSpec"]["properties"]["from"] = name_ref.clone();
    schemas["EdgeSpec"]["properties"]["to"] = name_ref.clone();
    schemas["FlowSpec"]["properties"]["nodes"]["minItems"] = json!(1);
    // The node limit is not a maxItems: that many nodes never fit in a
    // request body, so the server answers 413 before it counts them.
    schemas["FlowSpec"]["properties"]["nodes"]["description"] =
        json!(format!("At most {} nodes in a flow", limits.max_flow_nodes));
    schemas["FlowSpec"]["properties"]["idempotency_key"] = submit_key(limits);

    let ttl = duration(MAX_WAITPOINT_TTL_MS);
    let signal = &mut schemas["SignalRequest"]["properties"];
    signal["name"] = name_ref.clone();
    signal["source"] = submit_key(limits);
    signal["idempotency_key"] = submit_key(limits);
    signal["payload"]["description"] = json!(format!(
        "Any JSON value, stored verbatim, at most {} bytes",
        limits.max_signal_payload_bytes
    ));
    let waitpoint = &mut schemas["WaitpointBody"]["properties"];
    waitpoint["key"] = name_ref.clone();
    waitpoint["ttl_ms"] = ttl.clone();
    let suspend = &mut schemas["SuspendBody"]["properties"];
    suspend["key"] = name_ref.clone();
    suspend["waitpoints"] = names.clone();
    suspend["waitpoints"]["minItems"] = json!(1);
    suspend["waitpoints"]["maxItems"] = json!(limits.max_waitpoints);
    suspend["waitpoints"]["uniqueItems"] = json!(true);
    suspend["timeout_ms"] = ttl.clone();
    suspend["ttl_ms"] = ttl;

    let retry = &mut schemas["RetryPolicy"]["properties"];
    retry["max_attempts"]["minimum"] = json!(1);
    retry["max_attempts"]["maximum"] = json!(1000);
    retry["jitter_percent"]["maximum"] = json!(100);
    // Only the cap is bounded: a longer first backoff is capped by it.
    retry["max_backoff_ms"]["maximum"] = json!(7 * 24 * 60 * 60 * 1000_u64);

    let claim = &mut schemas["ClaimBody"]["properties"];
    claim["lanes"] = names.clone();
    claim["lanes"]["minItems"] = json!(1);
    claim["capabilities"] = names;
    claim["worker_id"] = name_ref;
    claim["n"]["minimum"] = json!(1);
    claim["n"]["maximum"] = json!(limits.max_batch);
    // Any u64 is taken (and capped at the server's longest wait), not
    // only the int64 range the format would suggest.
    claim["wait_ms"] = json!({"type": "integer", "minimum": 0, "maximum": u64::MAX,
        "description": "Long-poll: wait up to this long for work (capped by the server, 30 s by default)"});
    // `{"quorum": n}` and nothing else.
    if let Some(variants) = schemas["Join"]["oneOf"].as_array_mut() {
        for variant in variants.iter_mut().filter(|v| v["type"] == "object") {
            variant["additionalProperties"] = json!(false);
        }
    }

    schemas["FailBody"]["properties"]["error"]["maxLength"] = json!(limits.max_error_bytes);
    let batch = &mut schemas["BatchRequest"]["properties"]["requests"];
    batch["minItems"] = json!(1);
    batch["maxItems"] = json!(limits.max_batch);
}

fn submit_key(limits: &Limits) -> Value {
    json!({"type": ["string", "null"], "minLength": 1, "maxLength": limits.max_tag_bytes})
}

/// Security, the error answers and the parameters' constraints of one
/// operation, from its path and shape.
fn complete_operation(path: &str, op: &mut Map<String, Value>, limits: &Limits) {
    // A waitpoint token authorises its own signal: no bearer token.
    let by_token = path.starts_with("/v1/signals/");
    let api = path.starts_with("/v1/");
    if (!api && path != "/metrics") || by_token {
        op.insert("security".to_owned(), json!([]));
    }
    let mut statuses = Vec::new();
    if by_token {
        statuses.extend(["400", "404", "409", "422", "503"]);
    } else if api {
        statuses.extend(["400", "401", "422", "503"]);
    } else if path == "/metrics" {
        statuses.extend(["401", "503"]);
    }
    if path.contains("{id}") {
        statuses.push("404");
    }
    if op.contains_key("requestBody") {
        statuses.extend(["400", "413", "415", "422"]);
        if let Some(body) = op.get_mut("requestBody") {
            body["required"] = json!(true);
        }
    }
    if path.contains("/leases/") || path.ends_with("/requeue") {
        statuses.extend(["404", "409"]);
    }
    let responses = object_mut(op.entry("responses").or_insert(json!({})), "");
    for status in statuses {
        if let Some((_, id, _)) = ERRORS.iter().find(|(s, _, _)| *s == status) {
            responses.insert(
                status.to_owned(),
                json!({"$ref": format!("#/components/responses/{id}")}),
            );
        }
    }
    for param in op
        .get_mut("parameters")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        constrain_parameter(param, path, limits);
    }
}

fn constrain_parameter(param: &mut Value, path: &str, limits: &Limits) {
    let schema = match param["name"].as_str() {
        Some("state") if path.contains("/flows") => {
            json!({"$ref": "#/components/schemas/FlowState"})
        }
        Some("state") => json!({"$ref": "#/components/schemas/State"}),
        Some("namespace" | "lane" | "kind" | "key") => {
            json!({"$ref": "#/components/schemas/Name"})
        }
        Some("id") => json!({"type": "string", "format": "uuid"}),
        Some("limit") => json!({"type": "integer", "minimum": 1, "maximum": limits.max_batch}),
        Some("cursor") => json!({"type": "string", "pattern": "^x[0-9a-fA-F]{32}$",
            "description": "The `next_cursor` of the previous page"}),
        Some("token") => json!({"type": "string", "pattern": "^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$",
            "description": "The waitpoint token, as suspend or create-waitpoint handed it out"}),
        Some("tag") => {
            json!({"type": "string", "pattern": "^[^:]*:", "description": "`key:value`"})
        }
        _ => return,
    };
    param["schema"] = schema;
}

/// The object under `key` (`value` itself when `key` is empty), made an
/// object if it was not one.
fn object_mut<'a>(value: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    let target = if key.is_empty() {
        value
    } else {
        ensure_object(value)
            .entry(key.to_owned())
            .or_insert(json!({}))
    };
    ensure_object(target)
}

fn ensure_object(value: &mut Value) -> &mut Map<String, Value> {
    if !value.is_object() {
        *value = Value::Object(Map::new());
    }
    match value {
        Value::Object(map) => map,
        _ => unreachable!("made an object above"),
    }
}
