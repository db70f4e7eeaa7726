//! The UTM performance report (R-REP-1, R-REP-2): rows by `utm_campaign` ×
//! `utm_term` over a date range in the partner's time zone, with totals and a
//! daily series for the chart. Read from the rollup counters, never from raw clicks.

use std::collections::BTreeMap;

use jiff::ToSpan;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use partnerd_domain::FieldErrors;
use partnerd_store::{ReportMoneyRow, ReportRange, ReportRow};
use serde::Serialize;

use crate::{App, AppResult};

/// Longest range a report covers, so one request cannot ask for centuries.
pub const MAX_DAYS: i64 = 400;
/// The default range: the last 30 days up to now, today included (CONTRACT.md).
pub const DEFAULT_DAYS: i64 = 30;
/// The currency of a row without money yet.
const DEFAULT_CURRENCY: &str = "USD";

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReportLine {
    pub utm_campaign: String,
    pub utm_term: String,
    pub clicks: i64,
    pub bot_clicks: i64,
    pub unique_visitors: i64,
    pub signups: i64,
    /// R-REP-2: new paying customers, revenue (paid net of refunds) and
    /// commission, of the payments made in the range, in `currency`.
    pub customers: i64,
    pub revenue: i64,
    pub commission: i64,
    pub currency: String,
}

impl ReportLine {
    fn from_row(row: ReportRow) -> Self {
        Self {
            utm_campaign: row.utm_campaign,
            utm_term: row.utm_term,
            clicks: row.clicks,
            bot_clicks: row.bot_clicks,
            unique_visitors: row.unique_visitors,
            signups: row.signups,
            customers: 0,
            revenue: 0,
            commission: 0,
            currency: DEFAULT_CURRENCY.into(),
        }
    }

    fn add_money(&mut self, money: &ReportMoneyRow) {
        self.customers += money.customers;
        self.revenue += money.revenue;
        self.commission += money.commission;
    }

    fn add(&mut self, other: &Self) {
        self.clicks += other.clicks;
        self.bot_clicks += other.bot_clicks;
        self.unique_visitors += other.unique_visitors;
        self.signups += other.signups;
        self.customers += other.customers;
        self.revenue += other.revenue;
        self.commission += other.commission;
    }

    /// Sign-ups per unique visitor, in percent with one decimal, for display.
    pub fn conversion_rate(&self) -> String {
        if self.unique_visitors == 0 {
            return "–".into();
        }
        let tenths = (self.signups * 1000 + self.unique_visitors / 2) / self.unique_visitors;
        format!("{}.{} %", tenths / 10, tenths % 10)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ReportDay {
    pub date: String,
    pub clicks: i64,
    pub unique_visitors: i64,
    pub signups: i64,
    /// In the report's currency (`totals.currency`).
    pub revenue: i64,
    pub commission: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub from: String,
    pub to: String,
    pub time_zone: String,
    pub rows: Vec<ReportLine>,
    pub totals: ReportLine,
    pub days: Vec<ReportDay>,
}

fn parse_date(field: &str, raw: Option<&str>, errors: &mut FieldErrors) -> Option<Date> {
    let raw = raw?.trim();
    if raw.is_empty() {
        return None;
    }
    match raw.parse::<Date>() {
        Ok(date) => Some(date),
        Err(_) => {
            errors.add(field, "must be a date such as 2026-11-27");
            None
        }
    }
}

impl App {
    /// Today's date in `time_zone` (UTC when unknown), as `YYYY-MM-DD`.
    pub fn today(&self, time_zone: &str) -> String {
        let tz = TimeZone::get(time_zone).unwrap_or(TimeZone::UTC);
        let now = jiff::Timestamp::from_millisecond(self.now().millis())
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        now.to_zoned_datetime(tz).date().to_string()
    }

    /// The report for one partner (`Some`) or the whole program, `from`..=`to`
    /// as dates in `time_zone`; the last 30 days by default.
    pub async fn report(
        &self,
        partner_id: Option<i64>,
        time_zone: &str,
        from: Option<&str>,
        to: Option<&str>,
    ) -> AppResult<Report> {
        let tz = TimeZone::get(time_zone).unwrap_or(TimeZone::UTC);
        let now = jiff::Timestamp::from_millisecond(self.now().millis())
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        let today = now.to_zoned_datetime(tz.clone()).date();
        let mut errors = FieldErrors::new();
        let to_date = parse_date("to", to, &mut errors).unwrap_or(today);
        let from_date = parse_date("from", from, &mut errors).unwrap_or_else(|| {
            to_date
                .checked_sub((DEFAULT_DAYS - 1).days())
                .unwrap_or(to_date)
        });
        if errors.is_empty() {
            if from_date > to_date {
                errors.add("from", "must not be after to");
            } else if (to_date - from_date).get_days() as i64 >= MAX_DAYS {
                errors.add("from", format!("the range must be at most {MAX_DAYS} days"));
            }
        }
        errors.into_result()?;
        let start = |date: Date| -> i64 {
            date.to_zoned_datetime(tz.clone())
                .map(|z| z.timestamp().as_millisecond())
                .unwrap_or(0)
        };
        let from_ms = start(from_date);
        let to_ms = start(to_date.checked_add(1.day()).unwrap_or(to_date));
        let range = ReportRange {
            partner_id,
            from_hour: from_ms.div_euclid(3_600_000),
            to_hour: (to_ms + 3_599_999).div_euclid(3_600_000),
        };
        let mut rows: Vec<ReportLine> = self
            .store
            .report_rows(range)
            .await?
            .into_iter()
            .map(ReportLine::from_row)
            .collect();
        let money = self.store.report_money_rows(range).await?;
        // The report's currency: the one with the most revenue (a program
        // usually bills in one); rows in others stand apart with their own.
        let mut by_currency: BTreeMap<&str, i64> = BTreeMap::new();
        for m in &money {
            *by_currency.entry(&m.currency).or_default() += m.revenue;
        }
        let currency = by_currency
            .iter()
            .max_by_key(|(_, revenue)| **revenue)
            .map_or(DEFAULT_CURRENCY, |(c, _)| *c)
            .to_owned();
        for row in &mut rows {
            row.currency = currency.clone();
        }
        for m in &money {
            let found = rows.iter_mut().find(|r| {
                r.utm_campaign == m.utm_campaign
                    && r.utm_term == m.utm_term
                    && r.currency == m.currency
            });
            match found {
                Some(row) => row.add_money(m),
                None => {
                    // Money whose clicks and sign-ups fall outside the range (a
                    // payment months after the click), or in another currency.
                    let mut row = ReportLine::from_row(ReportRow {
                        utm_campaign: m.utm_campaign.clone(),
                        utm_term: m.utm_term.clone(),
                        clicks: 0,
                        bot_clicks: 0,
                        unique_visitors: 0,
                        signups: 0,
                    });
                    row.currency = m.currency.clone();
                    row.add_money(m);
                    rows.push(row);
                }
            }
        }
        let mut totals = ReportLine::from_row(ReportRow {
            utm_campaign: String::new(),
            utm_term: String::new(),
            clicks: 0,
            bot_clicks: 0,
            unique_visitors: 0,
            signups: 0,
        });
        totals.currency = currency.clone();
        for row in rows.iter().filter(|r| r.currency == currency) {
            totals.add(row);
        }
        // Hours into local days; every day of the range is present, zero or not.
        // A UTC hour belongs to the local day its start falls in: the days' first
        // hours, computed once per day, split the sorted hours without a time-zone
        // conversion per hour (a year is 8,760 of them).
        let mut days: Vec<ReportDay> = Vec::new();
        let mut day_starts: Vec<i64> = Vec::new();
        let mut day = from_date;
        while day <= to_date {
            days.push(ReportDay {
                date: day.to_string(),
                clicks: 0,
                unique_visitors: 0,
                signups: 0,
                revenue: 0,
                commission: 0,
            });
            day_starts.push(start(day));
            match day.checked_add(1.day()) {
                Ok(next) => day = next,
                Err(_) => break,
            }
        }
        day_starts.push(to_ms);
        let day_count = days.len();
        let day_of = |hour: i64| -> Option<usize> {
            let at = hour * 3_600_000;
            // The number of day starts at or before `at`, less one.
            let index = day_starts.partition_point(|&s| s <= at).checked_sub(1)?;
            (index < day_count).then_some(index)
        };
        for hour in self.store.report_hours(range).await? {
            if let Some(i) = day_of(hour.hour) {
                let entry = &mut days[i];
                entry.clicks += hour.clicks;
                entry.unique_visitors += hour.unique_visitors;
                entry.signups += hour.signups;
            }
        }
        for hour in self.store.report_money_hours(range).await? {
            if hour.currency != currency {
                continue;
            }
            if let Some(i) = day_of(hour.hour) {
                let entry = &mut days[i];
                entry.revenue += hour.revenue;
                entry.commission += hour.commission;
            }
        }
        Ok(Report {
            from: from_date.to_string(),
            to: to_date.to_string(),
            time_zone: tz.iana_name().unwrap_or("UTC").to_owned(),
            rows,
            totals,
            days,
        })
    }
}

/// The job that moves report counters of past hours to where the report reads a
/// partner's range fastest (`Store::settle_report_hours`).
pub const SETTLE_JOB: &str = "settle_report";
/// How often it runs.
pub const SETTLE_PERIOD_SECONDS: i64 = 600;
/// Hours per settling transaction: short ones, so the click writer waits little.
const SETTLE_HOURS_PER_STEP: i64 = 24;

impl App {
    /// Settles every hour before the previous one (the current hour and the one
    /// before are still being counted), in short transactions, until none is left
    /// or `budget` is spent; returns how many counter rows moved. What the report
    /// shows does not change: it sums settled and unsettled counters.
    pub async fn settle_report(&self, budget: std::time::Duration) -> AppResult<u64> {
        let started = std::time::Instant::now();
        let before_hour = self.now().millis().div_euclid(3_600_000) - 1;
        let mut moved = 0;
        loop {
            let step = self
                .store
                .settle_report_hours(before_hour, SETTLE_HOURS_PER_STEP)
                .await?;
            moved += step;
            if step == 0 || started.elapsed() >= budget {
                return Ok(moved);
            }
        }
    }
}
