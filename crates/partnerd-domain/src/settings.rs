//! Program settings: every number of PROGRAM.md with its default, plus the
//! program's identity. Stored in the database as one JSON document and edited
//! by admins in the console; each change is validated here and audit-logged by
//! the caller.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::errors::{FieldErrors, clean_text};

/// The program's rules and identity. Field names are the setting keys shown
/// in the console and used in the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProgramSettings {
    pub program_name: String,
    pub logo_url: Option<String>,
    pub brand_color: String,
    pub accent_color: String,
    /// Where the default affiliate link lands (R-AFF-1).
    pub main_page_url: String,
    /// Hosts a campaign's landing page may point at (R-AFF-2), so `/r` is never an open redirect.
    pub allowed_landing_domains: Vec<String>,
    /// The query parameter that carries the referral token on the landing URL.
    pub referral_param: String,
    /// R-AFF-3: how long a click's cookie lasts and a click can be credited (R-AFF-4).
    pub cookie_days: i64,
    /// R-AFF-2: trial lengths a campaign may offer.
    pub trial_options: Vec<i64>,
    /// R-AFF-2: discounts (percent) a campaign may offer.
    pub discount_options: Vec<i64>,
    /// R-COM-1: percent of each payment of a referred customer.
    pub commission_rate: i64,
    /// R-COM-4: days commission is held before it can be withdrawn.
    pub hold_days: i64,
    /// R-PAY-1: minimum withdrawal per currency, in minor units.
    pub min_withdrawal: BTreeMap<String, i64>,
    /// R-ACC-4: new paying customers needed within the window to be active.
    pub active_min_new: i64,
    /// R-ACC-4: the window, in months.
    pub active_window_months: i64,
    /// R-SOL-3: percent off list price for licences a partner buys.
    pub reseller_discount: i64,
    /// R-FREE-1: seats of the free internal-use licence.
    pub free_seats: i64,
    /// R-FREE-1: the plan of the free licence.
    pub free_plan: String,
    /// R-FREE-1: trial length of the free licence.
    pub free_trial_days: i64,
    /// R-EXP-3: days after publication to show the badge and follow the channels.
    pub expert_badge_days: i64,
    /// R-EXP-3: days after publication to publish the blog post.
    pub expert_blog_days: i64,
    /// R-EXP-4: new subscriptions needed in the past year at each anniversary.
    pub expert_yearly_min_new: i64,
    /// Account rule (NIST SP 800-63B): minimum password length.
    pub password_min_length: i64,
}

impl Default for ProgramSettings {
    fn default() -> Self {
        Self {
            program_name: "Partner Program".into(),
            logo_url: None,
            brand_color: "#4f46e5".into(),
            accent_color: "#0ea5e9".into(),
            main_page_url: "https://www.example.com/".into(),
            allowed_landing_domains: vec!["example.com".into()],
            referral_param: "ref".into(),
            cookie_days: 120,
            trial_options: vec![14, 30, 60],
            discount_options: vec![0, 10, 20],
            commission_rate: 20,
            hold_days: 30,
            min_withdrawal: BTreeMap::from([("USD".to_owned(), 5_000)]),
            active_min_new: 2,
            active_window_months: 3,
            reseller_discount: 20,
            free_seats: 2,
            free_plan: "Team".into(),
            free_trial_days: 60,
            expert_badge_days: 14,
            expert_blog_days: 30,
            expert_yearly_min_new: 1,
            password_min_length: 10,
        }
    }
}

/// How a setting is shown and parsed in the console form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingKind {
    Text,
    Url,
    OptionalUrl,
    Color,
    Integer { min: i64, max: i64 },
    IntegerList { min: i64, max: i64 },
    DomainList,
    CurrencyAmounts,
    Identifier,
}

/// One row of the settings form.
#[derive(Debug, Clone, Copy)]
pub struct SettingField {
    pub key: &'static str,
    pub label: &'static str,
    pub help: &'static str,
    pub kind: SettingKind,
}

use SettingKind::*;

/// Every editable setting, in the order the console shows them.
pub const FIELDS: &[SettingField] = &[
    SettingField {
        key: "program_name",
        label: "Program name",
        help: "Shown on every page and email.",
        kind: Text,
    },
    SettingField {
        key: "logo_url",
        label: "Logo URL",
        help: "HTTPS address of a square logo; empty shows a monogram.",
        kind: OptionalUrl,
    },
    SettingField {
        key: "brand_color",
        label: "Brand colour",
        help: "Hex colour such as #4f46e5.",
        kind: Color,
    },
    SettingField {
        key: "accent_color",
        label: "Accent colour",
        help: "Hex colour such as #0ea5e9.",
        kind: Color,
    },
    SettingField {
        key: "main_page_url",
        label: "Main page URL",
        help: "Where the default affiliate link lands (R-AFF-1).",
        kind: Url,
    },
    SettingField {
        key: "allowed_landing_domains",
        label: "Allowed landing domains",
        help: "Comma-separated hosts campaign links may land on; subdomains included (R-AFF-2).",
        kind: DomainList,
    },
    SettingField {
        key: "referral_param",
        label: "Referral parameter",
        help: "Query parameter that carries the referral token.",
        kind: Identifier,
    },
    SettingField {
        key: "cookie_days",
        label: "Cookie days",
        help: "R-AFF-3: how long a click counts.",
        kind: Integer { min: 1, max: 3650 },
    },
    SettingField {
        key: "trial_options",
        label: "Trial options (days)",
        help: "R-AFF-2: comma-separated.",
        kind: IntegerList { min: 1, max: 365 },
    },
    SettingField {
        key: "discount_options",
        label: "Discount options (%)",
        help: "R-AFF-2: comma-separated.",
        kind: IntegerList { min: 0, max: 100 },
    },
    SettingField {
        key: "commission_rate",
        label: "Commission rate (%)",
        help: "R-COM-1: applies to customers credited from now on.",
        kind: Integer { min: 0, max: 100 },
    },
    SettingField {
        key: "hold_days",
        label: "Hold days",
        help: "R-COM-4: days before commission can be withdrawn.",
        kind: Integer { min: 0, max: 365 },
    },
    SettingField {
        key: "min_withdrawal",
        label: "Minimum withdrawal",
        help: "R-PAY-1: per currency in minor units, e.g. USD=5000, EUR=5000.",
        kind: CurrencyAmounts,
    },
    SettingField {
        key: "active_min_new",
        label: "Active: new customers",
        help: "R-ACC-4: new paying customers needed in the window.",
        kind: Integer {
            min: 0,
            max: 10_000,
        },
    },
    SettingField {
        key: "active_window_months",
        label: "Active: window (months)",
        help: "R-ACC-4.",
        kind: Integer { min: 1, max: 36 },
    },
    SettingField {
        key: "reseller_discount",
        label: "Reseller discount (%)",
        help: "R-SOL-3.",
        kind: Integer { min: 0, max: 100 },
    },
    SettingField {
        key: "free_seats",
        label: "Free licence seats",
        help: "R-FREE-1.",
        kind: Integer { min: 0, max: 1000 },
    },
    SettingField {
        key: "free_plan",
        label: "Free licence plan",
        help: "R-FREE-1.",
        kind: Text,
    },
    SettingField {
        key: "free_trial_days",
        label: "Free licence trial (days)",
        help: "R-FREE-1.",
        kind: Integer { min: 1, max: 365 },
    },
    SettingField {
        key: "expert_badge_days",
        label: "Expert badge deadline (days)",
        help: "R-EXP-3.",
        kind: Integer { min: 1, max: 365 },
    },
    SettingField {
        key: "expert_blog_days",
        label: "Expert blog post deadline (days)",
        help: "R-EXP-3.",
        kind: Integer { min: 1, max: 365 },
    },
    SettingField {
        key: "expert_yearly_min_new",
        label: "Expert yearly minimum",
        help: "R-EXP-4: new subscriptions per year to stay listed.",
        kind: Integer {
            min: 0,
            max: 10_000,
        },
    },
    SettingField {
        key: "password_min_length",
        label: "Minimum password length",
        help: "NIST SP 800-63B: at least 8.",
        kind: Integer { min: 8, max: 128 },
    },
];

impl ProgramSettings {
    /// The settings as key → text, the way the console form shows them.
    pub fn to_form(&self) -> BTreeMap<String, String> {
        FIELDS
            .iter()
            .map(|field| (field.key.to_owned(), self.form_value(field.key)))
            .collect()
    }

    /// Applies a submitted form. Keys absent from `form` keep their value; any
    /// invalid field fails the whole change, so nothing half-applies.
    pub fn apply_form(&self, form: &BTreeMap<String, String>) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let mut next = self.clone();
        for field in FIELDS {
            let Some(raw) = form.get(field.key) else {
                continue;
            };
            if let Err(reason) = next.set(field, raw) {
                errors.add(field.key, reason);
            }
        }
        errors.into_result().map(|()| next)
    }

    fn set(&mut self, field: &SettingField, raw: &str) -> Result<(), String> {
        let raw = raw.trim();
        match field.key {
            "program_name" => self.program_name = clean_text(raw, 80, true)?,
            // https only: the pages' CSP loads images from https: and 'self'.
            "logo_url" => {
                self.logo_url = match raw {
                    "" => None,
                    _ if !raw.starts_with("https://") => {
                        return Err("must be an https:// URL".into());
                    }
                    _ => Some(parse_url(raw)?),
                }
            }
            "brand_color" => self.brand_color = parse_color(raw)?,
            "accent_color" => self.accent_color = parse_color(raw)?,
            "main_page_url" => self.main_page_url = parse_url(raw)?,
            "allowed_landing_domains" => self.allowed_landing_domains = parse_domains(raw)?,
            "referral_param" => self.referral_param = parse_identifier(raw)?,
            "trial_options" => self.trial_options = parse_int_list(raw, field.kind)?,
            "discount_options" => self.discount_options = parse_int_list(raw, field.kind)?,
            "min_withdrawal" => self.min_withdrawal = parse_currency_amounts(raw)?,
            "free_plan" => self.free_plan = clean_text(raw, 40, true)?,
            key => {
                let value = parse_int(raw, field.kind)?;
                *self
                    .integer_mut(key)
                    .ok_or_else(|| format!("unknown setting {key}"))? = value;
            }
        }
        Ok(())
    }

    fn integer_mut(&mut self, key: &str) -> Option<&mut i64> {
        Some(match key {
            "cookie_days" => &mut self.cookie_days,
            "commission_rate" => &mut self.commission_rate,
            "hold_days" => &mut self.hold_days,
            "active_min_new" => &mut self.active_min_new,
            "active_window_months" => &mut self.active_window_months,
            "reseller_discount" => &mut self.reseller_discount,
            "free_seats" => &mut self.free_seats,
            "free_trial_days" => &mut self.free_trial_days,
            "expert_badge_days" => &mut self.expert_badge_days,
            "expert_blog_days" => &mut self.expert_blog_days,
            "expert_yearly_min_new" => &mut self.expert_yearly_min_new,
            "password_min_length" => &mut self.password_min_length,
            _ => return None,
        })
    }

    /// The keys whose values differ, for the audit log's before/after.
    pub fn changed_keys(&self, other: &Self) -> Vec<&'static str> {
        let (a, b) = (self.to_form(), other.to_form());
        FIELDS
            .iter()
            .map(|f| f.key)
            .filter(|key| a.get(*key) != b.get(*key))
            .collect()
    }

    /// CSS custom properties for the brand colours; the values were validated
    /// as hex colours, so they are safe inside a style element.
    pub fn brand_css(&self) -> String {
        format!(
            ":root{{--brand:{};--brand-contrast:#ffffff;--accent:{}}}",
            self.brand_color, self.accent_color
        )
    }

    pub fn password_policy(&self) -> crate::PasswordPolicy {
        crate::PasswordPolicy {
            min_length: self.password_min_length.max(8) as usize,
        }
    }
}

impl ProgramSettings {
    /// One setting as the text the console form shows.
    fn form_value(&self, key: &str) -> String {
        let join = |list: &[i64]| {
            list.iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        match key {
            "program_name" => self.program_name.clone(),
            "logo_url" => self.logo_url.clone().unwrap_or_default(),
            "brand_color" => self.brand_color.clone(),
            "accent_color" => self.accent_color.clone(),
            "main_page_url" => self.main_page_url.clone(),
            "allowed_landing_domains" => self.allowed_landing_domains.join(", "),
            "referral_param" => self.referral_param.clone(),
            "trial_options" => join(&self.trial_options),
            "discount_options" => join(&self.discount_options),
            "min_withdrawal" => self
                .min_withdrawal
                .iter()
                .map(|(currency, amount)| format!("{currency}={amount}"))
                .collect::<Vec<_>>()
                .join(", "),
            "free_plan" => self.free_plan.clone(),
            key => self
                .clone()
                .integer_mut(key)
                .map(|v| v.to_string())
                .unwrap_or_default(),
        }
    }
}

fn parse_int(raw: &str, kind: SettingKind) -> Result<i64, String> {
    let Integer { min, max } = kind else {
        return Err("is not a number setting".into());
    };
    let value: i64 = raw
        .parse()
        .map_err(|_| "must be a whole number".to_owned())?;
    if value < min || value > max {
        return Err(format!("must be between {min} and {max}"));
    }
    Ok(value)
}

fn parse_int_list(raw: &str, kind: SettingKind) -> Result<Vec<i64>, String> {
    let IntegerList { min, max } = kind else {
        return Err("is not a list setting".into());
    };
    let mut values = Vec::new();
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let value: i64 = part
            .parse()
            .map_err(|_| format!("{part:?} is not a whole number"))?;
        if value < min || value > max {
            return Err(format!("each value must be between {min} and {max}"));
        }
        if !values.contains(&value) {
            values.push(value);
        }
    }
    if values.is_empty() {
        return Err("needs at least one value".into());
    }
    values.sort_unstable();
    Ok(values)
}

fn parse_url(raw: &str) -> Result<String, String> {
    let url = url::Url::parse(raw)
        .map_err(|_| "must be a full URL such as https://www.example.com/".to_owned())?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("must be an http or https URL".into());
    }
    if raw.len() > 2000 {
        return Err("must be at most 2000 characters".into());
    }
    Ok(url.to_string())
}

fn parse_color(raw: &str) -> Result<String, String> {
    let hex = raw.strip_prefix('#').unwrap_or("");
    if (hex.len() == 6 || hex.len() == 3) && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(format!("#{}", hex.to_ascii_lowercase()))
    } else {
        Err("must be a hex colour such as #4f46e5".into())
    }
}

fn parse_domains(raw: &str) -> Result<Vec<String>, String> {
    let mut domains = Vec::new();
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let domain = part.to_ascii_lowercase();
        let valid = domain.len() <= 253
            && domain.contains('.')
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !valid {
            return Err(format!("{part:?} is not a domain name such as example.com"));
        }
        if !domains.contains(&domain) {
            domains.push(domain);
        }
    }
    if domains.is_empty() {
        return Err("needs at least one domain".into());
    }
    Ok(domains)
}

fn parse_identifier(raw: &str) -> Result<String, String> {
    if !raw.is_empty()
        && raw.len() <= 32
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        Ok(raw.to_owned())
    } else {
        Err("must be 1–32 letters, digits, '-' or '_'".into())
    }
}

fn parse_currency_amounts(raw: &str) -> Result<BTreeMap<String, i64>, String> {
    let mut map = BTreeMap::new();
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (currency, amount) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?} must look like USD=5000"))?;
        let currency = currency.trim().to_ascii_uppercase();
        if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(format!("{currency:?} is not an ISO 4217 currency code"));
        }
        let amount: i64 = amount.trim().parse().map_err(|_| {
            format!("the amount for {currency} must be a whole number of minor units")
        })?;
        if !(0..=100_000_000).contains(&amount) {
            return Err(format!(
                "the amount for {currency} must be between 0 and 100000000"
            ));
        }
        map.insert(currency, amount);
    }
    if map.is_empty() {
        return Err("needs at least one currency".into());
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_follow_program_md() {
        let s = ProgramSettings::default();
        assert_eq!(s.cookie_days, 120); // R-AFF-3
        assert_eq!(s.trial_options, vec![14, 30, 60]); // R-AFF-2
        assert_eq!(s.discount_options, vec![0, 10, 20]); // R-AFF-2
        assert_eq!(s.commission_rate, 20); // R-COM-1
        assert_eq!(s.hold_days, 30); // R-COM-4
        assert_eq!(s.min_withdrawal["USD"], 5_000); // R-PAY-1
        assert_eq!((s.active_min_new, s.active_window_months), (2, 3)); // R-ACC-4
        assert_eq!(s.reseller_discount, 20); // R-SOL-3
        assert_eq!(
            (s.free_seats, s.free_plan.as_str(), s.free_trial_days),
            (2, "Team", 60)
        ); // R-FREE-1
        assert_eq!((s.expert_badge_days, s.expert_blog_days), (14, 30)); // R-EXP-3
        assert_eq!(s.password_min_length, 10);
    }

    #[test]
    fn every_field_round_trips_through_the_form() {
        let s = ProgramSettings::default();
        assert_eq!(s.apply_form(&s.to_form()).unwrap(), s);
        assert_eq!(s.to_form().len(), FIELDS.len());
    }

    #[test]
    fn valid_changes_apply_and_are_reported() {
        let s = ProgramSettings::default();
        let next = s
            .apply_form(&form(&[
                ("cookie_days", "90"),
                ("min_withdrawal", "usd=5000, EUR=4000"),
            ]))
            .unwrap();
        assert_eq!(next.cookie_days, 90);
        assert_eq!(next.min_withdrawal["EUR"], 4000);
        assert_eq!(s.changed_keys(&next), vec!["cookie_days", "min_withdrawal"]);
    }

    #[test]
    fn one_bad_field_rejects_the_whole_change_and_names_the_field() {
        let s = ProgramSettings::default();
        let errors = s
            .apply_form(&form(&[
                ("cookie_days", "90"),
                ("commission_rate", "120"),
                ("brand_color", "red;}body{"),
                ("main_page_url", "javascript:alert(1)"),
                ("allowed_landing_domains", "evil com"),
                ("trial_options", "14, x"),
            ]))
            .unwrap_err();
        for key in [
            "commission_rate",
            "brand_color",
            "main_page_url",
            "allowed_landing_domains",
            "trial_options",
        ] {
            assert!(errors.get(key).is_some(), "{key} not reported");
        }
        assert!(errors.get("cookie_days").is_none());
    }
}
