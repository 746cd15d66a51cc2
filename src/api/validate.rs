//! Checks on request values that their types cannot express: counts,
//! empty and oversize texts, NUL characters, metadata length. Each error
//! names the field and the limit.
use super::error::ApiError;
use super::wire::ReferenceItem;
use super::AppState;

/// Longest metadata value (`model`, `family`, `source`, ...) in characters.
pub const MAX_FIELD_CHARS: usize = 200;

/// Checks the texts of a request; `fields` name them in messages.
pub fn check_texts<'a>(
    state: &AppState,
    fields: &[String],
    texts: impl Iterator<Item = &'a str>,
) -> Result<(), ApiError> {
    let max = state.config.max_text_chars;
    for (field, text) in fields.iter().zip(texts) {
        if text.chars().all(invisible) {
            return Err(ApiError::invalid(format!(
                "{field} is empty (no visible characters)"
            )));
        }
        check_no_nul(field, text)?;
        let chars = text.chars().count();
        if chars > max {
            return Err(ApiError::TooLarge(format!(
                "{field} has {chars} characters; the limit is {max} (--max-text-chars)"
            )));
        }
    }
    Ok(())
}

/// Whitespace and the zero-width and formatting characters that render as
/// nothing: a text made only of these is empty.
fn invisible(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '\u{200B}'..='\u{200F}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}' | '\u{00AD}' | '\u{034F}'
        )
}

/// NUL is valid JSON but no database text type stores it.
fn check_no_nul(field: &str, value: &str) -> Result<(), ApiError> {
    if value.contains('\0') {
        return Err(ApiError::invalid(format!(
            "{field} contains a NUL character (U+0000)"
        )));
    }
    Ok(())
}

pub fn check_count(state: &AppState, field: &str, n: usize) -> Result<(), ApiError> {
    if n == 0 {
        return Err(ApiError::invalid(format!("{field} is empty")));
    }
    let max = state.config.max_items;
    if n > max {
        return Err(ApiError::invalid(format!(
            "{field} has {n} items; at most {max} per request (--max-items)"
        )));
    }
    Ok(())
}

/// The metadata of one reference item (`at` prefixes the field names).
pub fn check_metadata(at: &str, item: &ReferenceItem) -> Result<(), ApiError> {
    for (name, value) in [
        ("model", &item.model),
        ("family", &item.family),
        ("source", &item.source),
        ("domain", &item.domain),
        ("attack", &item.attack),
        ("lang", &item.lang),
    ] {
        if let Some(v) = value {
            check_no_nul(&format!("{at}{name}"), v)?;
            let chars = v.chars().count();
            if chars > MAX_FIELD_CHARS {
                return Err(ApiError::invalid(format!(
                    "{at}{name} has {chars} characters; at most {MAX_FIELD_CHARS}"
                )));
            }
        }
    }
    Ok(())
}
