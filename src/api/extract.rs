//! Request bodies to typed values with the app's error shape: syntax errors
//! are 400 `malformed_json`, wrong shapes 422 naming the field path
//! (`items[2].label: unknown variant ...`), oversize bodies 413.
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use std::cell::Cell;
use std::marker::PhantomData;

use serde::de::{self, DeserializeOwned, IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
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

thread_local! {
    /// Most elements a [`bounded`] list accepts in the parse running on
    /// this thread.
    static MAX_ITEMS: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// Parses a JSON object into `T`, naming the offending field on failure.
/// The body is parsed straight into its typed shape, never into a generic
/// tree, and lists marked [`bounded`] stop at `max_items` elements, so a
/// request costs memory in proportion to what it may legitimately hold.
/// Syntax is checked first without allocating, so malformed JSON is 400
/// wherever the fault lies; bodies that are not objects are refused
/// (serde would otherwise read an array positionally into a struct).
pub fn parse<T: DeserializeOwned>(bytes: &[u8], max_items: usize) -> Result<T, ApiError> {
    serde_json::from_slice::<IgnoredAny>(bytes)
        .map_err(|e| ApiError::MalformedJson(format!("malformed JSON: {e}")))?;
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace()).copied();
    if first != Some(b'{') {
        return Err(ApiError::Invalid(format!(
            "the request body must be a JSON object, not {}",
            kind(first)
        )));
    }
    let previous = MAX_ITEMS.replace(max_items);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = serde_path_to_error::deserialize(&mut de).map_err(path_error);
    MAX_ITEMS.set(previous);
    parsed
}

/// What a JSON value that is not an object is, from its first byte.
fn kind(first: Option<u8>) -> &'static str {
    match first {
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

/// A list of at most the request's `max_items` elements: reading stops at
/// the first element past the limit, before it is decoded.
pub fn bounded<'de, D, T>(de: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct Bounded<T>(PhantomData<T>);

    impl<'de, T: Deserialize<'de>> Visitor<'de> for Bounded<T> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an array")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let max = MAX_ITEMS.get();
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(max).min(64));
            while out.len() < max {
                match seq.next_element()? {
                    Some(x) => out.push(x),
                    None => return Ok(out),
                }
            }
            match seq.next_element::<IgnoredAny>()? {
                None => Ok(out),
                Some(_) => Err(de::Error::custom(format!(
                    "more than {max} items; at most {max} per request (--max-items)"
                ))),
            }
        }
    }

    de.deserialize_seq(Bounded(PhantomData))
}

/// [`bounded`] for an optional field (`#[serde(default)]` gives `None`).
pub fn bounded_opt<'de, D, T>(de: D) -> Result<Option<Vec<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    bounded(de).map(Some)
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
        let e = parse::<Batch>(br#"{"items": [{"label": "human"}, {"label": "robot"}]}"#, 8)
            .unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, ApiError::Invalid(_)));
        assert!(
            msg.starts_with("items[1].label: unknown variant `robot`"),
            "{msg}"
        );
        let e = parse::<Batch>(br#"{"items": [], "extra": 1}"#, 8).unwrap_err();
        assert!(e.to_string().contains("unknown field `extra`"), "{e}");
        let e = parse::<Batch>(br#"{"items": [}"#, 8).unwrap_err();
        assert!(matches!(e, ApiError::MalformedJson(_)), "{e:?}");
    }

    #[test]
    fn lists_stop_at_the_limit_and_non_objects_are_named() {
        use crate::api::wire::DetectRequest;
        let body = format!(r#"{{"texts": [{}]}}"#, [r#""a""#; 9].join(","));
        let e = parse::<DetectRequest>(body.as_bytes(), 8).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("texts: more than 8 items; at most 8 per request"),
            "{e}"
        );
        let ok = parse::<DetectRequest>(body.as_bytes(), 9).unwrap();
        assert_eq!(ok.texts.map(|t| t.len()), Some(9));
        for (body, kind) in [
            (&b"[1]"[..], "an array"),
            (b" \"x\"", "a string"),
            (b"null", "null"),
            (b"true", "a boolean"),
            (b"-1.5", "a number"),
        ] {
            let e = parse::<DetectRequest>(body, 8).unwrap_err();
            assert!(e.to_string().ends_with(kind), "{e}");
        }
        // A data fault before a syntax fault is still malformed JSON.
        let e = parse::<DetectRequest>(br#"{"texts": [1, }"#, 8).unwrap_err();
        assert!(matches!(e, ApiError::MalformedJson(_)), "{e:?}");
        let e = parse::<DetectRequest>(br#"{"text": "a"} x"#, 8).unwrap_err();
        assert!(matches!(e, ApiError::MalformedJson(_)), "{e:?}");
    }

    mod properties {
        use proptest::prelude::*;
        use serde_json::{json, Value};

        use super::super::*;
        use crate::api::wire::{DetectRequest, ReferenceBody};

        /// Any JSON value, nested a few levels.
        fn value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(|n| json!(n)),
                any::<f64>()
                    .prop_filter("finite", |f| f.is_finite())
                    .prop_map(|f| json!(f)),
                ".{0,12}".prop_map(Value::String),
            ];
            leaf.prop_recursive(4, 48, 8, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..12).prop_map(Value::Array),
                    prop::collection::btree_map(field(), inner, 0..6)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        /// Field names the wire types know, and some they do not.
        fn field() -> impl Strategy<Value = String> {
            prop_oneof![
                prop::sample::select(vec![
                    "text", "texts", "k", "explain", "items", "label", "model", "family", "source",
                    "domain", "attack", "lang",
                ])
                .prop_map(str::to_owned),
                "[a-z]{1,6}",
            ]
        }

        /// A body: a JSON value, maybe cut short or with a byte changed.
        fn body() -> impl Strategy<Value = Vec<u8>> {
            (value(), any::<u8>(), any::<prop::sample::Index>(), 0u8..3).prop_map(
                |(v, byte, at, how)| {
                    let mut b = serde_json::to_vec(&v).unwrap();
                    if !b.is_empty() {
                        let i = at.index(b.len());
                        match how {
                            0 => {}
                            1 => b.truncate(i),
                            _ => b[i] = byte,
                        }
                    }
                    b
                },
            )
        }

        fn is_client_error(e: &ApiError) -> bool {
            matches!(e, ApiError::MalformedJson(_) | ApiError::Invalid(_))
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2_000))]

            /// Whatever arrives, parsing answers a typed request or a client
            /// error, and never holds more list elements than allowed.
            #[test]
            fn any_body_parses_or_is_a_client_error(b in body(), max in 1usize..6) {
                match parse::<DetectRequest>(&b, max) {
                    Ok(r) => prop_assert!(r.texts.map_or(0, |t| t.len()) <= max),
                    Err(e) => prop_assert!(is_client_error(&e), "{e:?}"),
                }
                match parse::<ReferenceBody>(&b, max) {
                    Ok(r) => {
                        prop_assert!(r.items.as_ref().map_or(0, Vec::len) <= max);
                        if let Ok((items, _)) = r.into_items() {
                            prop_assert!(!items.is_empty() || b.contains(&b'['));
                        }
                    }
                    Err(e) => prop_assert!(is_client_error(&e), "{e:?}"),
                }
            }

            /// Valid JSON is never called malformed; only its shape is judged.
            #[test]
            fn valid_json_is_judged_on_its_shape(v in value()) {
                let b = serde_json::to_vec(&v).unwrap();
                if let Err(e) = parse::<DetectRequest>(&b, 4) {
                    prop_assert!(matches!(e, ApiError::Invalid(_)), "{e:?}");
                }
            }

            /// Lists of any length: within the limit they parse whole, past
            /// it the error says so.
            #[test]
            fn list_length_is_bounded(n in 0usize..40, max in 1usize..20) {
                let texts: Vec<String> = (0..n).map(|i| format!("t{i}")).collect();
                let b = serde_json::to_vec(&json!({"texts": texts})).unwrap();
                match parse::<DetectRequest>(&b, max) {
                    Ok(r) => {
                        prop_assert!(n <= max);
                        prop_assert_eq!(r.texts.unwrap(), texts);
                    }
                    Err(e) => {
                        prop_assert!(n > max);
                        let at_most = format!("at most {max} per request");
                        prop_assert!(e.to_string().contains(&at_most), "{}", e);
                    }
                }
            }
        }
    }
}
