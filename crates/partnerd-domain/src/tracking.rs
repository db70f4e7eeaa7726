//! Affiliate links and attribution (R-AFF-1..7): campaign slugs, landing pages,
//! who is a browser, and whether a sign-up is credited. Pure: the caller brings
//! the clock, the stored click and the partner.

use serde::{Deserialize, Serialize};

use crate::Timestamp;
use crate::settings::ProgramSettings;

/// The `utm_campaign` of the basic link (R-AFF-5).
pub const DEFAULT_SLUG: &str = "default_link";

/// Longest campaign name and custom parameter accepted.
pub const MAX_CAMPAIGN_NAME: usize = 80;
pub const MAX_CUSTOM: usize = 100;

/// R-AFF-5: the slug is the name, lower-cased and hyphenated, plus the dynamic
/// parameters: `Spring Sale` with a 60-day trial and 20 % off → `spring-sale-t60-d20`.
pub fn campaign_slug(name: &str, trial_days: Option<i64>, discount_percent: Option<i64>) -> String {
    let mut slug = String::new();
    for c in name.trim().chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    let mut slug: String = slug.trim_end_matches('-').chars().take(48).collect();
    slug = slug.trim_end_matches('-').to_owned();
    if slug.is_empty() {
        slug.push_str("campaign");
    }
    if let Some(days) = trial_days {
        slug.push_str(&format!("-t{days}"));
    }
    if let Some(percent) = discount_percent.filter(|p| *p > 0) {
        slug.push_str(&format!("-d{percent}"));
    }
    slug
}

/// A slug as it may appear in `/r/{id}/{slug}`: checked before any look-up.
pub fn is_valid_slug(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// R-AFF-2: a landing page must be on one of the vendor's allowed domains (or a
/// subdomain of one), so `/r` is never an open redirect.
pub fn check_landing_url(raw: &str, settings: &ProgramSettings) -> Result<String, String> {
    let raw = raw.trim();
    if raw.len() > 2000 {
        return Err("must be at most 2000 characters".into());
    }
    let url = url::Url::parse(raw)
        .map_err(|_| "must be a full URL such as https://www.example.com/pricing".to_owned())?;
    if !matches!(url.scheme(), "http" | "https")
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err("must be an http or https URL without credentials".into());
    }
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    let allowed = settings
        .allowed_landing_domains
        .iter()
        .any(|domain| host == *domain || host.ends_with(&format!(".{domain}")));
    if !allowed {
        return Err(format!(
            "must be on {}",
            settings.allowed_landing_domains.join(", ")
        ));
    }
    Ok(url.to_string())
}

/// What sent a request to a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Agent {
    Browser,
    /// Crawlers, link previews, prefetches and scripts: counted apart, never attributed.
    Bot,
}

impl Agent {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Browser => "browser",
            Self::Bot => "bot",
        }
    }
}

/// Substrings of user agents that are not a person clicking: crawlers, the
/// previewers of chat and social apps, and HTTP libraries.
const BOT_MARKERS: &[&str] = &[
    "bot",
    "crawl",
    "spider",
    "slurp",
    "preview",
    "facebookexternalhit",
    "facebookcatalog",
    "embedly",
    "whatsapp",
    "telegram",
    "skypeuripreview",
    "bitlyapi",
    "vkshare",
    "pinterest",
    "outbrain",
    "quora link",
    "headlesschrome",
    "phantomjs",
    "lighthouse",
    "curl/",
    "wget/",
    "python-requests",
    "python-urllib",
    "aiohttp",
    "go-http-client",
    "java/",
    "okhttp",
    "libwww",
    "httpclient",
    "axios/",
    "node-fetch",
    "undici",
    "postmanruntime",
    "insomnia",
    "scrapy",
    "feedfetcher",
    "monitor",
    "uptime",
    "pingdom",
];

/// Classifies a request by its user agent and prefetch hints. A browser's
/// user agent is a browser whatever tool sends it (CONTRACT.md: `curl` with a
/// browser's `User-Agent` is a browser).
pub fn classify_agent(user_agent: Option<&str>, prefetch: bool) -> Agent {
    let Some(ua) = user_agent.map(str::trim).filter(|ua| ua.len() >= 10) else {
        return Agent::Bot;
    };
    if prefetch {
        return Agent::Bot;
    }
    let starts_with = |prefix: &str| {
        ua.get(..prefix.len())
            .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
    };
    if !starts_with("mozilla/") && !starts_with("opera/") {
        return Agent::Bot;
    }
    if bot_markers().is_match(ua) {
        return Agent::Bot;
    }
    Agent::Browser
}

/// [`BOT_MARKERS`] as one automaton, ASCII case ignored: a single pass over
/// the user agent, where a search per marker scanned it once per marker on every
/// redirect.
fn bot_markers() -> &'static aho_corasick::AhoCorasick {
    static MARKERS: std::sync::LazyLock<aho_corasick::AhoCorasick> =
        std::sync::LazyLock::new(|| {
            aho_corasick::AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .build(BOT_MARKERS)
                .expect("the markers are plain text")
        });
    &MARKERS
}

/// Why a sign-up is or is not credited (the attribution explanation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The last click is within `cookie_days`: credited.
    LastClick,
    /// A bare partner id was given (no click): credited to that partner.
    PartnerId,
    /// The click is older than `cookie_days` (R-AFF-4).
    Expired,
    /// The partner's own email or own signed-in session (R-AFF-7): recorded, not credited.
    SelfReferral,
    /// The partner was removed (R-ACC-3).
    RemovedPartner,
    /// The click came from a crawler or previewer.
    Bot,
    /// No referral was given.
    NoClick,
    /// The token was malformed, tampered with or signed by another key.
    InvalidToken,
    /// The partner id names nobody.
    UnknownPartner,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LastClick => "last_click",
            Self::PartnerId => "partner_id",
            Self::Expired => "expired",
            Self::SelfReferral => "self_referral",
            Self::RemovedPartner => "removed_partner",
            Self::Bot => "bot",
            Self::NoClick => "no_click",
            Self::InvalidToken => "invalid_token",
            Self::UnknownPartner => "unknown_partner",
        }
    }

    pub fn credited(self) -> bool {
        matches!(self, Self::LastClick | Self::PartnerId)
    }
}

/// The facts attribution needs about the click a token names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClickFacts {
    pub clicked_at: Timestamp,
    pub agent: Agent,
    /// The partner was signed in to partnerd in the browser that clicked.
    pub own_session: bool,
}

/// The facts about the partner the referral names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartnerFacts {
    pub removed: bool,
    /// The customer's email is the partner's own (R-AFF-7).
    pub same_email: bool,
}

/// R-AFF-4 and R-AFF-7: credited when the click is at most `cookie_days` old,
/// to the second — a click at `t` counts for a sign-up before `t + cookie_days × 24 h`.
pub fn attribute(
    click: Option<ClickFacts>,
    partner: PartnerFacts,
    now: Timestamp,
    cookie_days: i64,
) -> Reason {
    if partner.removed {
        return Reason::RemovedPartner;
    }
    if partner.same_email {
        return Reason::SelfReferral;
    }
    let Some(click) = click else {
        return Reason::PartnerId;
    };
    if click.agent == Agent::Bot {
        return Reason::Bot;
    }
    if click.own_session {
        return Reason::SelfReferral;
    }
    let window_ends = click.clicked_at.plus_days(cookie_days);
    if now >= window_ends {
        return Reason::Expired;
    }
    Reason::LastClick
}

/// Builds the landing URL: the page plus the UTM tags and the token (R-AFF-5).
/// Existing query parameters of the page are kept; ours replace same-named ones.
pub fn landing_url(
    page: &str,
    utm_campaign: &str,
    utm_term: Option<&str>,
    referral: Option<(&str, &str)>,
) -> String {
    let Ok(mut url) = url::Url::parse(page) else {
        return page.to_owned();
    };
    let ours = ["utm_source", "utm_medium", "utm_campaign", "utm_term"];
    let param = referral.map(|(name, _)| name);
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| !ours.contains(&k.as_ref()) && Some(k.as_ref()) != param)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    {
        let mut query = url.query_pairs_mut();
        query.clear();
        for (k, v) in &kept {
            query.append_pair(k, v);
        }
        query.append_pair("utm_source", "partner");
        query.append_pair("utm_medium", "affiliate");
        query.append_pair("utm_campaign", utm_campaign);
        // Always present (CONTRACT.md), empty when the link has no term.
        query.append_pair("utm_term", utm_term.unwrap_or(""));
        if let Some((name, token)) = referral {
            query.append_pair(name, token);
        }
    }
    // The serialization itself, not a copy of it.
    url.into()
}

/// A CSV cell that spreadsheet programs will not run as a formula: cells that
/// start with `=`, `+`, `-`, `@`, tab or carriage return get a leading `'`
/// (OWASP's advice), and every cell is quoted.
pub fn csv_cell(value: &str) -> String {
    let guarded = match value.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{value}"),
        _ => value.to_owned(),
    };
    format!("\"{}\"", guarded.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_follow_the_vendor_example() {
        // R-AFF-5
        assert_eq!(
            campaign_slug("Spring Sale", Some(60), Some(20)),
            "spring-sale-t60-d20"
        );
        assert_eq!(
            campaign_slug("  Ünïcode & Co!! ", None, Some(0)),
            "n-code-co"
        );
        assert_eq!(campaign_slug("!!!", Some(14), None), "campaign-t14");
        assert!(is_valid_slug(&campaign_slug(
            &"long name ".repeat(20),
            Some(30),
            Some(10)
        )));
        assert!(is_valid_slug(DEFAULT_SLUG));
        assert!(!is_valid_slug("Bad/Slug"));
    }

    #[test]
    fn landing_pages_must_be_on_an_allowed_domain() {
        let settings = ProgramSettings {
            allowed_landing_domains: vec!["acme.test".into()],
            ..Default::default()
        };
        assert!(check_landing_url("https://acme.test/pricing", &settings).is_ok());
        assert!(check_landing_url("https://www.acme.test/", &settings).is_ok());
        for bad in [
            "https://evil.test/",
            "https://acme.test.evil.test/",
            "https://notacme.test/",
            "javascript:alert(1)",
            "https://user:pw@acme.test/",
            "//acme.test/",
            "ftp://acme.test/",
        ] {
            assert!(check_landing_url(bad, &settings).is_err(), "{bad}");
        }
    }

    #[test]
    fn browsers_are_browsers_and_everything_else_is_a_bot() {
        let chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36";
        assert_eq!(classify_agent(Some(chrome), false), Agent::Browser);
        assert_eq!(classify_agent(Some(chrome), true), Agent::Bot, "prefetch");
        for bot in [
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "facebookexternalhit/1.1",
            "Slackbot-LinkExpanding 1.0",
            "curl/8.5.0",
            "",
            "Mozilla/5.0 (compatible; Discordbot/2.0)",
            "WhatsApp/2.23",
            "python-requests/2.31",
        ] {
            assert_eq!(classify_agent(Some(bot), false), Agent::Bot, "{bot}");
        }
        assert_eq!(classify_agent(None, false), Agent::Bot);
    }

    proptest::proptest! {
        /// The automaton decides as lower-casing the agent and searching for
        /// each marker did, in any letter case and wherever a marker sits.
        #[test]
        fn the_bot_automaton_agrees_with_a_search_per_marker(
            prefix in proptest::sample::select(vec!["Mozilla/5.0 ", "mOzIlLa/", "Opera/9 ", "Links ", ""]),
            marker in proptest::sample::select(BOT_MARKERS.to_vec()),
            upper in proptest::collection::vec(proptest::bool::ANY, 32),
            with_marker in proptest::bool::ANY,
            rest in "[ -~]{0,40}",
        ) {
            let marker: String = marker
                .chars()
                .zip(upper.iter().cycle())
                .map(|(c, up)| if *up { c.to_ascii_uppercase() } else { c })
                .collect();
            let ua = if with_marker {
                format!("{prefix}{rest} {marker} (X11)")
            } else {
                format!("{prefix}{rest} (X11; Linux)")
            };
            let lower = ua.trim().to_ascii_lowercase();
            let naive = if lower.len() < 10
                || (!lower.starts_with("mozilla/") && !lower.starts_with("opera/"))
                || BOT_MARKERS.iter().any(|m| lower.contains(m))
            {
                Agent::Bot
            } else {
                Agent::Browser
            };
            proptest::prop_assert_eq!(classify_agent(Some(&ua), false), naive, "{}", ua);
        }
    }

    #[test]
    fn the_cookie_window_ends_exactly_cookie_days_after_the_click() {
        // R-AFF-4: a click at t counts for a sign-up before t + 120 × 24 h.
        let t = Timestamp::from_millis(1_700_000_000_000);
        let click = ClickFacts {
            clicked_at: t,
            agent: Agent::Browser,
            own_session: false,
        };
        let partner = PartnerFacts {
            removed: false,
            same_email: false,
        };
        let edge = t.plus_days(120);
        assert_eq!(
            attribute(
                Some(click),
                partner,
                Timestamp::from_millis(edge.millis() - 1000),
                120
            ),
            Reason::LastClick
        );
        assert_eq!(attribute(Some(click), partner, edge, 120), Reason::Expired);
    }

    #[test]
    fn self_referral_bots_and_removed_partners_are_not_credited() {
        let t = Timestamp::from_millis(1_700_000_000_000);
        let ok = PartnerFacts {
            removed: false,
            same_email: false,
        };
        let click = ClickFacts {
            clicked_at: t,
            agent: Agent::Browser,
            own_session: false,
        };
        assert_eq!(
            attribute(
                Some(click),
                PartnerFacts {
                    same_email: true,
                    ..ok
                },
                t,
                120
            ),
            Reason::SelfReferral
        );
        assert_eq!(
            attribute(
                Some(ClickFacts {
                    own_session: true,
                    ..click
                }),
                ok,
                t,
                120
            ),
            Reason::SelfReferral
        );
        assert_eq!(
            attribute(
                Some(ClickFacts {
                    agent: Agent::Bot,
                    ..click
                }),
                ok,
                t,
                120
            ),
            Reason::Bot
        );
        assert_eq!(
            attribute(
                Some(click),
                PartnerFacts {
                    removed: true,
                    ..ok
                },
                t,
                120
            ),
            Reason::RemovedPartner
        );
        assert_eq!(attribute(None, ok, t, 120), Reason::PartnerId);
        assert!(Reason::LastClick.credited() && !Reason::Expired.credited());
    }

    #[test]
    fn landing_urls_carry_the_tags_and_keep_the_page_s_own_parameters() {
        let url = landing_url(
            "https://acme.test/p?lang=en&utm_source=x",
            "spring-sale-t60",
            Some("kw chat"),
            Some(("ref", "tok.en")),
        );
        assert_eq!(
            url,
            "https://acme.test/p?lang=en&utm_source=partner&utm_medium=affiliate&utm_campaign=spring-sale-t60&utm_term=kw+chat&ref=tok.en"
        );
    }

    #[test]
    fn csv_cells_cannot_become_formulas() {
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_cell("-2+3"), "\"'-2+3\"");
        assert_eq!(csv_cell("spring"), "\"spring\"");
    }
}
