//! Accounts: partners and the vendor's staff.

use serde::{Deserialize, Serialize};

use crate::errors::{FieldErrors, clean_text};

/// A staff member's role. Admins see and do everything; affiliate managers
/// see and act on their own partners only (R-ACC-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StaffRole {
    Admin,
    Manager,
}

impl StaffRole {
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "admin" => Some(Self::Admin),
            "manager" => Some(Self::Manager),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Manager => "manager",
        }
    }
}

/// Who an account belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    Partner,
    Staff(StaffRole),
}

/// A partner's own details, as given at sign-up (R-ACC-1) or edited later.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PartnerProfile {
    pub name: String,
    pub company: Option<String>,
    pub website: Option<String>,
}

pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_COMPANY_CHARS: usize = 120;
pub const MAX_WEBSITE_CHARS: usize = 200;

impl PartnerProfile {
    /// Parses the profile fields, recording each problem under its field name.
    pub fn parse(
        name: &str,
        company: &str,
        website: &str,
        errors: &mut FieldErrors,
    ) -> Option<Self> {
        let name = errors.check("name", clean_text(name, MAX_NAME_CHARS, true));
        let company = errors.check("company", clean_text(company, MAX_COMPANY_CHARS, false));
        let website = errors.check("website", parse_website(website));
        Some(Self {
            name: name?,
            company: company?.and_non_empty(),
            website: website?,
        })
    }
}

trait NonEmpty {
    fn and_non_empty(self) -> Option<String>;
}

impl NonEmpty for String {
    fn and_non_empty(self) -> Option<String> {
        (!self.is_empty()).then_some(self)
    }
}

/// An optional website: an http(s) URL with a host. A bare domain such as
/// `example.com` is accepted and read as `https://example.com/`, which is what
/// people type.
pub fn parse_website(raw: &str) -> Result<Option<String>, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    if raw.chars().count() > MAX_WEBSITE_CHARS {
        return Err(format!("must be at most {MAX_WEBSITE_CHARS} characters"));
    }
    let candidate = if raw.contains("://") {
        raw.to_owned()
    } else {
        format!("https://{raw}")
    };
    let url = url::Url::parse(&candidate)
        .map_err(|_| "must be a web address such as https://example.com".to_owned())?;
    let host_ok = url
        .host_str()
        .is_some_and(|h| h.contains('.') && !h.starts_with('.'));
    if !matches!(url.scheme(), "http" | "https") || !host_ok {
        return Err("must be a web address such as https://example.com".into());
    }
    Ok(Some(url.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websites_are_normalised_or_refused() {
        assert_eq!(
            parse_website("example.com").unwrap().unwrap(),
            "https://example.com/"
        );
        assert_eq!(parse_website("").unwrap(), None);
        for bad in [
            "javascript:alert(1)",
            "ftp://example.com",
            "http://localhost",
            "not a url",
        ] {
            assert!(parse_website(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn profile_errors_name_each_field() {
        let mut errors = FieldErrors::new();
        let long = "x".repeat(MAX_NAME_CHARS + 1);
        assert!(PartnerProfile::parse(&long, "", "bad url", &mut errors).is_none());
        assert!(errors.get("name").is_some());
        assert!(errors.get("website").is_some());
        assert!(errors.get("company").is_none());
    }
}
