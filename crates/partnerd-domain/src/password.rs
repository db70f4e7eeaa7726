//! Password rules after NIST SP 800-63B §5.1.1.2: a minimum length, no
//! composition rules, and a refusal of values known to be common or derived
//! from the account itself.

use std::collections::HashSet;
use std::sync::LazyLock;

/// The most common passwords, lower-cased, from public top-password lists.
static COMMON: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("common_passwords.txt")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect()
});

/// Long enough for passphrases, short enough that hashing it is no denial of service.
pub const MAX_PASSWORD_CHARS: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicy {
    pub min_length: usize,
}

/// A password that passed the policy. Never printed: its `Debug` is masked.
#[derive(Clone)]
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

impl Password {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl PasswordPolicy {
    /// Checks a new password. `context` holds words the password must not be
    /// (the account's email and its local part, the person's name), because an
    /// attacker tries those first.
    pub fn check(&self, candidate: &str, context: &[&str]) -> Result<Password, String> {
        let chars = candidate.chars().count();
        if chars == 0 {
            return Err("is required".into());
        }
        if chars < self.min_length {
            return Err(format!("must be at least {} characters", self.min_length));
        }
        if chars > MAX_PASSWORD_CHARS {
            return Err(format!("must be at most {MAX_PASSWORD_CHARS} characters"));
        }
        let lower = candidate.to_lowercase();
        if COMMON.contains(lower.as_str()) || is_trivial(&lower) {
            return Err(
                "is too common: pick something harder to guess, such as a few unrelated words"
                    .into(),
            );
        }
        for word in context {
            let word = word.trim().to_lowercase();
            if word.len() >= 4
                && (lower == word || lower == word.split('@').next().unwrap_or_default())
            {
                return Err("must not be your email address or name".into());
            }
        }
        Ok(Password(candidate.to_owned()))
    }
}

/// One repeated character, or a run of consecutive characters (`1234567890`,
/// `abcdefghij`, `9876543210`): they are in every cracker's first guesses.
fn is_trivial(lower: &str) -> bool {
    let bytes = lower.as_bytes();
    if bytes.windows(2).all(|w| w[0] == w[1]) {
        return true;
    }
    let ascending = bytes.windows(2).all(|w| w[1] as i16 - w[0] as i16 == 1);
    let descending = bytes.windows(2).all(|w| w[0] as i16 - w[1] as i16 == 1);
    ascending || descending
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: PasswordPolicy = PasswordPolicy { min_length: 10 };

    #[test]
    fn long_passphrases_without_composition_rules_are_accepted() {
        assert!(POLICY.check("violet harbour lantern", &[]).is_ok());
        assert!(POLICY.check("alllowercaseletters", &[]).is_ok());
    }

    #[test]
    fn short_common_and_trivial_passwords_are_refused() {
        assert!(POLICY.check("", &[]).is_err());
        assert!(
            POLICY
                .check("Sh0rt!", &[])
                .unwrap_err()
                .contains("at least 10")
        );
        for common in [
            "1234567890",
            "password123",
            "Qwertyuiop",
            "aaaaaaaaaaaa",
            "abcdefghijk",
        ] {
            assert!(POLICY.check(common, &[]).is_err(), "{common} accepted");
        }
        assert!(POLICY.check(&"x".repeat(300), &[]).is_err());
    }

    #[test]
    fn the_account_email_is_refused_as_password() {
        let err = POLICY
            .check("ann.smith.home", &["ann.smith.home@example.com"])
            .unwrap_err();
        assert!(err.contains("email"));
    }

    #[test]
    fn password_debug_is_masked() {
        let password = POLICY.check("violet harbour lantern", &[]).unwrap();
        assert_eq!(format!("{password:?}"), "Password(***)");
    }
}
