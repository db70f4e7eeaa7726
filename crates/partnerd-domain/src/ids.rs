//! Public identifiers.

use rand::Rng;
use serde::{Deserialize, Serialize};

const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// A partner's public id (R-AFF-1): short, URL-safe and unguessable.
///
/// Eleven characters from a 56-letter alphabet without look-alikes (`0/O`,
/// `1/l/I`) give about 64 bits, so ids cannot be enumerated from `/r/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PublicPartnerId(String);

impl PublicPartnerId {
    pub const LEN: usize = 11;

    pub fn generate(rng: &mut impl Rng) -> Self {
        let id = (0..Self::LEN)
            .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
            .collect();
        Self(id)
    }

    /// Accepts only strings that could have been generated, so a malformed id
    /// is refused before anything looks it up.
    pub fn parse(value: &str) -> Option<Self> {
        (value.len() == Self::LEN && value.bytes().all(|b| ALPHABET.contains(&b)))
            .then(|| Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for PublicPartnerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A random secret token (sessions, CSRF, password reset links, API keys):
/// 32 bytes from the OS generator, URL-safe.
pub fn random_token(rng: &mut impl Rng) -> String {
    const URL_SAFE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    (0..43)
        .map(|_| URL_SAFE[rng.gen_range(0..64)] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_back_and_differ() {
        let mut rng = rand::thread_rng();
        let a = PublicPartnerId::generate(&mut rng);
        let b = PublicPartnerId::generate(&mut rng);
        assert_ne!(a, b);
        assert_eq!(PublicPartnerId::parse(a.as_str()), Some(a));
    }

    #[test]
    fn malformed_ids_are_refused() {
        for bad in ["", "short", "has/slash00", "O0O0O0O0O0O", "abcdefghijkl"] {
            assert_eq!(PublicPartnerId::parse(bad), None, "{bad}");
        }
    }
}
