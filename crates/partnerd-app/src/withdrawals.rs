//! What a partner does about money (issue 4 parts 4, 7 and 8): the payout
//! profile (R-PAY-2, R-PAY-4), withdrawal requests (R-PAY-1), the active status
//! with what is missing (R-ACC-4), and monthly statements.
//!
//! Reads of balances, commissions and transfers are the money use cases'
//! (`money.rs`); this module adds only what the panel needs on top. Every
//! refusal is decided before the store is called, so it writes nothing and
//! says why; the store checks the money rules again inside its transaction
//! (two requests at once never take more than the balance).

use std::collections::BTreeMap;

use partnerd_domain::errors::clean_text;
use partnerd_domain::ledger::{Account, PartnerBalances, PartnerMoney, Source, WithdrawalStatus};
use partnerd_domain::{Currency, Email, FieldErrors, Timestamp};
use partnerd_store::money::{NewWithdrawal, PayoutProfile, WithdrawalRow};
use partnerd_store::{NewAudit, Partner};
use serde::Serialize;

use crate::accounts::LOGIN_PER_ACCOUNT;
use crate::crypto::{random_token, verify_password};
use crate::money::{PartnerStatus, months_before};
use crate::{App, AppError, AppResult};

/// ISO 3166-1 alpha-2: every officially assigned code (249).
const COUNTRIES: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ \
    BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ \
    CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ \
    EC EE EG EH ER ES ET FI FJ FK FM FO FR \
    GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU \
    ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ \
    LA LB LC LI LK LR LS LT LU LV LY \
    MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ \
    NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA \
    RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ \
    TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ \
    VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW";

const LEGAL_NAME_MAX: usize = 200;
const TAX_ID_MAX: usize = 40;
const DAY_MS: i64 = 86_400_000;
/// The chart reads commissions in pages of this many, at most `MAX_CHART_ROWS`.
const CHART_PAGE: i64 = 500;
const MAX_CHART_ROWS: i64 = 10_000;

/// The payout profile form as typed (R-PAY-2, R-PAY-4). Blank fields are
/// allowed: a missing detail blocks only withdrawals.
#[derive(Debug, Clone, Default)]
pub struct PayoutProfileInput {
    pub paypal_email: String,
    pub legal_name: String,
    pub country: String,
    pub tax_id: String,
}

/// R-PAY-4: an ISO 3166-1 alpha-2 country code, upper-cased.
pub fn parse_country(raw: &str) -> Result<String, String> {
    let code = raw.trim().to_ascii_uppercase();
    if code.len() == 2 && COUNTRIES.split_whitespace().any(|c| c == code) {
        Ok(code)
    } else {
        Err("must be a two-letter ISO 3166-1 country code, e.g. DE or US".into())
    }
}

/// R-PAY-4: a tax id as printed on statements: letters, digits, spaces and
/// `- . /`, at most 40 characters, with at least one letter or digit.
pub fn parse_tax_id(raw: &str) -> Result<String, String> {
    let value = clean_text(raw, TAX_ID_MAX, true)?;
    let allowed = |c: char| c.is_alphanumeric() || matches!(c, ' ' | '-' | '.' | '/');
    if !value.chars().all(allowed) || !value.chars().any(char::is_alphanumeric) {
        return Err("may hold only letters, digits, spaces and - . /".into());
    }
    Ok(value)
}

/// `ann.lee@example.com` → `a***@example.com`: enough for the owner to
/// recognise, too little to hand someone a payout address.
pub fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".into(),
    }
}

/// Whether (and why not) a partner can withdraw a currency now (R-PAY-1, 2, 4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WithdrawalOption {
    pub currency: Currency,
    pub available: i64,
    /// The currency's `min_withdrawal`; `None` when the program set none.
    pub minimum: Option<i64>,
    /// Why the button is not offered; `None` when it is.
    pub blocked: Option<String>,
}

/// R-ACC-4 with the time left: when the partner is not active, the missing
/// new paying customers must come within `days_left` days, before the oldest
/// customer counted leaves the window; `None` when none is counted yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActivityStatus {
    pub status: PartnerStatus,
    pub days_left: Option<i64>,
}

/// What a booking of the statement's month was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum StatementKind {
    Commission,
    Refund,
    Chargeback,
    Reinstatement,
    Rejection,
}

impl StatementKind {
    pub fn label(self) -> &'static str {
        match self {
            StatementKind::Commission => "Commission",
            StatementKind::Refund => "Refund reversal",
            StatementKind::Chargeback => "Chargeback reversal",
            StatementKind::Reinstatement => "Chargeback won",
            StatementKind::Rejection => "Rejected on review",
        }
    }

    fn of(source: &Source) -> Option<Self> {
        Some(match source {
            Source::Commission { .. } => StatementKind::Commission,
            Source::Refund { .. } => StatementKind::Refund,
            Source::Chargeback { .. } => StatementKind::Chargeback,
            Source::Reinstatement { .. } => StatementKind::Reinstatement,
            Source::Rejection { .. } => StatementKind::Rejection,
            _ => return None,
        })
    }
}

/// One commission booking of the month: positive earns, negative reverses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatementLine {
    pub booked_at: Timestamp,
    pub kind: StatementKind,
    pub payment_id: Option<String>,
    pub amount: i64,
}

/// A withdrawal whose payout arrived in the month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatementPayout {
    pub withdrawal_id: String,
    pub paid_at: Timestamp,
    pub amount: i64,
}

/// One currency of a statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatementCurrency {
    pub currency: Currency,
    /// The balances at the month's first instant and after its last.
    pub opening: PartnerBalances,
    pub closing: PartnerBalances,
    /// Commission earned in the month, and reversed (as a positive amount).
    pub earned: i64,
    pub reversed: i64,
    pub paid_out: i64,
    pub lines: Vec<StatementLine>,
    pub payouts: Vec<StatementPayout>,
}

/// A partner's monthly statement (UTC months).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Statement {
    pub year: i16,
    pub month: i8,
    pub from: Timestamp,
    /// The first instant after the month.
    pub to: Timestamp,
    /// R-PAY-4: the tax details the statement shows.
    pub profile: PayoutProfile,
    pub currencies: Vec<StatementCurrency>,
}

/// The first instant of a UTC month.
pub fn month_start(year: i16, month: i8) -> Option<Timestamp> {
    let date = jiff::civil::Date::new(year, month, 1).ok()?;
    let zoned = date.to_zoned_datetime(jiff::tz::TimeZone::UTC).ok()?;
    Some(Timestamp::from_millis(zoned.timestamp().as_millisecond()))
}

/// The month after `(year, month)`.
pub fn next_month(year: i16, month: i8) -> (i16, i8) {
    if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    }
}

/// The UTC month of an instant.
pub fn month_of(at: Timestamp) -> (i16, i8) {
    let at = jiff::Timestamp::from_millisecond(at.millis()).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let date = at.to_zoned_datetime(jiff::tz::TimeZone::UTC).date();
    (date.year(), date.month())
}

/// `at` plus whole calendar months (UTC), the inverse of [`months_before`].
fn months_after(at: Timestamp, months: i64) -> Timestamp {
    let start =
        jiff::Timestamp::from_millisecond(at.millis()).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    match start
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .checked_add(jiff::Span::new().months(months))
    {
        Ok(later) => Timestamp::from_millis(later.timestamp().as_millisecond()),
        Err(_) => at,
    }
}

fn not_a_partner_of_ours(partner: &Partner) -> AppResult<()> {
    if partner.is_removed() {
        // R-ACC-3: removal stops payouts.
        return Err(AppError::Conflict("This account was removed.".into()));
    }
    Ok(())
}

impl App {
    /// R-PAY-2, R-PAY-4: the partner's payout profile (empty until saved).
    pub async fn payout_profile(&self, partner_id: i64) -> AppResult<PayoutProfile> {
        Ok(self.store.payout_profile(partner_id).await?)
    }

    /// Validates and saves the payout profile. Changing (or removing) a PayPal
    /// email already on file needs the current password, checked like a
    /// password change and throttled like a log-in; the old PayPal address and
    /// the account's email are told in the same transaction as the change. The
    /// audit entry names the changed fields, never their values.
    pub async fn save_payout_profile(
        &self,
        partner: &Partner,
        input: &PayoutProfileInput,
        current_password: &str,
    ) -> AppResult<PayoutProfile> {
        not_a_partner_of_ours(partner)?;
        let mut errors = FieldErrors::new();
        let optional = |raw: &str| !raw.trim().is_empty();
        let paypal_email = if optional(&input.paypal_email) {
            errors
                .check("paypal_email", Email::parse(&input.paypal_email))
                .map(|e| e.as_str().to_owned())
        } else {
            None
        };
        let legal_name = if optional(&input.legal_name) {
            errors.check(
                "legal_name",
                clean_text(&input.legal_name, LEGAL_NAME_MAX, true),
            )
        } else {
            None
        };
        let country = if optional(&input.country) {
            errors.check("country", parse_country(&input.country))
        } else {
            None
        };
        let tax_id = if optional(&input.tax_id) {
            errors.check("tax_id", parse_tax_id(&input.tax_id))
        } else {
            None
        };
        let before = self.store.payout_profile(partner.id).await?;
        let paypal_changes = errors.get("paypal_email").is_none()
            && before.paypal_email.is_some()
            && before.paypal_email != paypal_email;
        if paypal_changes
            && paypal_email.is_none()
            && self.has_withdrawal_waiting(partner.id).await?
        {
            errors.add(
                "paypal_email",
                "is needed while a withdrawal waits for approval",
            );
        }
        if paypal_changes {
            self.check_payout_password(partner, current_password, &mut errors)
                .await?;
        }
        errors.into_result()?;
        let after = PayoutProfile {
            paypal_email,
            legal_name,
            country,
            tax_id,
        };
        let changed: Vec<&str> = [
            ("paypal_email", before.paypal_email != after.paypal_email),
            ("legal_name", before.legal_name != after.legal_name),
            ("country", before.country != after.country),
            ("tax_id", before.tax_id != after.tax_id),
        ]
        .into_iter()
        .filter_map(|(field, differs)| differs.then_some(field))
        .collect();
        if changed.is_empty() {
            return Ok(after);
        }
        let mut notices = Vec::new();
        if paypal_changes && let Some(old) = &before.paypal_email {
            let body = format!(
                "Hi {},\n\nthe PayPal email your partner payouts go to was {}.\n\
                 If you did not do this, reply to this email at once.\n",
                partner.name,
                match &after.paypal_email {
                    Some(new) => format!("changed to {}", mask_email(new)),
                    None => "removed".to_owned(),
                },
            );
            let subject = "The PayPal email for your payouts was changed";
            notices.push(self.email(old, subject, body.clone()).about(partner.id));
            if let Some(account) = partner.email.as_deref().filter(|a| *a != old.as_str()) {
                notices.push(self.email(account, subject, body).about(partner.id));
            }
        }
        let actor = format!("partner:{}", partner.public_id);
        let audit = NewAudit::new(
            self.now(),
            actor,
            "partner.payout_profile.update",
            format!("partner:{}", partner.id),
        )
        .before_after(None, Some(serde_json::json!({ "changed": changed })));
        self.store
            .save_payout_profile(partner.id, &after, audit, notices, self.now())
            .await?;
        Ok(after)
    }

    async fn has_withdrawal_waiting(&self, partner_id: i64) -> AppResult<bool> {
        // A partner has few withdrawals in flight; the newest page suffices,
        // since a waiting one is newer than every settled one but a few.
        let rows = self.store.partner_withdrawals(partner_id, 50, 0).await?;
        Ok(rows
            .iter()
            .any(|w| w.withdrawal.status == WithdrawalStatus::Requested))
    }

    /// The current password for a PayPal email change: refused while the
    /// account has had too many wrong tries (as log-in is), a wrong one counted.
    async fn check_payout_password(
        &self,
        partner: &Partner,
        password: &str,
        errors: &mut FieldErrors,
    ) -> AppResult<()> {
        if password.is_empty() {
            errors.add("current_password", "is needed to change the PayPal email");
            return Ok(());
        }
        let key = format!("payout-password:partner:{}", partner.id);
        let limit = LOGIN_PER_ACCOUNT;
        let tries = self
            .store
            .throttle_count(&key, self.now(), limit.window_seconds)
            .await?;
        if tries >= limit.max {
            return Err(AppError::Throttled {
                retry_after_seconds: limit.window_seconds,
            });
        }
        if verify_password(partner.password_hash.as_deref(), password) {
            self.store.throttle_clear(&key).await?;
        } else {
            self.store
                .throttle_hit(&key, self.now(), limit.window_seconds)
                .await?;
            errors.add("current_password", "is not your current password");
        }
        Ok(())
    }

    /// Per currency the partner holds money in: the available balance and
    /// whether a withdrawal may be requested, or why not.
    pub async fn withdrawal_options(&self, partner_id: i64) -> AppResult<Vec<WithdrawalOption>> {
        let settings = self.settings().await?;
        let profile = self.store.payout_profile(partner_id).await?;
        let balances = self.store.partner_balances(partner_id).await?;
        Ok(balances
            .into_iter()
            .map(|row| {
                let minimum = settings.min_withdrawal.get(row.currency.code()).copied();
                let blocked =
                    withdrawal_block(&profile, row.currency, row.balances.available, minimum);
                WithdrawalOption {
                    currency: row.currency,
                    available: row.balances.available,
                    minimum,
                    blocked,
                }
            })
            .collect())
    }

    /// R-PAY-1: requests the whole available balance of `currency`, once it is
    /// at least the currency's `min_withdrawal`, with a PayPal email (R-PAY-2)
    /// and tax details (R-PAY-4) on file. Each request has a fresh random id;
    /// the store serialises requests on the partner's money row.
    pub async fn request_withdrawal(
        &self,
        partner: &Partner,
        currency: &str,
    ) -> AppResult<WithdrawalRow> {
        not_a_partner_of_ours(partner)?;
        let currency = Currency::parse(currency.trim())
            .map_err(|e| FieldErrors::single("currency", e.to_string()))?;
        let settings = self.settings().await?;
        let minimum = settings.min_withdrawal.get(currency.code()).copied();
        let profile = self.store.payout_profile(partner.id).await?;
        let available = self
            .store
            .partner_balances(partner.id)
            .await?
            .into_iter()
            .find(|row| row.currency == currency)
            .map_or(0, |row| row.balances.available);
        if let Some(reason) = withdrawal_block(&profile, currency, available, minimum) {
            return Err(AppError::Conflict(reason));
        }
        let minimum = minimum.unwrap_or_default();
        let id = format!("wd_{}", &random_token()[..22]);
        let actor = format!("partner:{}", partner.public_id);
        let audit = NewAudit::new(
            self.now(),
            actor,
            "withdrawal.request",
            format!("withdrawal:{id}"),
        )
        .before_after(
            None,
            Some(serde_json::json!({ "currency": currency.code() })),
        );
        let request = NewWithdrawal {
            id,
            partner_id: partner.id,
            currency,
            minimum,
            requested_at: self.now(),
            audit,
        };
        match self.store.request_withdrawal(request).await {
            Ok((row, _)) => Ok(row),
            // Another request took the balance first: the store refused inside
            // its transaction and wrote nothing.
            Err(partnerd_store::StoreError::Ledger(reason)) => Err(AppError::Conflict(format!(
                "No withdrawal was made: {reason}."
            ))),
            Err(other) => Err(other.into()),
        }
    }

    /// The partner's withdrawals, newest first.
    pub async fn partner_withdrawals(
        &self,
        partner_id: i64,
        limit: i64,
        offset: i64,
    ) -> AppResult<Vec<WithdrawalRow>> {
        Ok(self
            .store
            .partner_withdrawals(partner_id, limit, offset)
            .await?)
    }

    /// R-ACC-4 ([`App::partner_status`]) with how many days are left for the
    /// missing customers.
    pub async fn activity_status(&self, partner_id: i64) -> AppResult<ActivityStatus> {
        let status = self.partner_status(partner_id).await?;
        let mut days_left = None;
        if !status.active {
            let since = months_before(self.now(), status.window_months);
            let firsts = self.store.first_payments_since(partner_id, since).await?;
            if let Some(oldest) = firsts.first() {
                let leaves = months_after(*oldest, status.window_months);
                let left = leaves.millis() - self.now().millis();
                days_left = Some(((left + DAY_MS - 1) / DAY_MS).max(1));
            }
        }
        Ok(ActivityStatus { status, days_left })
    }

    /// The commission of each of the last `months` UTC months (this one
    /// included, oldest first) in `currency`, by the month of the payment and
    /// after refunds: the panel's chart. Reads newest payments first and stops
    /// at the first one before the window (at most `MAX_CHART_ROWS` rows).
    pub async fn monthly_commission(
        &self,
        partner_id: i64,
        currency: Currency,
        months: usize,
    ) -> AppResult<Vec<((i16, i8), i64)>> {
        let mut month = month_of(self.now());
        let mut window = Vec::with_capacity(months);
        for _ in 0..months.max(1) {
            window.push(month);
            month = if month.1 == 1 {
                (month.0 - 1, 12)
            } else {
                (month.0, month.1 - 1)
            };
        }
        window.reverse();
        let start = month_start(window[0].0, window[0].1).unwrap_or(Timestamp::from_millis(0));
        let mut sums: BTreeMap<(i16, i8), i64> = window.iter().map(|m| (*m, 0)).collect();
        let mut offset = 0;
        'pages: while offset < MAX_CHART_ROWS {
            let rows = self
                .store
                .partner_commissions(partner_id, CHART_PAGE, offset)
                .await?;
            let last_page = (rows.len() as i64) < CHART_PAGE;
            for row in rows {
                if row.paid_at < start {
                    break 'pages;
                }
                if row.currency == currency
                    && let Some(sum) = sums.get_mut(&month_of(row.paid_at))
                {
                    *sum += row.commission;
                }
            }
            if last_page {
                break;
            }
            offset += CHART_PAGE;
        }
        Ok(sums.into_iter().collect())
    }

    /// The months (UTC, newest first) from the partner's first booking to now:
    /// the statements there are.
    pub async fn statement_months(&self, partner_id: i64) -> AppResult<Vec<(i16, i8)>> {
        let days = self.store.partner_activity_days(partner_id).await?;
        let Some(first) = days.first() else {
            return Ok(Vec::new());
        };
        let mut months = Vec::new();
        let mut month = month_of(Timestamp::from_millis(first * DAY_MS));
        let last = month_of(self.now());
        while month <= last {
            months.push(month);
            month = next_month(month.0, month.1);
        }
        months.reverse();
        Ok(months)
    }

    /// A partner's statement of one UTC month: per currency the opening and
    /// closing balances, the commission booked (earned and reversed) and the
    /// payouts that arrived, with the partner's tax details (R-PAY-4). A month
    /// before the first booking or after the current one is `NotFound`.
    pub async fn statement(&self, partner_id: i64, year: i16, month: i8) -> AppResult<Statement> {
        let from = month_start(year, month).ok_or(AppError::NotFound)?;
        let (next_year, next) = next_month(year, month);
        let to = month_start(next_year, next).ok_or(AppError::NotFound)?;
        if !self
            .statement_months(partner_id)
            .await?
            .contains(&(year, month))
        {
            return Err(AppError::NotFound);
        }
        let profile = self.store.payout_profile(partner_id).await?;
        let transfers = self.store.partner_transfers_until(partner_id, to).await?;
        let mut books: BTreeMap<Currency, (PartnerMoney, StatementCurrency)> = BTreeMap::new();
        let broken = |e: partnerd_domain::ledger::LedgerError| AppError::Internal(e.to_string());
        // Balances before the month first (transfers come in booking order,
        // and every leg of a booking shares its time).
        for row in &transfers {
            let t = &row.transfer;
            let (money, view) = books.entry(t.currency).or_insert_with(|| {
                (
                    PartnerMoney::new(partner_id, t.currency),
                    StatementCurrency {
                        currency: t.currency,
                        opening: PartnerBalances::default(),
                        closing: PartnerBalances::default(),
                        earned: 0,
                        reversed: 0,
                        paid_out: 0,
                        lines: Vec::new(),
                        payouts: Vec::new(),
                    },
                )
            });
            if row.created_at < from {
                money.apply(t).map_err(broken)?;
                view.opening = money.balances;
                continue;
            }
            money.apply(t).map_err(broken)?;
            if let Some(kind) = StatementKind::of(&t.source) {
                // Legs into the commission expense earn; legs out of it reverse.
                let signed = if t.debit == Account::CommissionExpense {
                    t.amount
                } else if t.credit == Account::CommissionExpense {
                    -t.amount
                } else {
                    0
                };
                if signed != 0 {
                    match view.lines.last_mut() {
                        Some(line)
                            if line.booked_at == row.created_at
                                && line.kind == kind
                                && line.payment_id == t.invoice =>
                        {
                            line.amount += signed;
                        }
                        _ => view.lines.push(StatementLine {
                            booked_at: row.created_at,
                            kind,
                            payment_id: t.invoice.clone(),
                            amount: signed,
                        }),
                    }
                }
            }
            if let Source::Payout { withdrawal } = &t.source
                && t.credit == Account::PaidOut
            {
                view.paid_out += t.amount;
                view.payouts.push(StatementPayout {
                    withdrawal_id: withdrawal.clone(),
                    paid_at: row.created_at,
                    amount: t.amount,
                });
            }
        }
        let currencies = books
            .into_values()
            .map(|(money, mut view)| {
                view.closing = money.balances;
                view.earned = view.lines.iter().map(|l| l.amount.max(0)).sum();
                view.reversed = view.lines.iter().map(|l| (-l.amount).max(0)).sum();
                view
            })
            .collect();
        Ok(Statement {
            year,
            month,
            from,
            to,
            profile,
            currencies,
        })
    }
}

/// Why a withdrawal of `currency` cannot be requested, in words for the
/// partner; `None` when it can (R-PAY-1, R-PAY-2, R-PAY-4).
pub fn withdrawal_block(
    profile: &PayoutProfile,
    currency: Currency,
    available: i64,
    minimum: Option<i64>,
) -> Option<String> {
    let present = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
    let Some(minimum) = minimum else {
        return Some(format!(
            "The program has not set a minimum withdrawal for {currency} yet, so {currency} cannot be withdrawn; ask the program's team."
        ));
    };
    if available <= 0 || available < minimum {
        return Some(format!(
            "Your available balance of {} is below the {} minimum withdrawal.",
            crate::money::money_text(available.max(0), currency),
            crate::money::money_text(minimum, currency)
        ));
    }
    if !present(&profile.paypal_email) {
        return Some("Add your PayPal email below to withdraw.".into());
    }
    if !(present(&profile.legal_name) && present(&profile.country) && present(&profile.tax_id)) {
        return Some(
            "Add your tax details (legal name, country and tax id) below to withdraw.".into(),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countries_are_the_249_iso_codes_and_parse_in_any_case() {
        assert_eq!(COUNTRIES.split_whitespace().count(), 249);
        assert_eq!(parse_country(" de ").unwrap(), "DE");
        assert!(parse_country("XX").is_err());
        assert!(parse_country("DEU").is_err());
        assert!(parse_country("").is_err());
    }

    #[test]
    fn tax_ids_keep_their_punctuation_and_refuse_the_rest() {
        assert_eq!(parse_tax_id(" DE 123/456-7.8 ").unwrap(), "DE 123/456-7.8");
        assert!(parse_tax_id("=cmd|' /C calc'!A0").is_err());
        assert!(parse_tax_id("---").is_err());
        assert!(parse_tax_id(&"1".repeat(41)).is_err());
    }

    #[test]
    fn a_withdrawal_is_blocked_with_the_first_reason_that_applies() {
        let complete = PayoutProfile {
            paypal_email: Some("a@paypal.test".into()),
            legal_name: Some("Ann Lee".into()),
            country: Some("DE".into()),
            tax_id: Some("DE1".into()),
        };
        let usd = Currency::USD;
        assert_eq!(withdrawal_block(&complete, usd, 5_000, Some(5_000)), None);
        let below = withdrawal_block(&complete, usd, 4_999, Some(5_000)).unwrap();
        assert!(
            below.contains("49.99 USD") && below.contains("50.00 USD"),
            "{below}"
        );
        let no_paypal = PayoutProfile {
            paypal_email: None,
            ..complete.clone()
        };
        assert!(
            withdrawal_block(&no_paypal, usd, 9_000, Some(5_000))
                .unwrap()
                .contains("PayPal")
        );
        let no_tax = PayoutProfile {
            tax_id: Some(" ".into()),
            ..complete.clone()
        };
        assert!(
            withdrawal_block(&no_tax, usd, 9_000, Some(5_000))
                .unwrap()
                .contains("tax")
        );
        assert!(
            withdrawal_block(&complete, usd, 9_000, None)
                .unwrap()
                .contains("minimum")
        );
    }

    #[test]
    fn emails_are_masked_to_their_first_letter() {
        assert_eq!(mask_email("ann.lee@example.com"), "a***@example.com");
    }

    #[test]
    fn months_add_and_wrap() {
        assert_eq!(next_month(2026, 12), (2027, 1));
        let start = month_start(2026, 2).unwrap();
        assert_eq!(month_of(start), (2026, 2));
        assert_eq!(
            month_of(Timestamp::from_millis(start.millis() - 1)),
            (2026, 1)
        );
        assert_eq!(months_after(months_before(start, 3), 3), start);
    }
}
