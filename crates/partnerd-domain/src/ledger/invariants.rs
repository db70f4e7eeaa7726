//! The ledger's invariants I1–I8 (DESIGN.md "The money ledger"), checked on
//! plain records, so the same code runs after every step of the model test and
//! in `partnerd ledger verify` on a live database.
//!
//! Each [`Breach`] says in an operator's words what is wrong and where (which
//! partner, currency, invoice, withdrawal or transfer), with amounts written in
//! their currency.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{
    Account, Balances, Lot, PartnerMoney, PayoutItem, PayoutStatus, Source, Transfer, Withdrawal,
    WithdrawalStatus,
};
use crate::Timestamp;
use crate::commission::{Invoice, Review};
use crate::money::{Currency, Money};

/// The invariants of DESIGN.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Invariant {
    /// Debits = credits: every transfer moves a positive amount between two
    /// accounts, and every partner's stored accounts balance.
    I1,
    /// Available ≥ 0 at every step (and no other balance or lot negative).
    I2,
    /// Each source books at most once.
    I3,
    /// Per invoice, commission = floor(rate × (paid − refunded)).
    I4,
    /// No payout without an approved withdrawal, and none twice.
    I5,
    /// Paid withdrawals = successful payout items.
    I6,
    /// Payout clearing = money in flight.
    I7,
    /// Rebuilding balances from the transfers gives the stored balances.
    I8,
}

impl Invariant {
    pub fn title(self) -> &'static str {
        match self {
            Invariant::I1 => "debits equal credits",
            Invariant::I2 => "no negative balance",
            Invariant::I3 => "each source books once",
            Invariant::I4 => "commission per invoice",
            Invariant::I5 => "payouts only for approved withdrawals, once",
            Invariant::I6 => "paid withdrawals match successful payouts",
            Invariant::I7 => "payout clearing equals money in flight",
            Invariant::I8 => "stored balances match the transfers",
        }
    }
}

/// One invariant that does not hold, said in words an operator understands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Breach {
    pub invariant: Invariant,
    pub message: String,
}

impl std::fmt::Display for Breach {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?} ({}): {}",
            self.invariant,
            self.invariant.title(),
            self.message
        )
    }
}

/// Everything the invariants speak about, as the store holds it.
#[derive(Debug, Clone, Copy)]
pub struct LedgerRecords<'a> {
    /// Every transfer, in booking order.
    pub transfers: &'a [Transfer],
    /// The stored balances and lots of every partner and currency.
    pub balances: &'a [PartnerMoney],
    /// Every invoice with commission (payments of credited customers).
    pub invoices: &'a [Invoice],
    pub withdrawals: &'a [Withdrawal],
    pub payout_items: &'a [PayoutItem],
}

/// Checks I1–I8; an empty answer means the ledger is sound.
pub fn check_invariants(records: &LedgerRecords<'_>) -> Vec<Breach> {
    let mut check = Check::default();
    let rebuilt = check.rebuild(records.transfers);
    check.sources(records.transfers);
    check.stored_accounts_balance(records.balances);
    check.commissions(records.transfers, records.invoices);
    check.payouts(records.withdrawals, records.payout_items);
    check.paid_and_in_flight(&rebuilt, records.withdrawals);
    check.stored_match_rebuilt(records.balances, &rebuilt);
    let mut breaches = check.breaches;
    breaches.sort_by_key(|b| b.invariant);
    breaches
}

#[derive(Default)]
struct Check {
    breaches: Vec<Breach>,
}

type Book = (i64, Currency);

impl Check {
    fn breach(&mut self, invariant: Invariant, message: String) {
        self.breaches.push(Breach { invariant, message });
    }

    /// Rebuilds the balances transfer by transfer (I8's truth), checking each
    /// transfer (I1) and the available balance after each one (I2).
    fn rebuild(&mut self, transfers: &[Transfer]) -> Balances {
        let mut balances = Balances::default();
        let mut went_negative = BTreeSet::new();
        for t in transfers {
            // Only formatted when something is wrong: verify reads every transfer.
            let name = || format!("transfer {} leg {}", t.source, t.leg);
            if t.amount <= 0 {
                let amount = Money::new(t.amount, t.currency);
                self.breach(
                    Invariant::I1,
                    format!(
                        "{} moves {amount}; a transfer must move a positive amount",
                        name()
                    ),
                );
            }
            if t.debit == t.credit {
                self.breach(
                    Invariant::I1,
                    format!(
                        "{} debits and credits the same account ({})",
                        name(),
                        t.debit
                    ),
                );
            }
            if let Err(err) = balances.apply(t) {
                self.breach(
                    Invariant::I8,
                    format!(
                        "{} cannot be applied when rebuilding the balances: {err}",
                        name()
                    ),
                );
                continue;
            }
            let available = balances
                .get(t.partner_id, t.currency)
                .map_or(0, |m| m.balances.available);
            if available < 0 && went_negative.insert((t.partner_id, t.currency)) {
                self.breach(
                    Invariant::I2,
                    format!(
                        "the available balance of partner {} went to {} with {}",
                        t.partner_id,
                        Money::new(available, t.currency),
                        name()
                    ),
                );
            }
        }
        for money in balances.iter() {
            let b = money.balances;
            for (what, value) in [
                ("held", b.held),
                ("on review", b.on_review),
                ("in flight", b.in_flight),
                ("paid", b.paid),
                ("clawback", b.clawback),
            ] {
                if value < 0 {
                    self.breach(
                        Invariant::I2,
                        format!(
                            "partner {} has {} {what}",
                            money.partner_id,
                            Money::new(value, money.currency)
                        ),
                    );
                }
            }
            for (invoice, lot) in &money.lots {
                if lot.held < 0 || lot.on_review < 0 {
                    self.breach(
                        Invariant::I2,
                        format!(
                            "partner {} has a negative amount held for invoice {invoice} ({})",
                            money.partner_id,
                            describe_lot(lot, money.currency)
                        ),
                    );
                }
            }
        }
        balances
    }

    /// I3: `(source, leg)` is unique, and a source books for one partner and
    /// currency only.
    fn sources(&mut self, transfers: &[Transfer]) {
        let mut legs: BTreeMap<(&Source, u32), usize> = BTreeMap::new();
        let mut books: BTreeMap<&Source, BTreeSet<Book>> = BTreeMap::new();
        for t in transfers {
            *legs.entry((&t.source, t.leg)).or_default() += 1;
            books
                .entry(&t.source)
                .or_default()
                .insert((t.partner_id, t.currency));
        }
        for ((key, leg), count) in legs {
            if count > 1 {
                self.breach(
                    Invariant::I3,
                    format!("{key} (leg {leg}) is booked {count} times; an event books once"),
                );
            }
        }
        for (key, books) in books {
            if books.len() > 1 {
                let list: Vec<String> = books
                    .iter()
                    .map(|(partner, currency)| format!("partner {partner} in {currency}"))
                    .collect();
                self.breach(
                    Invariant::I3,
                    format!(
                        "{key} is booked for {}; an event books once",
                        list.join(" and ")
                    ),
                );
            }
        }
    }

    /// I1 on the stored rows: what the program owes the partner (held, on
    /// review, available, in flight, paid) equals what it spent on them (earned)
    /// plus what they owe (clawback).
    fn stored_accounts_balance(&mut self, stored: &[PartnerMoney]) {
        for money in stored {
            let b = money.balances;
            let owed: i128 = [b.held, b.on_review, b.available, b.in_flight, b.paid]
                .into_iter()
                .map(i128::from)
                .sum();
            let spent = i128::from(b.earned) + i128::from(b.clawback);
            if owed != spent {
                self.breach(
                    Invariant::I1,
                    format!(
                        "the stored accounts of partner {} in {} do not balance: held, on review, \
                         available, in flight and paid add up to {}, but earned plus clawback is {}",
                        money.partner_id,
                        money.currency,
                        amount_i128(owed, money.currency),
                        amount_i128(spent, money.currency)
                    ),
                );
            }
        }
    }

    /// I4: every invoice's commission, as recorded and as the ledger holds it,
    /// is the commission of its totals.
    fn commissions(&mut self, transfers: &[Transfer], invoices: &[Invoice]) {
        // The ledger's commission per invoice: what left the expense for it.
        let mut held: BTreeMap<&str, (BTreeSet<Book>, i128)> = BTreeMap::new();
        for t in transfers {
            let sign = match (t.debit, t.credit) {
                (Account::CommissionExpense, _) => 1,
                (_, Account::CommissionExpense) => -1,
                _ => continue,
            };
            let Some(invoice) = t.invoice.as_deref() else {
                self.breach(
                    Invariant::I4,
                    format!(
                        "transfer {} leg {} moves {} of commission without naming its invoice",
                        t.source,
                        t.leg,
                        Money::new(t.amount, t.currency)
                    ),
                );
                continue;
            };
            let entry = held.entry(invoice).or_default();
            entry.0.insert((t.partner_id, t.currency));
            entry.1 += sign * i128::from(t.amount);
        }
        let mut known = BTreeSet::new();
        for invoice in invoices {
            known.insert(invoice.id.as_str());
            let (books, in_ledger) = held.get(invoice.id.as_str()).cloned().unwrap_or_default();
            let currency = invoice.payment.as_ref().map(|p| p.currency);
            let show = |amount: i128| match currency {
                Some(currency) => amount_i128(amount, currency),
                None => format!("{amount} (minor units)"),
            };
            let expected = match invoice.commission() {
                Ok(expected) => expected,
                Err(err) => {
                    self.breach(
                        Invariant::I4,
                        format!(
                            "the commission of invoice {} cannot be computed: {err}",
                            invoice.id
                        ),
                    );
                    continue;
                }
            };
            let why = explain(invoice);
            if invoice.booked != expected {
                self.breach(
                    Invariant::I4,
                    format!(
                        "invoice {} should have {} of commission ({why}), but its record says {} \
                         was booked",
                        invoice.id,
                        show(expected.into()),
                        show(invoice.booked.into())
                    ),
                );
            }
            if in_ledger != i128::from(expected) {
                self.breach(
                    Invariant::I4,
                    format!(
                        "invoice {} should have {} of commission ({why}), but the ledger holds {} \
                         for it",
                        invoice.id,
                        show(expected.into()),
                        show(in_ledger)
                    ),
                );
            }
            let payment_book = invoice.payment.as_ref().map(|p| (p.partner_id, p.currency));
            let stray: Vec<String> = books
                .iter()
                .filter(|book| Some(**book) != payment_book)
                .map(|(partner, currency)| format!("partner {partner} in {currency}"))
                .collect();
            if !stray.is_empty() {
                self.breach(
                    Invariant::I4,
                    format!(
                        "commission of invoice {} is booked for {}, not for the partner and \
                         currency of its payment",
                        invoice.id,
                        stray.join(" and ")
                    ),
                );
            }
        }
        for (invoice, (_, amount)) in held {
            if !known.contains(invoice) {
                self.breach(
                    Invariant::I4,
                    format!(
                        "the ledger holds commission ({amount} minor units) for invoice {invoice}, \
                         which has no record"
                    ),
                );
            }
        }
    }

    /// I5 and the first half of I6: payout items belong, one each, to approved
    /// withdrawals with the same amount; paid withdrawals are exactly those
    /// whose payout succeeded.
    fn payouts(&mut self, withdrawals: &[Withdrawal], items: &[PayoutItem]) {
        let mut by_id: BTreeMap<&str, &Withdrawal> = BTreeMap::new();
        for w in withdrawals {
            if by_id.insert(w.id.as_str(), w).is_some() {
                self.breach(
                    Invariant::I5,
                    format!("withdrawal {} is recorded more than once", w.id),
                );
            }
        }
        let mut items_of: BTreeMap<&str, Vec<&PayoutItem>> = BTreeMap::new();
        for item in items {
            items_of
                .entry(item.withdrawal_id.as_str())
                .or_default()
                .push(item);
            let Some(w) = by_id.get(item.withdrawal_id.as_str()) else {
                self.breach(
                    Invariant::I5,
                    format!(
                        "a payout of {} is recorded for withdrawal {}, which does not exist",
                        Money::new(item.amount, item.currency),
                        item.withdrawal_id
                    ),
                );
                continue;
            };
            if matches!(
                w.status,
                WithdrawalStatus::Requested | WithdrawalStatus::Rejected
            ) {
                self.breach(
                    Invariant::I5,
                    format!(
                        "withdrawal {} has a payout but is {}: only approved withdrawals are paid",
                        w.id, w.status
                    ),
                );
            }
            if (item.partner_id, item.currency, item.amount) != (w.partner_id, w.currency, w.amount)
            {
                self.breach(
                    Invariant::I5,
                    format!(
                        "the payout of withdrawal {} sends {} to partner {}, but the withdrawal is \
                         {} for partner {}",
                        w.id,
                        Money::new(item.amount, item.currency),
                        item.partner_id,
                        Money::new(w.amount, w.currency),
                        w.partner_id
                    ),
                );
            }
        }
        for w in withdrawals {
            let items = items_of
                .get(w.id.as_str())
                .map(Vec::as_slice)
                .unwrap_or_default();
            if items.len() > 1 {
                self.breach(
                    Invariant::I5,
                    format!(
                        "withdrawal {} has {} payouts; a withdrawal is paid out once",
                        w.id,
                        items.len()
                    ),
                );
            }
            let approved = matches!(
                w.status,
                WithdrawalStatus::Approved | WithdrawalStatus::Paid | WithdrawalStatus::Failed
            );
            if approved && items.is_empty() {
                self.breach(
                    Invariant::I5,
                    format!("withdrawal {} is {} but has no payout", w.id, w.status),
                );
            }
            let succeeded = items.iter().any(|i| i.status == PayoutStatus::Success);
            let paid = w.status == WithdrawalStatus::Paid;
            if paid && !succeeded {
                let reported: Vec<&str> = items.iter().map(|i| i.status.as_str()).collect();
                self.breach(
                    Invariant::I6,
                    format!(
                        "withdrawal {} is marked paid, but its payout is {}",
                        w.id,
                        if reported.is_empty() {
                            "missing".to_owned()
                        } else {
                            reported.join(", ")
                        }
                    ),
                );
            }
            if succeeded && !paid {
                self.breach(
                    Invariant::I6,
                    format!(
                        "the payout of withdrawal {} succeeded, but the withdrawal is {}",
                        w.id, w.status
                    ),
                );
            }
        }
    }

    /// The second half of I6 (paid out = paid withdrawals) and I7 (payout
    /// clearing = withdrawals in flight), per partner and currency.
    fn paid_and_in_flight(&mut self, rebuilt: &Balances, withdrawals: &[Withdrawal]) {
        let mut expected: BTreeMap<Book, (i128, i128)> = rebuilt
            .iter()
            .map(|m| ((m.partner_id, m.currency), (0, 0)))
            .collect();
        for w in withdrawals {
            let entry = expected.entry((w.partner_id, w.currency)).or_default();
            if w.status == WithdrawalStatus::Paid {
                entry.0 += i128::from(w.amount);
            }
            if w.status.is_in_flight() {
                entry.1 += i128::from(w.amount);
            }
        }
        for ((partner, currency), (paid, in_flight)) in expected {
            let b = rebuilt
                .get(partner, currency)
                .map(|m| m.balances)
                .unwrap_or_default();
            if i128::from(b.paid) != paid {
                self.breach(
                    Invariant::I6,
                    format!(
                        "partner {partner}'s paid withdrawals in {currency} add up to {}, but the \
                         ledger has {} paid out to them",
                        amount_i128(paid, currency),
                        Money::new(b.paid, currency)
                    ),
                );
            }
            if i128::from(b.in_flight) != in_flight {
                self.breach(
                    Invariant::I7,
                    format!(
                        "payout clearing holds {} for partner {partner}, but their withdrawals in \
                         flight add up to {}",
                        Money::new(b.in_flight, currency),
                        amount_i128(in_flight, currency)
                    ),
                );
            }
        }
    }

    /// I8: the stored balances and lots are what the transfers add up to.
    fn stored_match_rebuilt(&mut self, stored: &[PartnerMoney], rebuilt: &Balances) {
        let mut by_book: BTreeMap<Book, &PartnerMoney> = BTreeMap::new();
        for money in stored {
            if by_book
                .insert((money.partner_id, money.currency), money)
                .is_some()
            {
                self.breach(
                    Invariant::I8,
                    format!(
                        "the balances of partner {} in {} are stored more than once",
                        money.partner_id, money.currency
                    ),
                );
            }
        }
        let books: BTreeSet<Book> = by_book
            .keys()
            .copied()
            .chain(rebuilt.iter().map(|m| (m.partner_id, m.currency)))
            .collect();
        for (partner, currency) in books {
            let empty = PartnerMoney::new(partner, currency);
            let stored = by_book.get(&(partner, currency)).copied().unwrap_or(&empty);
            let truth = rebuilt.get(partner, currency).unwrap_or(&empty);
            for account in Account::ALL {
                let (s, t) = (stored.balances.get(account), truth.balances.get(account));
                if s != t {
                    self.breach(
                        Invariant::I8,
                        format!(
                            "partner {partner}'s stored {} is {}, but the transfers add up to {}",
                            balance_name(account),
                            Money::new(s, currency),
                            Money::new(t, currency)
                        ),
                    );
                }
            }
            let invoices: BTreeSet<&String> = stored.lots.keys().chain(truth.lots.keys()).collect();
            for invoice in invoices {
                let (s, t) = (stored.lot(invoice), truth.lot(invoice));
                if s != t {
                    self.breach(
                        Invariant::I8,
                        format!(
                            "partner {partner}'s stored commission for invoice {invoice} is ({}), \
                             but the transfers give ({})",
                            describe_lot(&s, currency),
                            describe_lot(&t, currency)
                        ),
                    );
                }
            }
        }
    }
}

/// The name of an account's balance as the partner reads it.
fn balance_name(account: Account) -> &'static str {
    match account {
        Account::CommissionExpense => "earned commission",
        Account::PayoutClearing => "money in flight",
        Account::PaidOut => "paid out",
        Account::Held => "held",
        Account::OnReview => "on review",
        Account::Available => "available",
        Account::Clawback => "clawback",
    }
}

fn describe_lot(lot: &Lot, currency: Currency) -> String {
    let hold = lot.release_at.map_or("no hold".to_owned(), |at| {
        format!("hold ends {}", utc_text(at))
    });
    format!(
        "held {}, on review {}, {hold}, {} release(s)",
        Money::new(lot.held, currency),
        Money::new(lot.on_review, currency),
        lot.releases
    )
}

/// `2024-01-31 23:59 UTC`, for operators (the domain crate has no date
/// library; this is the proleptic Gregorian calendar, as in `jiff`).
fn utc_text(at: Timestamp) -> String {
    let minutes = at.millis().div_euclid(60_000);
    let (days, minute_of_day) = (minutes.div_euclid(1440), minutes.rem_euclid(1440));
    // Howard Hinnant's civil_from_days, on 400-year eras from 0000-03-01.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        minute_of_day / 60,
        minute_of_day % 60
    )
}

/// How I4 computes an invoice's commission, for the breach message.
fn explain(invoice: &Invoice) -> String {
    match &invoice.payment {
        None => "its payment has not arrived".to_owned(),
        Some(_) if invoice.review == Review::Rejected => "it was rejected on review".to_owned(),
        Some(p) => format!(
            "{} of {} paid minus {} refunded or charged back, rounded down",
            p.rate,
            Money::new(p.amount, p.currency),
            amount_i128(invoice.refunded(), p.currency)
        ),
    }
}

/// Shows a sum that may not fit the ledger's `i64`.
fn amount_i128(amount: i128, currency: Currency) -> String {
    match i64::try_from(amount) {
        Ok(minor) => Money::new(minor, currency).to_string(),
        Err(_) => format!("{amount} minor units of {currency}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_shown_in_utc() {
        assert_eq!(utc_text(Timestamp::from_millis(0)), "1970-01-01 00:00 UTC");
        assert_eq!(
            utc_text(Timestamp::from_millis(1_700_000_000_000)),
            "2023-11-14 22:13 UTC"
        );
        assert_eq!(
            utc_text(Timestamp::from_millis(951_782_400_000)),
            "2000-02-29 00:00 UTC"
        );
        assert_eq!(
            utc_text(Timestamp::from_millis(-60_000)),
            "1969-12-31 23:59 UTC"
        );
        // Any stored value can be shown, however wrong.
        for extreme in [i64::MIN, i64::MAX] {
            assert!(utc_text(Timestamp::from_millis(extreme)).ends_with(" UTC"));
        }
    }
}
