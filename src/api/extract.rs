//! Request bodies to typed values with the app's error shape: syntax errors
//! are 400 `malformed_json`, wrong shapes 422 naming the field path
//! (`items[2].label: unknown variant ...`), oversize bodies 413.
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use serde::de::DeserializeOwned;
use serde_json::error::Category;

use super::error::ApiError;

/// The body as bytes, or the matching error.
pub fn body(raw: Result<Bytes, BytesRejection>, limit: usize) -> Result<Bytes, ApiError> {
    match raw {
        Ok(b) if b.is_empty() => Err(ApiError::MalformedJson(
            "the request body is empty; expected a JSON object".into(),
        )),
        Ok(b) => Ok(b),
        Err(r) if r.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
            Err(ApiError::TooLarge(format!(
                "the request body exceeds {limit} bytes (--max-body-bytes)"
            )))
        }
        Err(_) => Err(ApiError::MalformedJson(
            "the request body could not be read".into(),
        )),
    }
}

/// Parses a JSON object into `T`, naming the offending field on failure.
/// Bodies that are not objects are refused (serde would otherwise read an
/// array positionally into a struct).
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::MalformedJson(format!("malformed JSON: {e}")))?;
    from_value(value)
}

/// Parses an already decoded JSON value into `T`.
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    if !value.is_object() {
        return Err(ApiError::Invalid(format!(
            "the request body must be a JSON object, not {}",
            kind(&value)
        )));
    }
    serde_path_to_error::deserialize(value).map_err(path_error)
}

fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

fn path_error(e: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = e.path().to_string();
    let inner = e.into_inner();
    match inner.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            ApiError::MalformedJson(format!("malformed JSON: {inner}"))
        }
        Category::Data => {
            let msg = strip_position(&inner.to_string());
            if path == "." || path.is_empty() {
                ApiError::Invalid(msg)
            } else {
                ApiError::Invalid(format!("{path}: {msg}"))
            }
        }
    }
}

/// serde_json appends " at line L column C"; the field path says more.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Item {
        label: crate::store::Label,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Batch {
        items: Vec<Item>,
    }

    #[test]
    fn errors_name_the_field_path() {
        let e =
            parse::<Batch>(br#"{"items": [{"label": "human"}, {"label": "robot"}]}"#).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, ApiError::Invalid(_)));
        assert!(
            msg.starts_with("items[1].label: unknown variant `robot`"),
            "{msg}"
        );
        let e = parse::<Batch>(br#"{"items": [], "extra": 1}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `extra`"), "{e}");
        let e = parse::<Batch>(br#"{"items": [}"#).unwrap_err();
        assert!(matches!(e, ApiError::MalformedJson(_)), "{e:?}");
    }
}
