//! `JsonText`: user JSON (payloads, results) kept as the exact text received.

use std::fmt;

use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::error::EngineError;

/// The deepest nesting of arrays and objects accepted by default
/// ([`Limits::max_json_depth`](crate::Limits::max_json_depth)).
pub const DEFAULT_MAX_JSON_DEPTH: usize = 128;

/// JSON text stored and returned verbatim, never re-encoded.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct JsonText(String);

impl JsonText {
    /// Parses `text`, keeping it verbatim.
    pub fn parse(text: impl Into<String>) -> Result<Self, EngineError> {
        let text = text.into();
        check_json(&text).map_err(|message| EngineError::invalid("json", message))?;
        Ok(Self(text))
    }

    /// Wraps text without checking it; submit and complete validate it.
    pub fn unchecked(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// Encodes any serializable value.
    pub fn from_value<T: Serialize + ?Sized>(value: &T) -> Self {
        // Serializing to a String cannot fail for serde_json::Value-like data;
        // a failing custom Serialize impl yields `null`.
        Self(serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned()))
    }

    /// `null`.
    pub fn null() -> Self {
        Self("null".to_owned())
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text, owned.
    pub fn into_string(self) -> String {
        self.0
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the text is empty (never valid JSON).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Decodes into a value.
    pub fn decode<'a, T: Deserialize<'a>>(&'a self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.0)
    }

    /// Checks that the text is one JSON value nested at most
    /// [`DEFAULT_MAX_JSON_DEPTH`] deep; `field` names it in the error.
    pub fn validate(&self, field: &str) -> Result<(), EngineError> {
        self.validate_within(field, DEFAULT_MAX_JSON_DEPTH)
    }

    /// Checks that the text is one JSON value nested at most `max_depth`
    /// arrays or objects deep; `field` names it in the error.
    pub fn validate_within(&self, field: &str, max_depth: usize) -> Result<(), EngineError> {
        let depth = nesting_depth(&self.0);
        if depth > max_depth {
            return Err(EngineError::invalid(
                field,
                format!("nested {depth} deep, over the limit of {max_depth}"),
            ));
        }
        check_json(&self.0).map_err(|message| EngineError::invalid(field, message))
    }
}

fn check_json(text: &str) -> Result<(), String> {
    serde_json::from_str::<IgnoredAny>(text)
        .map(|_| ())
        .map_err(|e| format!("not valid JSON: {e}"))
}

/// How deeply arrays and objects nest in `text` (0 for a scalar), counted
/// in one pass without recursion. Brackets inside strings do not count;
/// on malformed text the count is meaningless and parsing rejects it.
/// A deeply nested value is refused because many consumers (the SDK's
/// `serde_json::Value`, Python's `json`, browsers) recurse to decode it.
fn nesting_depth(text: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for byte in text.bytes() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

impl Default for JsonText {
    fn default() -> Self {
        Self::null()
    }
}

impl fmt::Debug for JsonText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 120;
        match self.0.char_indices().nth(SHOWN) {
            Some((cut, _)) => write!(f, "{}…", &self.0[..cut]),
            None => f.write_str(&self.0),
        }
    }
}

impl fmt::Display for JsonText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for JsonText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match RawValue::from_string(self.0.clone()) {
            Ok(raw) => raw.serialize(serializer),
            Err(_) => serializer.serialize_none(),
        }
    }
}

impl<'de> Deserialize<'de> for JsonText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        Ok(Self(String::from(raw.get())))
    }
}

#[cfg(feature = "openapi")]
mod openapi {
    use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType};
    use utoipa::openapi::RefOr;

    impl utoipa::PartialSchema for super::JsonText {
        fn schema() -> RefOr<Schema> {
            ObjectBuilder::new()
                .schema_type(SchemaType::AnyValue)
                .description(Some("Any JSON value, stored and returned verbatim"))
                .into()
        }
    }

    impl utoipa::ToSchema for super::JsonText {}
}

#[cfg(test)]
mod tests {
    use super::{nesting_depth, JsonText, DEFAULT_MAX_JSON_DEPTH};
    use crate::ErrorKind;

    fn nested(depth: usize) -> String {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn counts_nesting_outside_strings() {
        assert_eq!(nesting_depth("1"), 0);
        assert_eq!(nesting_depth("\"[[[\""), 0);
        assert_eq!(nesting_depth("[]"), 1);
        assert_eq!(nesting_depth(r#"{"a": [1, {"b": "]\"["}], "c": {}}"#), 3);
        assert_eq!(nesting_depth(&nested(500)), 500);
    }

    #[test]
    fn refuses_values_nested_past_the_limit() {
        let at_limit = JsonText::unchecked(nested(DEFAULT_MAX_JSON_DEPTH));
        assert!(at_limit.validate("payload").is_ok());
        let deep = JsonText::unchecked(format!(
            "{}1{}",
            "{\"a\":".repeat(DEFAULT_MAX_JSON_DEPTH + 1),
            "}".repeat(DEFAULT_MAX_JSON_DEPTH + 1)
        ));
        let err = deep.validate("result").expect_err("too deep");
        assert_eq!(err.kind(), ErrorKind::Invalid);
        assert_eq!(err.field(), Some("result"));
        let err = JsonText::unchecked(nested(100_000))
            .validate("payload")
            .expect_err("far too deep");
        assert_eq!(err.field(), Some("payload"));
        assert!(JsonText::unchecked(nested(10))
            .validate_within("payload", 9)
            .is_err());
    }
}
