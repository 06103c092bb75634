//! `JsonText`: user JSON (payloads, results) kept as the exact text received.

use std::fmt;

use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::error::EngineError;

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

    /// Checks that the text is one JSON value; `field` names it in the error.
    pub fn validate(&self, field: &str) -> Result<(), EngineError> {
        check_json(&self.0).map_err(|message| EngineError::invalid(field, message))
    }
}

fn check_json(text: &str) -> Result<(), String> {
    serde_json::from_str::<IgnoredAny>(text)
        .map(|_| ())
        .map_err(|e| format!("not valid JSON: {e}"))
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
