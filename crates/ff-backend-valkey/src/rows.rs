//! The one mapping between `ff_core::Execution` and its hash. Each
//! top-level field of the execution's JSON is one hash field holding that
//! field's JSON text (payload and result verbatim), except the fields that
//! never change after submit and that Lua never reads, which share one
//! field, `spec`, as `"name":value` pairs; a field inserted as `null` is
//! left out (and one that becomes `null` is written as such). `_v`
//! is the version every write checks and bumps. The claim function edits a
//! few fields in Lua; everything else is written from here.

use std::collections::{BTreeMap, HashMap};

use serde_json::value::RawValue;

use ff_core::{EngineError, Execution};

/// The version field.
pub(crate) const VERSION_FIELD: &str = "_v";

/// The field holding the fixed part of the execution.
const SPEC_FIELD: &str = "spec";

/// The result: its verbatim text, absent when there is none (a `null`
/// result is `Some`, which JSON's `null` could not tell from `None`).
const RESULT_FIELD: &str = "result";

/// The execution's fields that are fixed at submit and that no Lua function
/// reads: kept together in `spec`, so a read or a write moves fewer fields.
const SPEC: &[&str] = &[
    "created_at",
    "flow",
    "id",
    "idempotency_key",
    "kind",
    "lane",
    "namespace",
    "payload",
    "priority",
    "retry",
    "run_at",
    "tags",
];

/// An execution as read, with the version a later write must name.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub(crate) exec: Execution,
    pub(crate) version: u64,
    /// The fields as read, so a write sends only what changed.
    pub(crate) fields: HashMap<String, String>,
}

/// The execution's fields, by name.
pub(crate) fn encode(exec: &Execution) -> Result<BTreeMap<String, String>, EngineError> {
    let text = serde_json::to_string(exec).map_err(EngineError::backend)?;
    let fields: BTreeMap<&str, &RawValue> =
        serde_json::from_str(&text).map_err(EngineError::backend)?;
    let mut out = BTreeMap::new();
    let mut spec = String::new();
    for (name, value) in fields {
        let value = value.get();
        if SPEC.contains(&name) {
            if !spec.is_empty() {
                spec.push(',');
            }
            spec.push('"');
            spec.push_str(name);
            spec.push_str("\":");
            spec.push_str(value);
        } else if name == RESULT_FIELD {
            if let Some(result) = &exec.result {
                out.insert(RESULT_FIELD.to_owned(), result.as_str().to_owned());
            }
        } else {
            out.insert(name.to_owned(), value.to_owned());
        }
    }
    out.insert(SPEC_FIELD.to_owned(), spec);
    Ok(out)
}

/// The fields of `new` whose text differs from those read (all of them
/// when nothing was read).
pub(crate) fn changed_fields(
    read: Option<&HashMap<String, String>>,
    new: &Execution,
) -> Result<Vec<(String, String)>, EngineError> {
    let new = encode(new)?;
    let Some(read) = read else {
        return Ok(new
            .into_iter()
            .filter(|(name, value)| value != "null" || name == RESULT_FIELD)
            .collect());
    };
    // A missing field reads as null: null is written only over a value.
    let mut changed: Vec<(String, String)> = new
        .iter()
        .filter(|(name, value)| match read.get(*name) {
            Some(old) => old != *value,
            None => *value != "null" || *name == RESULT_FIELD,
        })
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    // A field that was present and is now gone is written as null; the
    // result is the one field whose absence means none.
    if read.contains_key(RESULT_FIELD) && !new.contains_key(RESULT_FIELD) {
        return Err(EngineError::backend("a recorded result cannot be removed"));
    }
    changed.sort();
    Ok(changed)
}

/// Decodes a hash as `HGETALL` answers it; `None` for a missing key.
pub(crate) fn decode(fields: HashMap<String, String>) -> Result<Option<Stored>, EngineError> {
    if fields.is_empty() {
        return Ok(None);
    }
    let mut text = String::with_capacity(fields.values().map(|v| v.len() + 24).sum());
    text.push('{');
    let mut version = 0;
    for (name, value) in &fields {
        if name == RESULT_FIELD {
            continue;
        }
        if name == VERSION_FIELD {
            version = value
                .parse()
                .map_err(|_| EngineError::backend(format!("bad version `{value}`")))?;
            continue;
        }
        if value.is_empty() {
            continue;
        }
        if text.len() > 1 {
            text.push(',');
        }
        if name != SPEC_FIELD {
            text.push('"');
            text.push_str(name);
            text.push_str("\":");
        }
        text.push_str(value);
    }
    text.push('}');
    let mut exec: Execution = serde_json::from_str(&text)
        .map_err(|e| EngineError::backend(format!("a stored execution does not decode: {e}")))?;
    exec.result = fields
        .get(RESULT_FIELD)
        .map(|r| ff_core::JsonText::unchecked(r.clone()));
    Ok(Some(Stored {
        exec,
        version,
        fields,
    }))
}

/// Decodes the flat `[field, value, ...]` list a Lua function returns.
pub(crate) fn decode_flat(flat: Vec<String>) -> Result<Option<Stored>, EngineError> {
    let mut fields = HashMap::with_capacity(flat.len() / 2);
    let mut it = flat.into_iter();
    while let (Some(name), Some(value)) = (it.next(), it.next()) {
        fields.insert(name, value);
    }
    decode(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ff_core::{ExecutionId, JsonText, SubmitRequest};

    #[test]
    fn round_trips_with_payload_verbatim() {
        let payload = JsonText::parse(r#"{ "b": 1.50, "a": [1,2] }"#).unwrap();
        let exec = Execution::new(
            ExecutionId::new(),
            SubmitRequest::new("lane", "kind", payload.clone()).tag("k", "v"),
            42,
        );
        let mut fields: HashMap<String, String> = encode(&exec).unwrap().into_iter().collect();
        assert!(fields["spec"].contains(&format!("\"payload\":{payload}")));
        assert!(!fields.contains_key("result"), "nulls are left out");
        fields.insert(VERSION_FIELD.into(), "3".into());
        let stored = decode(fields).unwrap().unwrap();
        assert_eq!(stored.exec, exec);
        assert_eq!(stored.version, 3);
    }

    #[test]
    fn only_changed_fields_are_written() {
        let exec = Execution::new(
            ExecutionId::new(),
            SubmitRequest::new("lane", "kind", JsonText::null()),
            42,
        );
        let read: HashMap<String, String> = encode(&exec).unwrap().into_iter().collect();
        let mut next = exec.clone();
        next.releases = 5;
        next.result = Some(JsonText::null());
        let changed = changed_fields(Some(&read), &next).unwrap();
        assert_eq!(
            changed,
            vec![
                ("releases".to_owned(), "5".to_owned()),
                ("result".to_owned(), "null".to_owned())
            ]
        );
        let mut fields = read.clone();
        fields.extend(changed);
        assert_eq!(
            decode(fields).unwrap().unwrap().exec,
            next,
            "a null result is Some"
        );
    }
}
