//! Field-level validation errors, shared by every form and API body.

use std::collections::BTreeMap;

/// Errors keyed by the name of the field they concern, so a form can show each
/// message beside its input and the API can answer `{"fields": {...}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldErrors(BTreeMap<String, String>);

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the first reason given for a field; later ones are dropped so
    /// the user sees one clear message per input.
    pub fn add(&mut self, field: &str, reason: impl Into<String>) {
        self.0
            .entry(field.to_owned())
            .or_insert_with(|| reason.into());
    }

    /// Stores the error of `result` under `field` and returns its value, if any.
    pub fn check<T, E: std::fmt::Display>(
        &mut self,
        field: &str,
        result: Result<T, E>,
    ) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(err) => {
                self.add(field, err.to_string());
                None
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, field: &str) -> Option<&str> {
        self.0.get(field).map(String::as_str)
    }

    pub fn map(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    pub fn into_map(self) -> BTreeMap<String, String> {
        self.0
    }

    /// `Ok(())` when no field failed, so callers can write `errors.into_result()?`.
    pub fn into_result(self) -> Result<(), FieldErrors> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }

    pub fn single(field: &str, reason: impl Into<String>) -> Self {
        let mut errors = Self::new();
        errors.add(field, reason);
        errors
    }
}

impl std::fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        write!(f, "{}", parts.join("; "))
    }
}

impl std::error::Error for FieldErrors {}

/// Checks a free-text field: trimmed, not longer than `max` characters, and
/// free of control characters (which have no place in a name and can break
/// CSV exports and emails).
pub fn clean_text(value: &str, max: usize, required: bool) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() {
        return if required {
            Err("is required".into())
        } else {
            Ok(String::new())
        };
    }
    if value.chars().count() > max {
        return Err(format!("must be at most {max} characters"));
    }
    if value.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(value.to_owned())
}
