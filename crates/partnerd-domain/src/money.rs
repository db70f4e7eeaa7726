//! Money: an ISO 4217 currency and an amount in its minor units (cents, yen …).
//!
//! Amounts are `i64` minor units, never floats, so every sum is exact and both
//! databases store them as plain integers. Arithmetic is checked: an overflow is
//! an error the caller reports, never a panic or a silent wrap, because a wrapped
//! balance would be money appearing from nowhere.

use serde::{Deserialize, Serialize};

/// Active ISO 4217 codes (2025), sorted (looked up by binary search: every
/// billing event parses its currency). Funds codes (`USN`, `CLF` …), precious
/// metals and test codes are left out: nobody pays a subscription in them.
const ISO_4217: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
    "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD",
    "CDF", "CHF", "CLP", "CNY", "COP", "CRC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD",
    "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ",
    "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD", "JOD",
    "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR",
    "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR",
    "MWK", "MXN", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN",
    "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR",
    "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB",
    "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "UYU", "UZS",
    "VED", "VES", "VND", "VUV", "WST", "XAF", "XCD", "XCG", "XOF", "XPF", "YER", "ZAR", "ZMW",
    "ZWG",
];

/// Currencies without a minor unit (ISO 4217 exponent 0).
const EXPONENT_0: &[&str] = &[
    "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND", "VUV",
    "XAF", "XOF", "XPF",
];
/// Currencies with three decimals (ISO 4217 exponent 3).
const EXPONENT_3: &[&str] = &["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"];

/// Why a currency or an amount was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("{0:?} is not a currency code: use three letters such as USD")]
    MalformedCurrency(String),
    #[error("{0} is not an ISO 4217 currency")]
    UnknownCurrency(String),
    #[error("amounts in {left} and {right} cannot be combined")]
    CurrencyMismatch { left: Currency, right: Currency },
    #[error("the amount is too large to compute")]
    Overflow,
}

/// An ISO 4217 currency, always one of the known codes, spelt in upper case.
///
/// Holds a slice of the code table, so it is `Copy` and compares as its code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Currency(&'static str);

impl Currency {
    pub const USD: Currency = Currency("USD");
    pub const EUR: Currency = Currency("EUR");
    pub const GBP: Currency = Currency("GBP");
    pub const JPY: Currency = Currency("JPY");

    /// Parses a three-letter code. Lower case is accepted and upper-cased,
    /// because Stripe sends `usd` while the API and PayPal use `USD`.
    pub fn parse(code: &str) -> Result<Self, MoneyError> {
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(MoneyError::MalformedCurrency(code.to_owned()));
        }
        let mut upper = [0u8; 3];
        upper.copy_from_slice(code.as_bytes());
        upper.make_ascii_uppercase();
        let upper = std::str::from_utf8(&upper).expect("ASCII letters");
        ISO_4217
            .binary_search(&upper)
            .map(|at| Currency(ISO_4217[at]))
            .map_err(|_| MoneyError::UnknownCurrency(upper.to_owned()))
    }

    pub fn code(self) -> &'static str {
        self.0
    }

    /// How many decimals the minor unit has: 2 for USD (cents), 0 for JPY,
    /// 3 for KWD. Used only to show amounts; the ledger counts minor units.
    pub fn exponent(self) -> u32 {
        if EXPONENT_0.contains(&self.0) {
            0
        } else if EXPONENT_3.contains(&self.0) {
            3
        } else {
            2
        }
    }
}

impl std::fmt::Display for Currency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::str::FromStr for Currency {
    type Err = MoneyError;

    fn from_str(code: &str) -> Result<Self, Self::Err> {
        Self::parse(code)
    }
}

impl TryFrom<String> for Currency {
    type Error = MoneyError;

    fn try_from(code: String) -> Result<Self, Self::Error> {
        Self::parse(&code)
    }
}

impl From<Currency> for String {
    fn from(currency: Currency) -> Self {
        currency.0.to_owned()
    }
}

/// Serialised as its code, `"USD"`.
impl Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0)
    }
}

/// Deserialised from a code, validated like [`Currency::parse`].
impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        Self::parse(&code).map_err(serde::de::Error::custom)
    }
}

/// An amount of one currency in minor units. Negative amounts are allowed
/// (a delta, a debt); whether one makes sense is the caller's rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    pub minor: i64,
    pub currency: Currency,
}

impl Money {
    pub const fn new(minor: i64, currency: Currency) -> Self {
        Self { minor, currency }
    }

    pub const fn zero(currency: Currency) -> Self {
        Self::new(0, currency)
    }

    /// Adds two amounts of the same currency; currencies never mix.
    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        let currency = self.same_currency(other)?;
        Ok(Money::new(add(self.minor, other.minor)?, currency))
    }

    /// Subtracts two amounts of the same currency; currencies never mix.
    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        let currency = self.same_currency(other)?;
        Ok(Money::new(sub(self.minor, other.minor)?, currency))
    }

    fn same_currency(self, other: Money) -> Result<Currency, MoneyError> {
        if self.currency == other.currency {
            Ok(self.currency)
        } else {
            Err(MoneyError::CurrencyMismatch {
                left: self.currency,
                right: other.currency,
            })
        }
    }
}

/// Shows the amount with its decimals and code, `1234.50 USD`, `-7 JPY`: the
/// form operators read in breach reports and error messages.
impl std::fmt::Display for Money {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let exponent = self.currency.exponent();
        // Widened so that `i64::MIN` has an absolute value too.
        let magnitude = i128::from(self.minor).unsigned_abs();
        let sign = if self.minor < 0 { "-" } else { "" };
        if exponent == 0 {
            return write!(f, "{sign}{magnitude} {}", self.currency);
        }
        let scale = 10u128.pow(exponent);
        let width = exponent as usize;
        write!(
            f,
            "{sign}{}.{:0width$} {}",
            magnitude / scale,
            magnitude % scale,
            self.currency
        )
    }
}

/// `a + b` in minor units, or [`MoneyError::Overflow`].
pub fn add(a: i64, b: i64) -> Result<i64, MoneyError> {
    a.checked_add(b).ok_or(MoneyError::Overflow)
}

/// `a − b` in minor units, or [`MoneyError::Overflow`].
pub fn sub(a: i64, b: i64) -> Result<i64, MoneyError> {
    a.checked_sub(b).ok_or(MoneyError::Overflow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_parse_in_either_case_and_show_in_upper_case() {
        assert_eq!(Currency::parse("USD"), Ok(Currency::USD));
        assert_eq!(Currency::parse("usd"), Ok(Currency::USD));
        assert_eq!(Currency::parse("Eur").map(Currency::code), Ok("EUR"));
        assert_eq!(Currency::JPY.to_string(), "JPY");
    }

    #[test]
    fn malformed_and_unknown_codes_are_refused() {
        for bad in ["", "US", "USDD", "U$D", "12A", "ÜSD"] {
            assert!(
                matches!(Currency::parse(bad), Err(MoneyError::MalformedCurrency(_))),
                "{bad}"
            );
        }
        assert_eq!(
            Currency::parse("ABC"),
            Err(MoneyError::UnknownCurrency("ABC".into()))
        );
    }

    #[test]
    fn exponents_follow_iso_4217() {
        assert_eq!(Currency::USD.exponent(), 2);
        assert_eq!(Currency::EUR.exponent(), 2);
        assert_eq!(Currency::GBP.exponent(), 2);
        assert_eq!(Currency::JPY.exponent(), 0);
        assert_eq!(Currency::parse("KRW").map(Currency::exponent), Ok(0));
        assert_eq!(Currency::parse("KWD").map(Currency::exponent), Ok(3));
    }

    #[test]
    fn every_listed_code_parses_back_to_itself() {
        assert!(ISO_4217.is_sorted(), "the code table is sorted");
        for code in ISO_4217 {
            assert_eq!(Currency::parse(code).map(Currency::code), Ok(*code));
        }
        for code in EXPONENT_0.iter().chain(EXPONENT_3) {
            assert!(Currency::parse(code).is_ok(), "{code} is in the code table");
        }
    }

    #[test]
    fn amounts_show_with_their_decimals() {
        assert_eq!(
            Money::new(240_000, Currency::USD).to_string(),
            "2400.00 USD"
        );
        assert_eq!(Money::new(-5, Currency::USD).to_string(), "-0.05 USD");
        assert_eq!(Money::new(1234, Currency::JPY).to_string(), "1234 JPY");
        let kwd = Currency::parse("KWD").map(|c| Money::new(1_005, c).to_string());
        assert_eq!(kwd.as_deref(), Ok("1.005 KWD"));
        assert_eq!(
            Money::new(i64::MIN, Currency::USD).to_string(),
            "-92233720368547758.08 USD"
        );
    }

    #[test]
    fn overflow_is_an_error_not_a_wrap() {
        let max = Money::new(i64::MAX, Currency::USD);
        assert_eq!(
            max.checked_add(Money::new(1, Currency::USD)),
            Err(MoneyError::Overflow)
        );
        assert_eq!(
            Money::new(i64::MIN, Currency::USD).checked_sub(Money::new(1, Currency::USD)),
            Err(MoneyError::Overflow)
        );
        assert_eq!(add(1, 2), Ok(3));
        assert_eq!(sub(i64::MIN, 1), Err(MoneyError::Overflow));
    }

    #[test]
    fn currencies_never_mix() {
        let usd = Money::new(100, Currency::USD);
        let eur = Money::new(100, Currency::EUR);
        assert_eq!(
            usd.checked_add(eur),
            Err(MoneyError::CurrencyMismatch {
                left: Currency::USD,
                right: Currency::EUR
            })
        );
    }

    #[test]
    fn currencies_convert_to_and_from_their_code() {
        assert_eq!(String::from(Currency::EUR), "EUR");
        assert_eq!(Currency::try_from("gbp".to_owned()), Ok(Currency::GBP));
    }
}
