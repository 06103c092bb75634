//! The OpenAPI document says what the server does: its security, every
//! status a route answers, the real constraints, event streams as
//! `text/event-stream`, and schema names a reader of the API knows.

use serde_json::Value;

fn doc() -> Value {
    let doc = ff_server::openapi::document().clone();
    if let Ok(out) = std::env::var("FF_OPENAPI_DUMP") {
        std::fs::write(out, serde_json::to_string_pretty(&doc).expect("json")).expect("write");
    }
    doc
}

fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            ops.push((path.clone(), method.clone(), op.clone()));
        }
    }
    ops
}

#[test]
fn declares_bearer_security_except_on_health() {
    let doc = doc();
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert_eq!(doc["security"][0]["bearer"], serde_json::json!([]));
    assert_eq!(
        doc["paths"]["/healthz"]["get"]["security"],
        serde_json::json!([])
    );
    assert!(doc["paths"]["/metrics"]["get"]["security"].is_null());
}

#[test]
fn documents_every_error_status_with_the_error_body() {
    let doc = doc();
    for (path, method, op) in operations(&doc) {
        let responses = &op["responses"];
        // A waitpoint token authorises its own signal: no 401 there.
        if path.starts_with("/v1/signals/") {
            assert_eq!(op["security"], serde_json::json!([]), "{method} {path}");
            for status in ["400", "404", "409", "422", "503"] {
                assert!(
                    responses[status].is_object(),
                    "{method} {path} lacks {status}"
                );
            }
        } else if path.starts_with("/v1/") {
            for status in ["400", "401", "422", "503"] {
                assert!(
                    responses[status].is_object(),
                    "{method} {path} lacks {status}"
                );
            }
        }
        if op["requestBody"].is_object() {
            for status in ["413", "415"] {
                assert!(
                    responses[status].is_object(),
                    "{method} {path} lacks {status}"
                );
            }
        }
        if path.contains("{id}") {
            assert!(responses["404"].is_object(), "{method} {path} lacks 404");
        }
    }
    let invalid = &doc["components"]["responses"]["Invalid"];
    assert_eq!(
        invalid["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ErrorBody"
    );
}

#[test]
fn schemas_carry_the_server_limits() {
    let doc = doc();
    let schemas = &doc["components"]["schemas"];
    assert_eq!(schemas["Name"]["maxLength"], 128);
    assert!(schemas["Name"]["pattern"].is_string());
    assert_eq!(
        schemas["SubmitRequest"]["properties"]["lane"]["$ref"],
        "#/components/schemas/Name"
    );
    assert_eq!(
        schemas["RetryPolicy"]["properties"]["max_attempts"]["minimum"],
        1
    );
    assert_eq!(schemas["ClaimBody"]["properties"]["n"]["minimum"], 1);
    assert_eq!(
        schemas["SubmitRequest"]["properties"]["lease_ms"]["minimum"],
        1
    );
    assert_eq!(
        schemas["SubmitRequest"]["properties"]["priority"]["maximum"],
        100
    );
    let list = &doc["paths"]["/v1/namespaces/{namespace}/executions"]["get"]["parameters"];
    let state = list
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == "state"))
        .expect("a state parameter");
    assert_eq!(state["schema"]["$ref"], "#/components/schemas/State");
}

#[test]
fn event_streams_are_text_event_stream() {
    let doc = doc();
    for path in [
        "/v1/namespaces/{namespace}/events",
        "/v1/namespaces/{namespace}/executions/{id}/events",
    ] {
        let content = &doc["paths"][path]["get"]["responses"]["200"]["content"];
        assert!(
            content["text/event-stream"].is_object(),
            "{path}: {content}"
        );
    }
}

#[test]
fn schema_names_are_not_rust_type_names() {
    let doc = doc();
    let text = doc.to_string();
    for name in doc["components"]["schemas"]
        .as_object()
        .expect("schemas")
        .keys()
    {
        assert!(
            name.chars().next().is_some_and(char::is_uppercase) && !name.contains('_'),
            "schema name {name}"
        );
        assert!(!["BTreeMap", "HashMap", "Vec", "Option"].contains(&name.as_str()));
    }
    assert!(!text.contains("#/components/schemas/i64"), "a ref to i64");
}
