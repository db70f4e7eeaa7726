//! What a batch of clicks adds to the report's counters, worked out in memory
//! once, so each backend only writes rows: the clicks, one `report_visitors` row
//! per visitor new to its day, and one `report_rollups` upsert per report row.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::NewClick;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;

/// A report row in one hour: (UTC hour, partner, campaign (0: the default link), term).
pub(crate) type RollupKey = (i64, i64, i64, String);

/// A visitor of one day, as `report_visitors` keys it: (UTC day, visitor key).
pub(crate) type VisitorKey = (i64, i64);

/// Counters of one report row: browser clicks, bot clicks, new unique visitors.
pub(crate) type Counts = [i64; 3];

pub(crate) struct ClickTally {
    /// Browser visitors of the batch, each with the report row of their first
    /// click in it: a visitor counts once a day, in the hour they first came.
    pub(crate) visitors: BTreeMap<VisitorKey, RollupKey>,
    /// Sorted, so the upserts walk the rollup index in order.
    pub(crate) counters: BTreeMap<RollupKey, Counts>,
}

impl ClickTally {
    pub(crate) fn new(clicks: &[NewClick]) -> Self {
        let mut visitors = BTreeMap::new();
        let mut counters: BTreeMap<RollupKey, Counts> = BTreeMap::new();
        for click in clicks {
            let at = click.at.millis();
            let row = (
                at.div_euclid(HOUR_MS),
                click.partner_id,
                click.campaign_id.unwrap_or(0),
                click.utm_term.clone().unwrap_or_default(),
            );
            if click.agent == "bot" {
                counters.entry(row).or_default()[1] += 1;
            } else {
                counters.entry(row.clone()).or_default()[0] += 1;
                visitors
                    .entry((at.div_euclid(DAY_MS), visitor_key(click)))
                    .or_insert(row);
            }
        }
        Self { visitors, counters }
    }

    /// The database had not seen this visitor today: count them where they first came.
    pub(crate) fn count_new_visitor(&mut self, visitor: &VisitorKey) {
        if let Some(row) = self.visitors.get(visitor) {
            self.counters.entry(row.clone()).or_default()[2] += 1;
        }
    }
}

/// One integer for "this visitor on this report row": 64 bits of SHA-256 of the
/// partner, campaign, term and the visitor's keyed daily hash. An integer key
/// keeps `report_visitors` rows small, so a batch of new visitors dirties a few
/// pages instead of one per visitor; two visitors of one day share a key with a
/// chance of about n²/2⁶⁵, far below one miscounted visitor in a lifetime.
pub(crate) fn visitor_key(click: &NewClick) -> i64 {
    let mut hash = Sha256::new();
    hash.update(click.partner_id.to_le_bytes());
    hash.update(click.campaign_id.unwrap_or(0).to_le_bytes());
    // Lengths first, so ("ab", "c") and ("a", "bc") differ.
    let term = click.utm_term.as_deref().unwrap_or("");
    hash.update((term.len() as u64).to_le_bytes());
    hash.update(term.as_bytes());
    hash.update(click.visitor.as_bytes());
    let digest = hash.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_le_bytes(first)
}

#[cfg(test)]
mod tests {
    use partnerd_domain::Timestamp;

    use super::*;

    fn click(at: i64, visitor: &str, term: Option<&str>, agent: &'static str) -> NewClick {
        NewClick {
            id: at,
            partner_id: 7,
            campaign_id: None,
            at: Timestamp::from_millis(at),
            utm_term: term.map(str::to_owned),
            subs: Default::default(),
            referrer_host: None,
            agent,
            network: "n".into(),
            visitor: visitor.into(),
            own_session: false,
        }
    }

    #[test]
    fn a_visitor_counts_in_the_hour_of_their_first_click_of_the_day() {
        let clicks = [
            click(HOUR_MS + 5, "v1", None, "browser"),
            click(2 * HOUR_MS, "v1", None, "browser"),
            click(2 * HOUR_MS + 1, "v2", None, "bot"),
        ];
        let mut tally = ClickTally::new(&clicks);
        assert_eq!(tally.visitors.len(), 1, "bots are not visitors");
        let visitor = *tally.visitors.keys().next().unwrap();
        tally.count_new_visitor(&visitor);
        let row = |hour| (hour, 7, 0, String::new());
        assert_eq!(tally.counters[&row(1)], [1, 0, 1]);
        assert_eq!(tally.counters[&row(2)], [1, 1, 0]);
    }

    #[test]
    fn the_key_tells_terms_and_visitors_apart() {
        let base = click(0, "v1", Some("ab"), "browser");
        let key = visitor_key(&base);
        assert_eq!(key, visitor_key(&base.clone()), "stable");
        assert_ne!(key, visitor_key(&click(0, "v1", Some("a"), "browser")));
        assert_ne!(key, visitor_key(&click(0, "v2", Some("ab"), "browser")));
        assert_ne!(
            visitor_key(&click(0, "bv1", Some("a"), "browser")),
            visitor_key(&click(0, "v1", Some("ab"), "browser"))
        );
    }
}
