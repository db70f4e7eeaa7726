//! Deployment settings: defaults → `partnerd.toml` → `PARTNERD_*` environment
//! variables (`__` for nesting, `PARTNERD_SMTP__HOST`) → `*_FILE` variables for
//! secrets. Program settings (the rules) live in the database instead, edited
//! in the console.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

/// A secret value: never printed, not even by `Debug`.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"***\"")
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address `partnerd serve` listens on.
    pub listen: String,
    /// Where the SQLite database (and nothing else every node needs) lives.
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; SQLite in `data_dir` when empty.
    pub database_url: Option<Secret>,
    /// The address people reach partnerd at; links in emails use it, and an
    /// `https` URL turns on `Secure`/`__Host-` cookies and HSTS.
    pub public_url: Option<String>,
    /// Proxies whose `X-Forwarded-For` is believed (addresses or CIDR ranges);
    /// for anyone else the peer address is the client.
    #[serde(deserialize_with = "list_or_csv")]
    pub trusted_proxies: Vec<String>,
    /// Domain for the tracking cookie (`vendor.com` when partnerd runs on `go.vendor.com`).
    pub cookie_domain: Option<String>,
    /// SMTP server for outgoing email; without one, emails are kept in the console's Outbox.
    pub smtp: Option<SmtpConfig>,
    /// Bearer token for `/metrics` from other than loopback.
    pub metrics_token: Option<Secret>,
    /// Stripe webhook signing secrets, comma-separated during rotation.
    pub stripe_webhook_secret: Option<Secret>,
    /// PayPal Payouts (R-PAY-3); without it approved withdrawals wait for the
    /// manual path (the mass-payment CSV).
    pub paypal: Option<PayPalSettings>,
    /// Log lines as JSON (for log shippers) instead of text.
    pub log_json: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./partnerd-data"),
            database_url: None,
            public_url: None,
            trusted_proxies: Vec::new(),
            cookie_domain: None,
            smtp: None,
            metrics_token: None,
            stripe_webhook_secret: None,
            paypal: None,
            log_json: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    /// `starttls` (default), `tls` (implicit, port 465) or `none` (local relays and tests).
    #[serde(default = "default_smtp_security")]
    pub security: String,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// The sender, e.g. `Acme Partners <partners@acme.com>`.
    pub from: String,
}

/// `[paypal]`: the REST app whose credentials send payouts, from the PayPal
/// developer dashboard (My Apps & Credentials).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PayPalSettings {
    pub client_id: String,
    /// Also `PARTNERD_PAYPAL__CLIENT_SECRET_FILE`.
    pub client_secret: Secret,
    /// The live API by default; `https://api-m.sandbox.paypal.com` for the sandbox.
    #[serde(default = "default_paypal_base_url")]
    pub base_url: String,
    /// The id PayPal gave the webhook pointing at `/webhooks/paypal`; without
    /// it webhooks cannot be verified and are refused (polling still works).
    pub webhook_id: Option<String>,
    /// How long one call to PayPal may take.
    #[serde(default = "default_paypal_timeout")]
    pub timeout_seconds: u64,
}

fn default_paypal_base_url() -> String {
    "https://api-m.paypal.com".into()
}

fn default_paypal_timeout() -> u64 {
    30
}

fn default_smtp_port() -> u16 {
    587
}

fn default_smtp_security() -> String {
    "starttls".into()
}

fn list_or_csv<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        List(Vec<String>),
        Csv(String),
    }
    Ok(match Raw::deserialize(deserializer)? {
        Raw::List(list) => list,
        Raw::Csv(csv) => csv
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
    })
}

impl Config {
    /// Loads the layers. `file` is `partnerd.toml` (or `PARTNERD_CONFIG`); a
    /// missing default file is fine, a missing named file is an error.
    pub fn load(file: Option<&Path>, env: &[(String, String)]) -> anyhow::Result<Self> {
        let mut table = toml::Table::new();
        let named = file.map(Path::to_path_buf).or_else(|| {
            env.iter()
                .find(|(k, _)| k == "PARTNERD_CONFIG")
                .map(|(_, v)| PathBuf::from(v))
        });
        let path = named
            .clone()
            .unwrap_or_else(|| PathBuf::from("partnerd.toml"));
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                table = text
                    .parse()
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && named.is_none() => {}
            Err(e) => anyhow::bail!("cannot read {}: {e}", path.display()),
        }
        for (key, value) in env {
            let Some(rest) = key.strip_prefix("PARTNERD_") else {
                continue;
            };
            if rest == "CONFIG"
                || rest.starts_with("TEST_")
                || rest == "ADMIN_PASSWORD"
                || rest == "LOG"
            {
                continue;
            }
            let (rest, value) = match rest.strip_suffix("_FILE") {
                Some(secret_key) => {
                    let content = std::fs::read_to_string(value)
                        .map_err(|e| anyhow::anyhow!("{key}: cannot read {value}: {e}"))?;
                    (
                        secret_key,
                        content.trim_end_matches(['\r', '\n']).to_owned(),
                    )
                }
                None => (rest, value.clone()),
            };
            let path: Vec<String> = rest.split("__").map(str::to_lowercase).collect();
            insert_path(&mut table, &path, env_value(&value));
        }
        let config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if let Some(url) = &self.public_url {
            let parsed = url::Url::parse(url).map_err(|e| anyhow::anyhow!("public_url: {e}"))?;
            anyhow::ensure!(
                matches!(parsed.scheme(), "http" | "https"),
                "public_url: must be http or https"
            );
        }
        for proxy in &self.trusted_proxies {
            anyhow::ensure!(
                parse_cidr(proxy).is_some(),
                "trusted_proxies: {proxy:?} is not an address or CIDR range"
            );
        }
        if let Some(smtp) = &self.smtp {
            anyhow::ensure!(
                matches!(smtp.security.as_str(), "starttls" | "tls" | "none"),
                "smtp.security: must be starttls, tls or none"
            );
        }
        if let Some(paypal) = &self.paypal {
            let parsed = url::Url::parse(&paypal.base_url)
                .map_err(|e| anyhow::anyhow!("paypal.base_url: {e}"))?;
            anyhow::ensure!(
                matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some(),
                "paypal.base_url: must be http(s)://host"
            );
            anyhow::ensure!(
                !paypal.client_id.trim().is_empty() && !paypal.client_secret.expose().is_empty(),
                "paypal: client_id and client_secret are required"
            );
            anyhow::ensure!(
                (1..=300).contains(&paypal.timeout_seconds),
                "paypal.timeout_seconds: must be between 1 and 300"
            );
        }
        Ok(())
    }

    /// The database URL: the configured one, or SQLite in the data directory.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.expose().to_owned(),
            None => format!("sqlite://{}", self.data_dir.join("partnerd.db").display()),
        }
    }

    pub fn public_url(&self) -> String {
        let url = self
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen));
        url.trim_end_matches('/').to_owned()
    }

    /// Asked on every redirect, so it reads the setting without building the URL.
    pub fn is_https(&self) -> bool {
        self.public_url
            .as_deref()
            .is_some_and(|url| url.starts_with("https://"))
    }

    pub fn is_trusted_proxy(&self, peer: IpAddr) -> bool {
        self.trusted_proxies
            .iter()
            .filter_map(|p| parse_cidr(p))
            .any(|(net, bits)| in_cidr(peer, net, bits))
    }
}

/// Environment values are strings; numbers and booleans are read as such so
/// `PARTNERD_SMTP__PORT=2525` fills a number field.
fn env_value(value: &str) -> toml::Value {
    if let Ok(n) = value.parse::<i64>() {
        return toml::Value::Integer(n);
    }
    match value {
        "true" => toml::Value::Boolean(true),
        "false" => toml::Value::Boolean(false),
        _ => toml::Value::String(value.to_owned()),
    }
}

fn insert_path(table: &mut toml::Table, path: &[String], value: toml::Value) {
    match path {
        [] => {}
        [last] => {
            // A string where the file had a number is still a string: keep ports as text
            // only if the field wants text. Strings for `listen` stay strings.
            let value = match (last.as_str(), value) {
                (
                    "listen"
                    | "host"
                    | "from"
                    | "username"
                    | "password"
                    | "database_url"
                    | "metrics_token"
                    | "stripe_webhook_secret"
                    | "client_id"
                    | "client_secret"
                    | "webhook_id",
                    toml::Value::Integer(n),
                ) => toml::Value::String(n.to_string()),
                (_, value) => value,
            };
            table.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let entry = table
                .entry(first.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !entry.is_table() {
                *entry = toml::Value::Table(toml::Table::new());
            }
            if let toml::Value::Table(inner) = entry {
                insert_path(inner, rest, value);
            }
        }
    }
}

/// `10.0.0.0/8`, `::1`, `192.168.1.7` → (network, prefix bits).
pub fn parse_cidr(value: &str) -> Option<(IpAddr, u8)> {
    let (addr, bits) = match value.split_once('/') {
        Some((addr, bits)) => (addr.parse::<IpAddr>().ok()?, bits.parse::<u8>().ok()?),
        None => {
            let addr = value.parse::<IpAddr>().ok()?;
            (addr, if addr.is_ipv4() { 32 } else { 128 })
        }
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (bits <= max).then_some((addr, bits))
}

fn in_cidr(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(ip) & mask == u128::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V4(_)) => ip
            .to_ipv4_mapped()
            .is_some_and(|v4| in_cidr(IpAddr::V4(v4), net, bits)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn layers_apply_in_order_and_secrets_stay_hidden() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("partnerd.toml");
        std::fs::write(&file, "listen = \"0.0.0.0:9000\"\npublic_url = \"https://go.acme.test\"\n[smtp]\nhost = \"mail\"\nfrom = \"p@acme.test\"\n").unwrap();
        let secret = dir.path().join("pw");
        std::fs::write(&secret, "hunter2-very-secret\n").unwrap();
        let config = Config::load(
            Some(&file),
            &env(&[
                ("PARTNERD_LISTEN", "127.0.0.1:7000"),
                ("PARTNERD_SMTP__PORT", "2525"),
                ("PARTNERD_SMTP__PASSWORD_FILE", secret.to_str().unwrap()),
                ("PARTNERD_TRUSTED_PROXIES", "10.0.0.0/8, ::1"),
                ("HOME", "/root"),
            ]),
        )
        .unwrap();
        assert_eq!(config.listen, "127.0.0.1:7000");
        let smtp = config.smtp.clone().unwrap();
        assert_eq!((smtp.host.as_str(), smtp.port), ("mail", 2525));
        assert_eq!(
            smtp.password.as_ref().unwrap().expose(),
            "hunter2-very-secret"
        );
        assert!(!format!("{config:?}").contains("hunter2"));
        assert!(config.is_https());
        assert!(config.is_trusted_proxy("10.1.2.3".parse().unwrap()));
        assert!(config.is_trusted_proxy("::1".parse().unwrap()));
        assert!(!config.is_trusted_proxy("11.0.0.1".parse().unwrap()));
    }

    #[test]
    fn paypal_settings_come_from_the_environment_with_the_secret_from_a_file_and_hidden() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("paypal-secret");
        std::fs::write(&secret, "EKx-very-secret-paypal\n").unwrap();
        let config = Config::load(
            None,
            &env(&[
                ("PARTNERD_PAYPAL__CLIENT_ID", "AbC123"),
                (
                    "PARTNERD_PAYPAL__CLIENT_SECRET_FILE",
                    secret.to_str().unwrap(),
                ),
                ("PARTNERD_PAYPAL__WEBHOOK_ID", "1JE4291016473214C"),
            ]),
        )
        .unwrap();
        let paypal = config.paypal.clone().unwrap();
        assert_eq!(paypal.client_id, "AbC123");
        assert_eq!(paypal.client_secret.expose(), "EKx-very-secret-paypal");
        assert_eq!(paypal.base_url, crate::paypal::LIVE_BASE_URL);
        assert_eq!(paypal.webhook_id.as_deref(), Some("1JE4291016473214C"));
        assert_eq!(paypal.timeout_seconds, 30);
        assert!(!format!("{config:?}").contains("very-secret"));
        // A numeric-looking id stays text.
        let config = Config::load(
            None,
            &env(&[
                ("PARTNERD_PAYPAL__CLIENT_ID", "12345"),
                ("PARTNERD_PAYPAL__CLIENT_SECRET", "s"),
                ("PARTNERD_PAYPAL__BASE_URL", crate::paypal::SANDBOX_BASE_URL),
            ]),
        )
        .unwrap();
        let paypal = config.paypal.unwrap();
        assert_eq!(paypal.client_id, "12345");
        assert_eq!(paypal.base_url, crate::paypal::SANDBOX_BASE_URL);
        for bad in [
            vec![("PARTNERD_PAYPAL__CLIENT_ID", "id")],
            vec![
                ("PARTNERD_PAYPAL__CLIENT_ID", "id"),
                ("PARTNERD_PAYPAL__CLIENT_SECRET", "s"),
                ("PARTNERD_PAYPAL__BASE_URL", "ftp://paypal"),
            ],
        ] {
            assert!(Config::load(None, &env(&bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        assert!(Config::load(None, &env(&[("PARTNERD_LISTEN_PORT", "1")])).is_err());
        assert!(Config::load(None, &env(&[("PARTNERD_TRUSTED_PROXIES", "not-an-ip")])).is_err());
        assert!(Config::load(None, &env(&[("PARTNERD_PUBLIC_URL", "ftp://x")])).is_err());
        assert!(Config::load(Some(Path::new("/nonexistent/partnerd.toml")), &[]).is_err());
    }
}
