//! What a batch of clicks adds to the report's counters, worked out in memory
//! once, so each backend only writes rows: the clicks, the visitors new to their
//! day in `report_visitors`, and one `report_rollups` upsert per report row.

use std::collections::{BTreeMap, HashSet};

use sha2::{Digest, Sha256};

use crate::NewClick;

const HOUR_MS: i64 = 3_600_000;
pub(crate) const DAY_MS: i64 = 86_400_000;

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

/// The visitors a SQLite click writer has counted, by UTC day: for each day it
/// holds, every key its `report_visitors` log has for that day, so a batch looks
/// its visitors up here instead of in a b-tree keyed by hashes, where each new
/// visitor dirtied a page of its own. A day it does not hold is read whole from the
/// log before the batch counts on it (after a start, at midnight, with a clock set
/// back); it keeps the days from the day before its latest batch's newest on, as
/// the housekeeping does. About 20 bytes a visitor: two days of a million visitors
/// each take some 40 MB. The log is the truth: each batch first reads the rows
/// other connections appended after `synced_to`.
#[derive(Debug, Default)]
pub(crate) struct SeenVisitors {
    days: BTreeMap<i64, HashSet<i64>>,
    /// Every log row up to this id is in `days`, for the days it holds; `None`
    /// until a day is first read.
    pub(crate) synced_to: Option<i64>,
}

impl SeenVisitors {
    pub(crate) fn holds(&self, day: i64) -> bool {
        self.days.contains_key(&day)
    }

    pub(crate) fn contains(&self, (day, key): &VisitorKey) -> bool {
        self.days.get(day).is_some_and(|keys| keys.contains(key))
    }

    /// A day read whole from the log, up to its row `upto` (at least `synced_to`:
    /// ids only grow). The rows after `synced_to` that the days held before may
    /// lack are read by the next catch-up; a key added twice is no harm.
    pub(crate) fn insert_day(&mut self, day: i64, keys: HashSet<i64>, upto: i64) {
        self.days.insert(day, keys);
        self.synced_to.get_or_insert(upto);
    }

    /// A log row after `synced_to`, another connection's or a committed batch's
    /// own: its keys count if its day is held (a day not held is read whole when
    /// a batch needs it).
    pub(crate) fn add(&mut self, id: i64, day: i64, keys: impl IntoIterator<Item = i64>) {
        self.synced_to = self.synced_to.max(Some(id));
        if let Some(held) = self.days.get_mut(&day) {
            held.extend(keys);
        }
    }

    /// Forgets the days before `first_day`.
    pub(crate) fn keep_from(&mut self, first_day: i64) {
        self.days = self.days.split_off(&first_day);
    }

    /// Forgets the days the log no longer holds: the housekeeping deletes the days
    /// before a cutoff, so they are those before its oldest (`None`: it is empty).
    pub(crate) fn forget_before(&mut self, oldest_logged: Option<i64>) {
        match oldest_logged {
            Some(day) => self.keep_from(day),
            None => self.days.clear(),
        }
    }
}

/// Visitor keys as a `report_visitors` log row holds them: 8 bytes each, big-endian.
pub(crate) fn encode_keys(keys: &[i64]) -> Vec<u8> {
    keys.iter().flat_map(|key| key.to_be_bytes()).collect()
}

/// The keys of a log row; `None` when its length is not a multiple of 8.
pub(crate) fn decode_keys(blob: &[u8]) -> Option<impl Iterator<Item = i64> + '_> {
    blob.len().is_multiple_of(8).then(|| {
        blob.chunks_exact(8)
            .map(|chunk| i64::from_be_bytes(chunk.try_into().expect("chunks of 8")))
    })
}

/// One integer for "this visitor on this report row": 64 bits of SHA-256 of the
/// partner, campaign, term and the visitor's keyed daily hash, 8 bytes in
/// `report_visitors` whichever the engine; two visitors of one day share a key with a
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
    fn keys_survive_their_encoding_and_a_torn_blob_is_refused() {
        let keys = [0, -1, i64::MIN, i64::MAX, 0x0102_0304_0506_0708];
        let blob = encode_keys(&keys);
        assert_eq!(
            &blob[32..],
            &[1, 2, 3, 4, 5, 6, 7, 8],
            "big-endian, as SQL's printf('%016x') writes"
        );
        assert_eq!(decode_keys(&blob).unwrap().collect::<Vec<_>>(), keys);
        assert!(decode_keys(&blob[..7]).is_none());
    }

    #[test]
    fn seen_visitors_hold_whole_days_only() {
        let mut seen = SeenVisitors::default();
        assert!(!seen.holds(10) && seen.synced_to.is_none());
        seen.insert_day(10, HashSet::from([1, 2]), 4);
        assert_eq!(seen.synced_to, Some(4), "the log as read");
        seen.insert_day(9, HashSet::from([3]), 6);
        assert_eq!(seen.synced_to, Some(4), "day 10 may lack rows 5 and 6");
        seen.add(7, 10, [5]);
        seen.add(8, 8, [6]);
        assert_eq!(seen.synced_to, Some(8));
        assert!(seen.contains(&(10, 5)) && seen.contains(&(9, 3)));
        assert!(!seen.holds(8), "a row does not make its day whole");
        assert!(!seen.contains(&(10, 3)), "another day's visitor");
        seen.keep_from(10);
        assert!(seen.holds(10) && !seen.holds(9));
        seen.forget_before(Some(11));
        assert!(!seen.holds(10), "deleted from the log");
        seen.insert_day(12, HashSet::from([1]), 9);
        seen.forget_before(None);
        assert!(!seen.holds(12), "the log is empty");
        assert_eq!(seen.synced_to, Some(8), "the log's ids still only grow");
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
