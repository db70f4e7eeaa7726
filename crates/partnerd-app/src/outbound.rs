//! Outbound webhooks: signing per the Standard Webhooks spec, and the check
//! that keeps them away from private networks.
//!
//! **Signing.** Each delivery carries `webhook-id` (the message id, the same on
//! every retry), `webhook-timestamp` (Unix seconds of this attempt) and
//! `webhook-signature: v1,{base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))}`,
//! where the key is the bytes behind the endpoint's `whsec_{base64}` secret.
//! During a rotation the header carries one `v1,…` per secret, separated by
//! spaces. Any Standard Webhooks (or Svix) library verifies what we send; the
//! spec's own test vector is a unit test below.
//!
//! **Targets.** A webhook URL is a request partnerd makes on an admin's behalf,
//! so it must not become a way to reach the machine's own services or the
//! private network (SSRF). [`classify`] names every non-public address range
//! (IPv4 and IPv6, looking through IPv4-mapped, NAT64 and 6to4 forms);
//! [`check_url`] refuses a URL whose literal host is one, and
//! [`resolve_target`] resolves a host name and refuses it if *any* address is
//! one. Delivery must then connect to exactly the checked addresses
//! ([`ResolvedTarget::client`]), never resolve again: otherwise a name that
//! answers "public" to the check and "127.0.0.1" to the connection (DNS
//! rebinding) walks straight through.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use hmac::{Hmac, Mac};
use partnerd_domain::Timestamp;
use rand::RngCore as _;
use rand::distributions::{Alphanumeric, DistString as _};
use sha2::Sha256;
use subtle::ConstantTimeEq as _;
use url::{Host, Url};

type HmacSha256 = Hmac<Sha256>;

/// The prefix that marks a Standard Webhooks secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// Size of the secrets we generate. The spec asks for 24 to 64 random bytes.
const GENERATED_SECRET_BYTES: usize = 32;
const MIN_SECRET_BYTES: usize = 24;
const MAX_SECRET_BYTES: usize = 64;

/// How long resolving a webhook host may take before the delivery counts as
/// failed (and is retried later).
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);

/// The header names, as the spec spells them.
pub const HEADER_ID: &str = "webhook-id";
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
pub const HEADER_SIGNATURE: &str = "webhook-signature";

/// An endpoint's signing secret. Shown to the admin once, as `whsec_…`;
/// never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(Vec<u8>);

/// Why a secret was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("the secret is not base64 (after the optional `whsec_` prefix)")]
    NotBase64,
    #[error("the secret must hold 24 to 64 bytes, this one holds {0}")]
    WrongLength(usize),
}

impl WebhookSecret {
    /// A fresh secret of 32 random bytes from the operating system.
    pub fn generate() -> Self {
        let mut bytes = vec![0u8; GENERATED_SECRET_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// Reads `whsec_{base64}`; like the reference libraries, the prefix is
    /// optional.
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let text = text.trim();
        let encoded = text.strip_prefix(SECRET_PREFIX).unwrap_or(text);
        let bytes = STANDARD
            .decode(encoded)
            .or_else(|_| STANDARD_NO_PAD.decode(encoded))
            .map_err(|_| SecretError::NotBase64)?;
        if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&bytes.len()) {
            return Err(SecretError::WrongLength(bytes.len()));
        }
        Ok(Self(bytes))
    }

    /// The secret as `whsec_{base64}`: for showing to the admin once and for
    /// storing. Named so that every use stands out in review.
    pub fn expose(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.0))
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.0).expect("HMAC takes keys of any length")
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(\"***\")")
    }
}

/// A new message id, `msg_` and 24 random letters and digits: stable across
/// retries of one message, so receivers deduplicate on it.
pub fn new_message_id() -> String {
    format!(
        "msg_{}",
        Alphanumeric.sample_string(&mut rand::rngs::OsRng, 24)
    )
}

/// One signature, `v1,{base64}`, of `body` sent as message `message_id` at
/// `timestamp` (Unix seconds).
pub fn sign(secret: &WebhookSecret, message_id: &str, timestamp: i64, body: &[u8]) -> String {
    format!(
        "v1,{}",
        STANDARD.encode(raw_signature(secret, message_id, timestamp, body))
    )
}

fn raw_signature(
    secret: &WebhookSecret,
    message_id: &str,
    timestamp: i64,
    body: &[u8],
) -> [u8; 32] {
    let mut mac = secret.mac();
    mac.update(message_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// The three headers of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    pub id: String,
    pub timestamp: String,
    /// One `v1,…` per secret, separated by spaces.
    pub signature: String,
}

impl SignedHeaders {
    /// `(name, value)` pairs, ready for a request builder.
    pub fn pairs(&self) -> [(&'static str, &str); 3] {
        [
            (HEADER_ID, &self.id),
            (HEADER_TIMESTAMP, &self.timestamp),
            (HEADER_SIGNATURE, &self.signature),
        ]
    }
}

/// Signs one attempt with every current secret of the endpoint (one during
/// normal operation, two while a rotation lets receivers switch over).
pub fn signed_headers(
    secrets: &[WebhookSecret],
    message_id: &str,
    timestamp: i64,
    body: &[u8],
) -> SignedHeaders {
    let signature = secrets
        .iter()
        .map(|secret| sign(secret, message_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ");
    SignedHeaders {
        id: message_id.to_owned(),
        timestamp: timestamp.to_string(),
        signature,
    }
}

/// Why a receiver would refuse a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("webhook-timestamp is not a number")]
    BadTimestamp,
    #[error("webhook-timestamp is outside the tolerance")]
    OutsideTolerance,
    #[error("no v1 signature matches")]
    NoMatchingSignature,
}

/// The receiver's side, as the spec describes it: some `v1` signature in
/// `signature_header` matches under `secret`, and the timestamp is within
/// `tolerance_seconds` of `now`. partnerd does not receive Standard Webhooks;
/// this is here so tests (and the documentation for vendors) check what a
/// receiver checks.
pub fn verify(
    secret: &WebhookSecret,
    headers: &SignedHeaders,
    body: &[u8],
    now: Timestamp,
    tolerance_seconds: i64,
) -> Result<(), VerifyError> {
    let timestamp: i64 = headers
        .timestamp
        .parse()
        .map_err(|_| VerifyError::BadTimestamp)?;
    let expected = raw_signature(secret, &headers.id, timestamp, body);
    let matched = headers
        .signature
        .split(' ')
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|encoded| STANDARD.decode(encoded).ok())
        .fold(subtle::Choice::from(0), |matched, candidate| {
            matched | expected.as_slice().ct_eq(&candidate)
        });
    if !bool::from(matched) {
        return Err(VerifyError::NoMatchingSignature);
    }
    if (now.millis() / 1000 - timestamp).abs() > tolerance_seconds {
        return Err(VerifyError::OutsideTolerance);
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Targets

/// What kind of address an IP is, for deciding whether partnerd may send to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressClass {
    /// Reachable on the internet: always allowed.
    Public,
    /// `0.0.0.0/8`, `::`. Connecting to it reaches the local machine on Linux.
    Unspecified,
    /// `127.0.0.0/8`, `::1`, and the names `localhost` / `*.localhost`.
    Loopback,
    /// RFC 1918 (`10/8`, `172.16/12`, `192.168/16`) and IPv6 site-local `fec0::/10`.
    Private,
    /// `169.254.0.0/16` (cloud metadata services live here), `fe80::/10`.
    LinkLocal,
    /// IPv6 unique-local `fc00::/7`, and NAT64 local-use `64:ff9b:1::/48`.
    UniqueLocal,
    /// Carrier-grade NAT shared space `100.64.0.0/10`.
    SharedCgnat,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// Documentation, benchmarking, protocol-assignment, discard, tunnel and
    /// future-use ranges: never a real web server on the internet.
    Reserved,
}

impl AddressClass {
    /// Whether an admin's "allow private targets" can let this class through.
    /// Unspecified, multicast and broadcast addresses are never a web server:
    /// refusing them even when allowed closes the `0.0.0.0`-means-localhost trick.
    pub fn can_be_allowed(self) -> bool {
        !matches!(self, Self::Unspecified | Self::Multicast | Self::Broadcast)
    }

    fn describe(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Unspecified => "unspecified",
            Self::Loopback => "loopback",
            Self::Private => "private",
            Self::LinkLocal => "link-local",
            Self::UniqueLocal => "unique-local",
            Self::SharedCgnat => "shared (carrier-grade NAT)",
            Self::Multicast => "multicast",
            Self::Broadcast => "broadcast",
            Self::Reserved => "reserved",
        }
    }
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// Whether private targets are allowed: an admin's decision per endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    pub allow_private: bool,
}

impl TargetPolicy {
    /// Only public addresses: the default.
    pub const PUBLIC_ONLY: Self = Self {
        allow_private: false,
    };
    /// Private addresses too, as allowed by an admin.
    pub const ALLOW_PRIVATE: Self = Self {
        allow_private: true,
    };

    pub fn permits(self, class: AddressClass) -> bool {
        class == AddressClass::Public || (self.allow_private && class.can_be_allowed())
    }
}

/// Why a webhook target was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("the webhook URL is not valid: {0}")]
    InvalidUrl(String),
    #[error("webhook URLs must use http or https, not {0}")]
    Scheme(String),
    #[error("the webhook URL has no host")]
    NoHost,
    #[error("{host} is a {class} address; only an admin can allow a non-public target")]
    Refused {
        host: String,
        address: Option<IpAddr>,
        class: AddressClass,
    },
    #[error("{host} could not be resolved: {reason}")]
    Resolve { host: String, reason: String },
}

/// The class of `ip`. IPv4 addresses embedded in IPv6 (IPv4-mapped,
/// IPv4-compatible, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) are judged by the
/// IPv4 address they lead to.
pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, network: [u8; 4], bits: u32) -> bool {
    let mask = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits)
    };
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(network)) & mask
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    use AddressClass::*;
    const RANGES: &[([u8; 4], u32, AddressClass)] = &[
        ([0, 0, 0, 0], 8, Unspecified),
        ([10, 0, 0, 0], 8, Private),
        ([100, 64, 0, 0], 10, SharedCgnat),
        ([127, 0, 0, 0], 8, Loopback),
        ([169, 254, 0, 0], 16, LinkLocal),
        ([172, 16, 0, 0], 12, Private),
        ([192, 0, 0, 0], 24, Reserved),   // IETF protocol assignments
        ([192, 0, 2, 0], 24, Reserved),   // TEST-NET-1
        ([192, 88, 99, 0], 24, Reserved), // 6to4 relay anycast (deprecated)
        ([192, 168, 0, 0], 16, Private),
        ([198, 18, 0, 0], 15, Reserved),   // benchmarking
        ([198, 51, 100, 0], 24, Reserved), // TEST-NET-2
        ([203, 0, 113, 0], 24, Reserved),  // TEST-NET-3
        ([224, 0, 0, 0], 4, Multicast),
        ([255, 255, 255, 255], 32, Broadcast),
        ([240, 0, 0, 0], 4, Reserved), // future use
    ];
    RANGES
        .iter()
        .find(|(network, bits, _)| in_v4(ip, *network, *bits))
        .map_or(Public, |(_, _, class)| *class)
}

fn in_v6(ip: Ipv6Addr, network: Ipv6Addr, bits: u32) -> bool {
    let mask = if bits == 0 {
        0
    } else {
        u128::MAX << (128 - bits)
    };
    u128::from(ip) & mask == u128::from(network) & mask
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    use AddressClass::*;
    let bits = u128::from(ip);
    if ip.is_unspecified() {
        return Unspecified;
    }
    if ip.is_loopback() {
        return Loopback;
    }
    // ::ffff:a.b.c.d — the IPv4 address itself, as a dual-stack socket sees it.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    // ::a.b.c.d (deprecated IPv4-compatible): judged by the IPv4 address, and
    // never public, since no one serves the web on these any more.
    if bits >> 32 == 0 {
        return match classify_v4(Ipv4Addr::from(bits as u32)) {
            Public => Reserved,
            class => class,
        };
    }
    let embedded_low_32 = || Ipv4Addr::from(bits as u32);
    let ranges: [(Ipv6Addr, u32, AddressClass); 12] = [
        (
            Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0),
            48,
            UniqueLocal,
        ),
        (Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64, Reserved), // discard-only
        (Ipv6Addr::new(0x2001, 0x2, 0, 0, 0, 0, 0, 0), 48, Reserved), // benchmarking
        (Ipv6Addr::new(0x2001, 0x10, 0, 0, 0, 0, 0, 0), 28, Reserved), // ORCHID
        (Ipv6Addr::new(0x2001, 0x20, 0, 0, 0, 0, 0, 0), 28, Reserved), // ORCHIDv2
        (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32, Reserved), // documentation
        (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20, Reserved), // documentation
        (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 32, Reserved), // Teredo
        (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7, UniqueLocal),
        (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10, LinkLocal),
        (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10, Private), // site-local
        (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8, Multicast),
    ];
    if let Some((_, _, class)) = ranges
        .iter()
        .find(|(network, prefix, _)| in_v6(ip, *network, *prefix))
    {
        return *class;
    }
    // NAT64 well-known prefix: the packet goes to the embedded IPv4 address.
    if in_v6(ip, Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96) {
        return classify_v4(embedded_low_32());
    }
    // 6to4: 2002:AABB:CCDD::/48 routes through the IPv4 address AA.BB.CC.DD.
    if in_v6(ip, Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16) {
        return classify_v4(Ipv4Addr::from((bits >> 80) as u32));
    }
    // Everything outside global unicast 2000::/3 is unassigned.
    if in_v6(ip, Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3) {
        Public
    } else {
        Reserved
    }
}

/// Whether `policy` lets partnerd send to `ip`.
pub fn check_address(ip: IpAddr, policy: TargetPolicy) -> Result<(), TargetError> {
    let class = classify(ip);
    if policy.permits(class) {
        Ok(())
    } else {
        Err(TargetError::Refused {
            host: ip.to_string(),
            address: Some(ip),
            class,
        })
    }
}

/// The pure part of the check, for when an admin saves an endpoint: the URL
/// parses, is http(s), has a host, and a literal IP host (or `localhost`) is
/// allowed by `policy`. A host name still has to pass [`resolve_target`] at
/// each delivery.
pub fn check_url(url: &str, policy: TargetPolicy) -> Result<Url, TargetError> {
    let url = Url::parse(url.trim()).map_err(|e| TargetError::InvalidUrl(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(TargetError::Scheme(url.scheme().to_owned()));
    }
    let refused = |host: &str, address: Option<IpAddr>, class| TargetError::Refused {
        host: host.to_owned(),
        address,
        class,
    };
    match url.host().ok_or(TargetError::NoHost)? {
        Host::Ipv4(v4) => {
            let class = classify_v4(v4);
            if !policy.permits(class) {
                return Err(refused(&v4.to_string(), Some(IpAddr::V4(v4)), class));
            }
        }
        Host::Ipv6(v6) => {
            let class = classify_v6(v6);
            if !policy.permits(class) {
                return Err(refused(&v6.to_string(), Some(IpAddr::V6(v6)), class));
            }
        }
        Host::Domain(domain) => {
            let name = domain.trim_end_matches('.').to_ascii_lowercase();
            if (name == "localhost" || name.ends_with(".localhost"))
                && !policy.permits(AddressClass::Loopback)
            {
                return Err(refused(domain, None, AddressClass::Loopback));
            }
        }
    }
    Ok(url)
}

/// A checked target: the URL and every address its host resolved to, all
/// allowed. Deliver with [`ResolvedTarget::client`], which connects only to
/// these addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedTarget {
    pub url: Url,
    /// The host name, or `None` when the URL names an IP address.
    pub domain: Option<String>,
    pub addresses: Vec<SocketAddr>,
}

impl ResolvedTarget {
    /// An HTTP client for this target: host name pinned to the checked
    /// addresses (no second DNS lookup), no redirects (a `302` to
    /// `http://127.0.0.1/` must not be followed), no proxy from the
    /// environment, and `timeout` for the whole request.
    pub fn client(&self, timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)));
        if let Some(domain) = &self.domain {
            builder = builder.resolve_to_addrs(domain, &self.addresses);
        }
        builder.build()
    }
}

/// Checks `url` and resolves its host; refused if any resolved address is not
/// allowed by `policy` (a name that mixes public and private answers is the
/// DNS-rebinding pattern, so it is refused whole).
pub async fn resolve_target(
    url: &str,
    policy: TargetPolicy,
) -> Result<ResolvedTarget, TargetError> {
    let url = check_url(url, policy)?;
    let port = url.port_or_known_default().ok_or(TargetError::NoHost)?;
    let domain = match url.host() {
        Some(Host::Ipv4(v4)) => {
            let address = SocketAddr::new(IpAddr::V4(v4), port);
            return Ok(ResolvedTarget {
                url,
                domain: None,
                addresses: vec![address],
            });
        }
        Some(Host::Ipv6(v6)) => {
            let address = SocketAddr::new(IpAddr::V6(v6), port);
            return Ok(ResolvedTarget {
                url,
                domain: None,
                addresses: vec![address],
            });
        }
        Some(Host::Domain(domain)) => domain.to_owned(),
        None => return Err(TargetError::NoHost),
    };
    let resolve_error = |reason: String| TargetError::Resolve {
        host: domain.clone(),
        reason,
    };
    let resolved = tokio::time::timeout(
        RESOLVE_TIMEOUT,
        tokio::net::lookup_host((domain.as_str(), port)),
    )
    .await
    .map_err(|_| resolve_error("timed out".to_owned()))?
    .map_err(|e| resolve_error(e.to_string()))?
    .collect::<Vec<_>>();
    let mut addresses: Vec<SocketAddr> = Vec::new();
    for address in resolved {
        let class = classify(address.ip());
        if !policy.permits(class) {
            return Err(TargetError::Refused {
                host: domain,
                address: Some(address.ip()),
                class,
            });
        }
        if !addresses.contains(&address) {
            addresses.push(address);
        }
    }
    if addresses.is_empty() {
        return Err(resolve_error("no address".to_owned()));
    }
    Ok(ResolvedTarget {
        url,
        domain: Some(domain),
        addresses,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vector published with the Standard Webhooks reference
    /// libraries: matching it is what says any receiver's library accepts ours.
    #[test]
    fn signatures_match_the_standard_webhooks_test_vector() {
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            sign(
                &secret,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn the_whsec_prefix_is_optional_when_reading_a_secret() {
        let with = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let without = WebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(with, without);
        assert_eq!(with.expose(), "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    }

    #[test]
    fn secrets_that_are_not_base64_or_too_short_are_refused() {
        assert_eq!(
            WebhookSecret::parse("whsec_not base64!"),
            Err(SecretError::NotBase64)
        );
        assert_eq!(
            WebhookSecret::parse("whsec_c2hvcnQ="),
            Err(SecretError::WrongLength(5))
        );
    }

    #[test]
    fn generated_secrets_are_fresh_and_round_trip() {
        let a = WebhookSecret::generate();
        let b = WebhookSecret::generate();
        assert_ne!(a, b);
        assert!(a.expose().starts_with("whsec_"));
        assert_eq!(WebhookSecret::parse(&a.expose()).unwrap(), a);
        assert_eq!(format!("{a:?}"), "WebhookSecret(\"***\")");
    }

    #[test]
    fn message_ids_look_like_the_specs_and_differ() {
        let id = new_message_id();
        assert!(id.starts_with("msg_") && id.len() == 28, "{id}");
        assert_ne!(id, new_message_id());
    }

    #[test]
    fn a_rotation_signs_with_every_secret_and_a_receiver_with_either_accepts() {
        let old = WebhookSecret::generate();
        let new = WebhookSecret::generate();
        let body = br#"{"type":"commission.created"}"#;
        let headers = signed_headers(&[old.clone(), new.clone()], "msg_1", 1_700_000_000, body);
        assert_eq!(headers.signature.split(' ').count(), 2);
        let now = Timestamp::from_millis(1_700_000_010_000);
        assert_eq!(verify(&old, &headers, body, now, 300), Ok(()));
        assert_eq!(verify(&new, &headers, body, now, 300), Ok(()));
        let other = WebhookSecret::generate();
        assert_eq!(
            verify(&other, &headers, body, now, 300),
            Err(VerifyError::NoMatchingSignature)
        );
        assert_eq!(
            verify(&old, &headers, b"{}", now, 300),
            Err(VerifyError::NoMatchingSignature)
        );
        let late = Timestamp::from_millis(1_700_001_000_000);
        assert_eq!(
            verify(&old, &headers, body, late, 300),
            Err(VerifyError::OutsideTolerance)
        );
        assert_eq!(
            headers.pairs().map(|(name, _)| name),
            ["webhook-id", "webhook-timestamp", "webhook-signature"]
        );
    }

    fn class(ip: &str) -> AddressClass {
        classify(ip.parse().unwrap())
    }

    #[test]
    fn non_public_ipv4_ranges_are_named() {
        use AddressClass::*;
        for (ip, expected) in [
            ("0.0.0.0", Unspecified),
            ("0.1.2.3", Unspecified),
            ("127.0.0.1", Loopback),
            ("127.255.255.254", Loopback),
            ("10.1.2.3", Private),
            ("172.16.0.1", Private),
            ("172.31.255.255", Private),
            ("192.168.1.1", Private),
            ("169.254.169.254", LinkLocal),
            ("100.64.0.1", SharedCgnat),
            ("100.127.255.255", SharedCgnat),
            ("224.0.0.1", Multicast),
            ("239.255.255.250", Multicast),
            ("255.255.255.255", Broadcast),
            ("240.0.0.1", Reserved),
            ("192.0.2.1", Reserved),
            ("198.18.0.1", Reserved),
            ("192.0.0.8", Reserved),
        ] {
            assert_eq!(class(ip), expected, "{ip}");
        }
    }

    #[test]
    fn public_ipv4_neighbours_of_the_ranges_are_public() {
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "172.15.255.255",
            "172.32.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "169.253.255.255",
            "192.167.255.255",
            "11.0.0.0",
            "223.255.255.255",
        ] {
            assert_eq!(class(ip), AddressClass::Public, "{ip}");
        }
    }

    #[test]
    fn non_public_ipv6_ranges_are_named_including_embedded_ipv4() {
        use AddressClass::*;
        for (ip, expected) in [
            ("::", Unspecified),
            ("::1", Loopback),
            ("fe80::1", LinkLocal),
            ("fc00::1", UniqueLocal),
            ("fd12:3456::1", UniqueLocal),
            ("ff02::1", Multicast),
            ("fec0::1", Private),
            ("2001:db8::1", Reserved),
            ("2001:0:4136:e378::1", Reserved),
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:10.0.0.1", Private),
            ("::ffff:169.254.169.254", LinkLocal),
            ("::ffff:8.8.8.8", Public),
            ("::127.0.0.1", Loopback),
            ("::8.8.8.8", Reserved),
            ("64:ff9b::7f00:1", Loopback),
            ("64:ff9b::808:808", Public),
            ("64:ff9b:1::1", UniqueLocal),
            ("2002:7f00:1::1", Loopback),
            ("2002:0a00:0001::1", Private),
            ("2002:0808:0808::1", Public),
            ("2606:4700:4700::1111", Public),
            ("2a00:1450:4001:80b::200e", Public),
            ("4000::1", Reserved),
        ] {
            assert_eq!(class(ip), expected, "{ip}");
        }
    }

    #[test]
    fn allowing_private_targets_never_allows_unspecified_multicast_or_broadcast() {
        let allowed = TargetPolicy::ALLOW_PRIVATE;
        for ip in [
            "127.0.0.1",
            "10.0.0.1",
            "::1",
            "fd00::1",
            "100.64.1.1",
            "169.254.1.1",
        ] {
            assert_eq!(check_address(ip.parse().unwrap(), allowed), Ok(()), "{ip}");
            assert!(
                check_address(ip.parse().unwrap(), TargetPolicy::PUBLIC_ONLY).is_err(),
                "{ip}"
            );
        }
        for ip in ["0.0.0.0", "::", "224.0.0.1", "ff02::1", "255.255.255.255"] {
            assert!(check_address(ip.parse().unwrap(), allowed).is_err(), "{ip}");
        }
    }

    #[test]
    fn urls_with_a_literal_private_host_or_localhost_are_refused() {
        let public = TargetPolicy::PUBLIC_ONLY;
        for url in [
            "http://127.0.0.1:8080/hook",
            "http://[::1]/hook",
            "http://[::ffff:7f00:1]/hook",
            "http://0x7f.1/hook",
            "http://2130706433/hook",
            "http://localhost/hook",
            "http://api.LOCALHOST./hook",
            "https://169.254.169.254/latest/meta-data",
        ] {
            assert!(
                matches!(check_url(url, public), Err(TargetError::Refused { .. })),
                "{url}"
            );
            assert!(check_url(url, TargetPolicy::ALLOW_PRIVATE).is_ok(), "{url}");
        }
        assert!(check_url("https://hooks.vendor.example/partnerd", public).is_ok());
        assert!(matches!(
            check_url("ftp://example.com/", public),
            Err(TargetError::Scheme(_))
        ));
        assert!(matches!(
            check_url("not a url", public),
            Err(TargetError::InvalidUrl(_))
        ));
    }

    #[tokio::test]
    async fn resolving_checks_every_address_of_the_host() {
        let refused = resolve_target("http://localhost:9/hook", TargetPolicy::PUBLIC_ONLY).await;
        assert!(
            matches!(refused, Err(TargetError::Refused { .. })),
            "{refused:?}"
        );
        // The resolver's answer for `localhost` is loopback on any machine; with
        // private targets allowed, every answer is kept, with the URL's port.
        let allowed = resolve_target("http://localhost:9/hook", TargetPolicy::ALLOW_PRIVATE)
            .await
            .unwrap();
        assert_eq!(allowed.domain.as_deref(), Some("localhost"));
        assert!(!allowed.addresses.is_empty());
        assert!(
            allowed
                .addresses
                .iter()
                .all(|address| address.port() == 9 && address.ip().is_loopback())
        );
        let literal = resolve_target("http://8.8.8.8/hook", TargetPolicy::PUBLIC_ONLY)
            .await
            .unwrap();
        assert_eq!(literal.domain, None);
        assert_eq!(literal.addresses, vec!["8.8.8.8:80".parse().unwrap()]);
    }

    #[tokio::test]
    async fn the_pinned_client_reaches_the_checked_address_and_follows_no_redirect() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        // A one-shot server on loopback answering a redirect to elsewhere.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buffer = [0u8; 4096];
            let _ = socket.read(&mut buffer).await;
            let _ = socket
                .write_all(b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .await;
        });
        // A name that does not exist in DNS, pinned to the checked address.
        let target = ResolvedTarget {
            url: Url::parse(&format!("http://hooks.partnerd.invalid:{port}/h")).unwrap(),
            domain: Some("hooks.partnerd.invalid".to_owned()),
            addresses: vec![SocketAddr::from(([127, 0, 0, 1], port))],
        };
        let client = target.client(Duration::from_secs(5)).unwrap();
        let response = client
            .post(target.url.clone())
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 302);
    }
}
