//! Benchmark tools for partnerd's hot path (`GET /r/{partner_id}`), used by
//! `bench/redirect.sh`:
//!
//! - `partnerd-baseline`: a bare hyper server answering every request with the same
//!   302 (a `Location` and a `Set-Cookie` of a real redirect's size, nothing else). It
//!   is the upper bound the redirect is measured against.
//! - `partnerd-load`: an open-loop load generator at a fixed request rate that records
//!   every request's latency (corrected for coordinated omission) and prints
//!   percentiles, since Debian's `wrk` cannot pace requests.
//!
//! The shared bits live here so they can be tested.

use std::time::Duration;

/// A landing URL the size of partnerd's (about 180 bytes): the vendor's page with the
/// UTM parameters and a signed referral token in `ref`.
pub const DEFAULT_LOCATION: &str = "https://www.example-vendor.com/?utm_source=partner&utm_medium=affiliate&utm_campaign=default_link&utm_term=&ref=AQAAAZOx3cJ7kP2qZ0x1AAAAAAAAAAGdYw3nq4T1Hc8Ru5mK2xVzbE1fQw_8jLsT3vQa";

/// A referral cookie the size of partnerd's (about 140 bytes): the same token, valid
/// 120 days.
pub const DEFAULT_SET_COOKIE: &str = "partnerd_ref=AQAAAZOx3cJ7kP2qZ0x1AAAAAAAAAAGdYw3nq4T1Hc8Ru5mK2xVzbE1fQw_8jLsT3vQa; Max-Age=10368000; Path=/; SameSite=Lax; Secure; HttpOnly";

/// Latency percentiles of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Percentiles {
    pub count: usize,
    pub p50: Duration,
    pub p90: Duration,
    pub p95: Duration,
    pub p99: Duration,
    pub p999: Duration,
    pub max: Duration,
}

impl Percentiles {
    /// Percentiles of latencies given in microseconds; sorts them in place. `None`
    /// when there are none.
    pub fn from_micros(samples: &mut [u32]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let at = |p: f64| Duration::from_micros(u64::from(percentile(samples, p)));
        Some(Self {
            count: samples.len(),
            p50: at(50.0),
            p90: at(90.0),
            p95: at(95.0),
            p99: at(99.0),
            p999: at(99.9),
            max: at(100.0),
        })
    }
}

/// The nearest-rank percentile `p` (0–100) of sorted, non-empty samples: the smallest
/// sample that at least `p` % of the samples are less than or equal to.
pub fn percentile(sorted: &[u32], p: f64) -> u32 {
    assert!(!sorted.is_empty(), "percentile of no samples");
    let n = sorted.len();
    // Rounded up: the rank covering p % of the samples, at least the first.
    let rank = ((p.clamp(0.0, 100.0) / 100.0) * n as f64).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

/// Parses a duration such as `10s`, `500ms`, `2m` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("not a duration: {text:?} (try 10s, 500ms, 2m)"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("unknown unit in {text:?}: use ms, s or m")),
    };
    if !(seconds.is_finite() && seconds > 0.0) {
        return Err(format!("the duration must be positive: {text:?}"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Splits a `Name: value` header given on the command line.
pub fn parse_header(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| format!("not a header (want 'Name: value'): {text:?}"))?;
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("a header needs a name: {text:?}"));
    }
    Ok((name.to_owned(), value.trim().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_headers_have_a_real_redirects_size() {
        assert!((170..=190).contains(&DEFAULT_LOCATION.len()));
        assert!((130..=150).contains(&DEFAULT_SET_COOKIE.len()));
        assert!(DEFAULT_LOCATION.contains("utm_source=partner&utm_medium=affiliate"));
        assert!(DEFAULT_SET_COOKIE.contains("Max-Age=10368000"), "120 days");
        for value in [DEFAULT_LOCATION, DEFAULT_SET_COOKIE] {
            assert!(hyper::header::HeaderValue::from_str(value).is_ok());
        }
    }

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&samples, 50.0), 50);
        assert_eq!(percentile(&samples, 99.0), 99);
        assert_eq!(percentile(&samples, 99.9), 100);
        assert_eq!(percentile(&samples, 100.0), 100);
        assert_eq!(percentile(&samples, 0.0), 1);
        assert_eq!(percentile(&[7], 99.0), 7);
    }

    #[test]
    fn percentiles_sort_their_samples() {
        let mut samples = vec![5_000, 1_000, 3_000, 2_000, 4_000];
        let p = Percentiles::from_micros(&mut samples).unwrap();
        assert_eq!(p.count, 5);
        assert_eq!(p.p50, Duration::from_millis(3));
        assert_eq!(p.max, Duration::from_millis(5));
        assert_eq!(Percentiles::from_micros(&mut []), None);
    }

    #[test]
    fn durations_and_headers_parse() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("10h").is_err());
        assert_eq!(
            parse_header("User-Agent: Mozilla/5.0 (X11)"),
            Ok(("User-Agent".into(), "Mozilla/5.0 (X11)".into()))
        );
        assert!(parse_header("no colon").is_err());
    }
}
