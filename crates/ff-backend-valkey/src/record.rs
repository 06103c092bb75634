//! The one mapping between `ff_core::Execution` and its hash: each
//! top-level field of the execution's JSON is one hash field holding that
//! field's JSON text (payload and result verbatim), plus `_v`, the version
//! every write checks and bumps. The claim function edits a few of these
//! fields in Lua; everything else is written from here.

use std::collections::{BTreeMap, HashMap};

use serde_json::value::RawValue;

use ff_core::{EngineError, Execution};

/// The version field.
pub(crate) const VERSION_FIELD: &str = "_v";

/// An execution as read, with the version a later write must name.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub(crate) exec: Execution,
    pub(crate) version: u64,
}

/// The execution's fields, by name.
pub(crate) fn encode(exec: &Execution) -> Result<BTreeMap<String, String>, EngineError> {
    let text = serde_json::to_string(exec).map_err(EngineError::backend)?;
    let fields: BTreeMap<String, &RawValue> =
        serde_json::from_str(&text).map_err(EngineError::backend)?;
    Ok(fields
        .into_iter()
        .map(|(name, value)| (name, value.get().to_owned()))
        .collect())
}

/// The fields of `new` whose text differs from `old`'s (all of them when
/// there is no `old`).
pub(crate) fn changed_fields(
    old: Option<&Execution>,
    new: &Execution,
) -> Result<Vec<(String, String)>, EngineError> {
    let new = encode(new)?;
    let Some(old) = old else {
        return Ok(new.into_iter().collect());
    };
    let old = encode(old)?;
    Ok(new
        .into_iter()
        .filter(|(name, value)| old.get(name) != Some(value))
        .collect())
}

/// Decodes a hash as `HGETALL` answers it; `None` for a missing key.
pub(crate) fn decode(fields: &HashMap<String, String>) -> Result<Option<Stored>, EngineError> {
    if fields.is_empty() {
        return Ok(None);
    }
    let mut text = String::with_capacity(fields.values().map(|v| v.len() + 24).sum());
    text.push('{');
    let mut version = 0;
    for (name, value) in fields {
        if name == VERSION_FIELD {
            version = value
                .parse()
                .map_err(|_| EngineError::backend(format!("bad version `{value}`")))?;
            continue;
        }
        if text.len() > 1 {
            text.push(',');
        }
        text.push('"');
        text.push_str(name);
        text.push_str("\":");
        text.push_str(value);
    }
    text.push('}');
    let exec = serde_json::from_str(&text)
        .map_err(|e| EngineError::backend(format!("a stored execution does not decode: {e}")))?;
    Ok(Some(Stored { exec, version }))
}

/// Decodes the flat `[field, value, ...]` list a Lua function returns.
pub(crate) fn decode_flat(flat: Vec<String>) -> Result<Option<Stored>, EngineError> {
    let mut fields = HashMap::with_capacity(flat.len() / 2);
    let mut it = flat.into_iter();
    while let (Some(name), Some(value)) = (it.next(), it.next()) {
        fields.insert(name, value);
    }
    decode(&fields)
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
        assert_eq!(fields["payload"], payload.as_str());
        fields.insert(VERSION_FIELD.into(), "3".into());
        let stored = decode(&fields).unwrap().unwrap();
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
        let mut next = exec.clone();
        next.priority = 5;
        let changed = changed_fields(Some(&exec), &next).unwrap();
        assert_eq!(changed, vec![("priority".to_owned(), "5".to_owned())]);
    }
}
