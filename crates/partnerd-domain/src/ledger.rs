//! The money ledger (DESIGN.md "The money ledger"): double-entry and
//! append-only, with pure planners that say what to book.
//!
//! # Accounts
//! Every partner has, per currency, the accounts a partner sees:
//! **held** (commission in its hold, R-COM-4), **on review** (waits for a
//! person, R-COM-4), **available** (withdrawable, R-PAY-1) and **clawback**
//! (owed after a reversal of money already paid out, R-COM-3). The program has,
//! per currency, **commission expense** (where every commission comes from and
//! every reversal goes back to), **payout clearing** (money in flight to PayPal,
//! I7) and **paid out** (money that arrived). Each transfer names its partner, so
//! a program account also has a slice per partner: the partner's *earned*,
//! *in flight* and *paid*.
//!
//! A [`Transfer`] debits one account and credits another with a positive
//! amount. Balances of what the program owes (held, on review, available,
//! in flight, paid) are credits − debits; the two accounts that run the other
//! way (commission expense = earned, clawback = owed by the partner) are
//! debits − credits. So for every partner and currency
//! `held + on_review + available + in_flight + paid = earned + clawback` (I1).
//!
//! # Idempotency
//! Every transfer belongs to a booking named by a [`Source`] from the event
//! behind it (`com:{payment}`, `ref:{refund}`, `wd:{withdrawal}` …); a booking
//! may need several transfers, numbered by `leg`. The store keeps
//! `(source, leg)` unique, so a replayed event cannot book twice (I3).
//!
//! # Lots: each invoice's commission keeps its own hold
//! Money in held and on review is tracked per invoice (a [`Lot`]): the hold
//! protects the refund window of *that* payment, and a release moves exactly
//! the lots whose hold ended. Transfers touching held or on review name the
//! invoice; credits into them carry the time the hold ends.
//!
//! # How the planners decide
//! - **Earning** (a positive commission delta, R-COM-1): into the invoice's
//!   on-review lot when the invoice waits for a review; else into its held lot
//!   while its hold runs (`paid_at + hold_days`); else, when the hold already
//!   ended (a late event, `hold_days = 0`), straight to the partner as below.
//! - **Reversal** (a negative delta: refund, chargeback, rejection, R-COM-3):
//!   from the invoice's own lot first (its on-review part, then its held part;
//!   at most one of them holds money), then from available, and whatever is
//!   left becomes clawback. It never takes another invoice's lot: that money's
//!   hold protects another payment, and taking only from its own lot makes the
//!   end state independent of the order events arrive in.
//! - **Clawback payoff**: money pays off clawback the moment it reaches the
//!   partner, before any of it becomes available: a hold release, an approval
//!   after the hold, a late earning, a payout that came back. So later earnings
//!   pay off clawback first, and clawback > 0 always means available = 0.
//!   (Paying at release rather than at booking keeps a held lot intact for the
//!   refunds of its own invoice.)
//! - **Release** (R-COM-4): every lot whose hold ended moves from held to the
//!   partner; the caller passes `now`.
//! - **Review** (R-COM-4): approval moves the on-review lot to held while its
//!   hold runs, else to the partner; rejection makes the invoice's commission
//!   zero and reverses it like a refund. An admin may put a commission back on
//!   review: its held lot moves to on review (money already released stays).
//! - **Withdrawals and payouts** (R-PAY-1..3) live in [`withdrawal`].
//!
//! # How the store uses it
//! In one transaction: read (and lock) the partner's [`PartnerMoney`] for the
//! currency with the lots it needs, call a planner, which updates the money
//! (and the invoice or withdrawal) in place and returns the transfers, then
//! insert the transfers and write back the updated rows. A planner that refuses
//! changes nothing.

mod invariants;
pub mod withdrawal;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Timestamp;
use crate::commission::{CommissionError, Invoice, Review};
use crate::money::{Currency, Money, MoneyError, add, sub};

pub use invariants::{Breach, Invariant, LedgerRecords, check_invariants};
pub use withdrawal::{
    PayoutItem, PayoutOutcome, PayoutStatus, Withdrawal, WithdrawalStatus, approve_withdrawal,
    record_payout_status, reject_withdrawal, request_withdrawal,
};

/// Why a planner refused, or why transfers cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error(transparent)]
    Money(#[from] MoneyError),
    #[error(transparent)]
    Commission(#[from] CommissionError),
    #[error(
        "transfer {key} belongs to partner {found_partner} in {found_currency}, \
         not to partner {partner} in {currency}"
    )]
    WrongBook {
        key: String,
        partner: i64,
        currency: Currency,
        found_partner: i64,
        found_currency: Currency,
    },
    #[error("transfer {0} moves held or on-review money without naming its invoice")]
    MissingInvoice(String),
    #[error("{0:?} is not a ledger source key")]
    BadSourceKey(String),
    #[error("{0} does not name a billing event or a review decision, so it cannot book commission")]
    NotACommissionEvent(String),
    #[error("hold days must not be negative, got {0}")]
    InvalidHoldDays(i64),
    #[error("the available balance of {available} is below the minimum withdrawal of {minimum}")]
    BelowMinimum { available: Money, minimum: Money },
    #[error("there is no available balance in {0} to withdraw")]
    NothingToWithdraw(Currency),
    #[error("withdrawal {id} is {status}, so it cannot be {action}")]
    WithdrawalState {
        id: String,
        status: WithdrawalStatus,
        action: &'static str,
    },
    #[error(
        "the payout of withdrawal {id} is reported {reported} after {recorded}: \
         its money already came back to the partner, so a person must look at it"
    )]
    PayoutConflict {
        id: String,
        recorded: PayoutStatus,
        reported: PayoutStatus,
    },
    #[error("payout item for withdrawal {item} does not belong to withdrawal {withdrawal}")]
    ItemMismatch { item: String, withdrawal: String },
    #[error(
        "booking {key} would leave {account} of partner {partner} negative; nothing was booked"
    )]
    WouldGoNegative {
        key: String,
        partner: i64,
        account: &'static str,
    },
}

/// An account of the ledger. Partner accounts exist per partner and currency;
/// program accounts per currency, with a slice per partner (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Account {
    /// R-COM-4: commission in its hold period, tracked per invoice.
    Held,
    /// R-COM-4: commission waiting for a person, tracked per invoice.
    OnReview,
    /// R-PAY-1: what the partner can withdraw.
    Available,
    /// R-COM-3: what the partner owes after a reversal of money already gone.
    Clawback,
    /// Program: the source of every commission and the sink of every reversal.
    CommissionExpense,
    /// Program: withdrawals on their way to PayPal (I7).
    PayoutClearing,
    /// Program: payouts that arrived.
    PaidOut,
}

impl Account {
    pub const ALL: [Account; 7] = [
        Account::Held,
        Account::OnReview,
        Account::Available,
        Account::Clawback,
        Account::CommissionExpense,
        Account::PayoutClearing,
        Account::PaidOut,
    ];

    /// The spelling in the store's text column.
    pub fn as_str(self) -> &'static str {
        match self {
            Account::Held => "held",
            Account::OnReview => "on_review",
            Account::Available => "available",
            Account::Clawback => "clawback",
            Account::CommissionExpense => "commission_expense",
            Account::PayoutClearing => "payout_clearing",
            Account::PaidOut => "paid_out",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == value)
    }

    /// Accounts whose balance grows with debits: the expense (what the program
    /// spent on commission) and clawback (what the partner owes).
    fn grows_with_debits(self) -> bool {
        matches!(self, Account::Clawback | Account::CommissionExpense)
    }

    /// Accounts tracked per invoice (lots).
    fn is_lot(self) -> bool {
        matches!(self, Account::Held | Account::OnReview)
    }
}

impl std::fmt::Display for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The event a booking comes from; its key is the idempotency key (I3).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Source {
    /// `com:{payment}`: the commission on a payment (R-COM-1).
    Commission { payment: String },
    /// `ref:{refund}`: the reversal for a refund (R-COM-3).
    Refund { refund: String },
    /// `cb:{chargeback}`: the reversal for a chargeback (R-COM-3).
    Chargeback { chargeback: String },
    /// `rein:{chargeback}`: commission back after a won dispute.
    Reinstatement { chargeback: String },
    /// `rej:{invoice}`: a person rejected the commission (R-COM-4); final.
    Rejection { invoice: String },
    /// `rev:{review}`: a commission put on review; `review` is the caller's id
    /// for that review case.
    PutOnReview { review: String },
    /// `apr:{review}`: a person approved the review case `review`.
    Approval { review: String },
    /// `rel:{invoice}#{n}`: the n-th hold release of an invoice's lot (one,
    /// unless the hold moved).
    Release { invoice: String, n: u32 },
    /// `wd:{withdrawal}`: a withdrawal request (R-PAY-1).
    Withdrawal { withdrawal: String },
    /// `paid:{withdrawal}`: its payout arrived (R-PAY-3).
    Payout { withdrawal: String },
    /// `back:{withdrawal}`: its money came back: rejected, failed, returned …
    MoneyBack { withdrawal: String },
}

impl Source {
    pub fn key(&self) -> String {
        self.to_string()
    }

    /// The sources a commission change is booked under (I4).
    fn is_commission_event(&self) -> bool {
        matches!(
            self,
            Source::Commission { .. }
                | Source::Refund { .. }
                | Source::Chargeback { .. }
                | Source::Reinstatement { .. }
                | Source::Rejection { .. }
        )
    }

    /// Reads a key written by [`Source::key`].
    pub fn parse(key: &str) -> Result<Self, LedgerError> {
        let bad = || LedgerError::BadSourceKey(key.to_owned());
        let (kind, id) = key.split_once(':').ok_or_else(bad)?;
        if id.is_empty() {
            return Err(bad());
        }
        let id = id.to_owned();
        Ok(match kind {
            "com" => Source::Commission { payment: id },
            "ref" => Source::Refund { refund: id },
            "cb" => Source::Chargeback { chargeback: id },
            "rein" => Source::Reinstatement { chargeback: id },
            "rej" => Source::Rejection { invoice: id },
            "rev" => Source::PutOnReview { review: id },
            "apr" => Source::Approval { review: id },
            "rel" => {
                let (invoice, n) = id.rsplit_once('#').ok_or_else(bad)?;
                let n = n.parse().map_err(|_| bad())?;
                Source::Release {
                    invoice: invoice.to_owned(),
                    n,
                }
            }
            "wd" => Source::Withdrawal { withdrawal: id },
            "paid" => Source::Payout { withdrawal: id },
            "back" => Source::MoneyBack { withdrawal: id },
            _ => return Err(bad()),
        })
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Commission { payment } => write!(f, "com:{payment}"),
            Source::Refund { refund } => write!(f, "ref:{refund}"),
            Source::Chargeback { chargeback } => write!(f, "cb:{chargeback}"),
            Source::Reinstatement { chargeback } => write!(f, "rein:{chargeback}"),
            Source::Rejection { invoice } => write!(f, "rej:{invoice}"),
            Source::PutOnReview { review } => write!(f, "rev:{review}"),
            Source::Approval { review } => write!(f, "apr:{review}"),
            Source::Release { invoice, n } => write!(f, "rel:{invoice}#{n}"),
            Source::Withdrawal { withdrawal } => write!(f, "wd:{withdrawal}"),
            Source::Payout { withdrawal } => write!(f, "paid:{withdrawal}"),
            Source::MoneyBack { withdrawal } => write!(f, "back:{withdrawal}"),
        }
    }
}

impl TryFrom<String> for Source {
    type Error = LedgerError;

    fn try_from(key: String) -> Result<Self, Self::Error> {
        Self::parse(&key)
    }
}

impl From<Source> for String {
    fn from(source: Source) -> Self {
        source.key()
    }
}

/// One movement of money: `amount` (minor units, > 0) from the `debit`
/// account to the `credit` account of one partner's book in one currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    pub source: Source,
    /// Position within its booking: 0, 1, 2 … `(source, leg)` is unique (I3).
    pub leg: u32,
    pub partner_id: i64,
    pub currency: Currency,
    pub debit: Account,
    pub credit: Account,
    pub amount: i64,
    /// The invoice whose commission this moves. Required when held or on
    /// review is touched (the lot); set on every commission booking (I4).
    pub invoice: Option<String>,
    /// On credits into held or on review: when the invoice's hold ends.
    pub release_at: Option<Timestamp>,
}

/// A partner's balances in one currency, as the panel and the API show them
/// (`GET /partners/{id}/balance`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartnerBalances {
    /// Commission earned, net of reversals: the partner's slice of the expense.
    pub earned: i64,
    pub held: i64,
    pub on_review: i64,
    pub available: i64,
    /// The partner's slice of payout clearing: withdrawals not yet arrived.
    pub in_flight: i64,
    pub paid: i64,
    /// What the partner owes (R-COM-3), as a positive number.
    pub clawback: i64,
}

impl PartnerBalances {
    /// The balance of one account, in the sign the partner reads it.
    pub fn get(&self, account: Account) -> i64 {
        match account {
            Account::Held => self.held,
            Account::OnReview => self.on_review,
            Account::Available => self.available,
            Account::Clawback => self.clawback,
            Account::CommissionExpense => self.earned,
            Account::PayoutClearing => self.in_flight,
            Account::PaidOut => self.paid,
        }
    }

    fn slot(&mut self, account: Account) -> &mut i64 {
        match account {
            Account::Held => &mut self.held,
            Account::OnReview => &mut self.on_review,
            Account::Available => &mut self.available,
            Account::Clawback => &mut self.clawback,
            Account::CommissionExpense => &mut self.earned,
            Account::PayoutClearing => &mut self.in_flight,
            Account::PaidOut => &mut self.paid,
        }
    }

    /// Posts one side of a transfer.
    fn post(&mut self, account: Account, amount: i64, is_credit: bool) -> Result<(), MoneyError> {
        let slot = self.slot(account);
        *slot = if is_credit != account.grows_with_debits() {
            add(*slot, amount)?
        } else {
            sub(*slot, amount)?
        };
        Ok(())
    }
}

/// The part of held and on review that belongs to one invoice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lot {
    /// When the hold ends: fixed by the first credit (`paid_at + hold_days`),
    /// moved later only if a later credit carries a later time.
    pub release_at: Option<Timestamp>,
    pub held: i64,
    pub on_review: i64,
    /// Hold releases booked so far; numbers the next release key.
    pub releases: u32,
}

impl Lot {
    /// Whether the hold has ended at `now`. A lot with no credit yet has none.
    pub fn hold_ended(&self, now: Timestamp) -> bool {
        self.release_at.is_none_or(|at| at <= now)
    }
}

/// One partner's money in one currency: the balances and the lots the store
/// loaded. What a planner reads and updates inside the store's transaction.
///
/// The store must load the lot of every invoice a planner is asked about (and,
/// for [`release_holds`], every lot whose hold ended); a lot that is not loaded
/// counts as empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartnerMoney {
    pub partner_id: i64,
    pub currency: Currency,
    pub balances: PartnerBalances,
    /// Invoice id → its lot.
    pub lots: BTreeMap<String, Lot>,
}

impl PartnerMoney {
    pub fn new(partner_id: i64, currency: Currency) -> Self {
        Self {
            partner_id,
            currency,
            balances: PartnerBalances::default(),
            lots: BTreeMap::new(),
        }
    }

    /// The lot of an invoice, empty if it has none yet.
    pub fn lot(&self, invoice: &str) -> Lot {
        self.lots.get(invoice).copied().unwrap_or_default()
    }

    /// Applies one transfer to the balances and lots. Applies whatever it is
    /// given (the invariant checker needs to rebuild even a broken ledger);
    /// the planners check their own transfers before they commit.
    pub fn apply(&mut self, transfer: &Transfer) -> Result<(), LedgerError> {
        if transfer.partner_id != self.partner_id || transfer.currency != self.currency {
            return Err(LedgerError::WrongBook {
                key: transfer_name(transfer),
                partner: self.partner_id,
                currency: self.currency,
                found_partner: transfer.partner_id,
                found_currency: transfer.currency,
            });
        }
        let touches_lot = transfer.debit.is_lot() || transfer.credit.is_lot();
        let lot = if touches_lot || transfer.release_at.is_some() {
            let invoice = transfer
                .invoice
                .as_ref()
                .ok_or_else(|| LedgerError::MissingInvoice(transfer_name(transfer)))?;
            Some(self.lots.entry(invoice.clone()).or_default())
        } else {
            None
        };
        if let Some(lot) = lot {
            for (account, is_credit) in [(transfer.debit, false), (transfer.credit, true)] {
                let slot = match account {
                    Account::Held => &mut lot.held,
                    Account::OnReview => &mut lot.on_review,
                    _ => continue,
                };
                *slot = if is_credit {
                    add(*slot, transfer.amount)?
                } else {
                    sub(*slot, transfer.amount)?
                };
            }
            if let Some(at) = transfer.release_at {
                lot.release_at = Some(lot.release_at.map_or(at, |known| known.max(at)));
            }
            if let Source::Release { n, .. } = transfer.source {
                lot.releases = lot.releases.max(n);
            }
        }
        self.balances.post(transfer.debit, transfer.amount, false)?;
        self.balances.post(transfer.credit, transfer.amount, true)?;
        Ok(())
    }

    pub fn apply_all(&mut self, transfers: &[Transfer]) -> Result<(), LedgerError> {
        transfers.iter().try_for_each(|t| self.apply(t))
    }

    /// Applies a planner's transfers all or nothing, refusing any that would
    /// leave a balance or a lot negative (which would be a planner bug).
    fn commit(&mut self, transfers: &[Transfer]) -> Result<(), LedgerError> {
        let mut next = self.clone();
        next.apply_all(transfers)?;
        let b = next.balances;
        let negative = [
            ("held", b.held),
            ("on review", b.on_review),
            ("available", b.available),
            ("in flight", b.in_flight),
            ("paid", b.paid),
            ("clawback", b.clawback),
        ]
        .into_iter()
        .chain(
            next.lots
                .values()
                .flat_map(|l| [("a held lot", l.held), ("an on-review lot", l.on_review)]),
        )
        .find(|(_, value)| *value < 0);
        if let Some((account, _)) = negative {
            return Err(LedgerError::WouldGoNegative {
                key: transfers.first().map(transfer_name).unwrap_or_default(),
                partner: self.partner_id,
                account,
            });
        }
        *self = next;
        Ok(())
    }
}

fn transfer_name(transfer: &Transfer) -> String {
    format!("{} leg {}", transfer.source, transfer.leg)
}

/// Every partner's money, rebuilt from the transfers (I8).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Balances {
    partners: BTreeMap<(i64, Currency), PartnerMoney>,
}

impl Balances {
    /// Rebuilds all balances and lots from the transfers, in booking order.
    pub fn from_transfers<'a>(
        transfers: impl IntoIterator<Item = &'a Transfer>,
    ) -> Result<Self, LedgerError> {
        let mut balances = Self::default();
        for transfer in transfers {
            balances.apply(transfer)?;
        }
        Ok(balances)
    }

    /// Applies one more transfer (the incremental form of the rebuild).
    pub fn apply(&mut self, transfer: &Transfer) -> Result<(), LedgerError> {
        self.partners
            .entry((transfer.partner_id, transfer.currency))
            .or_insert_with(|| PartnerMoney::new(transfer.partner_id, transfer.currency))
            .apply(transfer)
    }

    pub fn get(&self, partner_id: i64, currency: Currency) -> Option<&PartnerMoney> {
        self.partners.get(&(partner_id, currency))
    }

    /// Every partner's money, ordered by partner and currency.
    pub fn iter(&self) -> impl Iterator<Item = &PartnerMoney> {
        self.partners.values()
    }

    /// The program's payout clearing account in one currency (I7): the sum of
    /// every partner's money in flight.
    pub fn payout_clearing(&self, currency: Currency) -> Result<i64, MoneyError> {
        self.partners
            .values()
            .filter(|m| m.currency == currency)
            .try_fold(0, |sum, m| add(sum, m.balances.in_flight))
    }
}

/// Collects the transfers of one booking, numbering the legs and dropping
/// empty ones.
struct Booking {
    source: Source,
    partner_id: i64,
    currency: Currency,
    invoice: Option<String>,
    transfers: Vec<Transfer>,
}

impl Booking {
    fn new(money: &PartnerMoney, source: Source, invoice: Option<&str>) -> Self {
        Self {
            source,
            partner_id: money.partner_id,
            currency: money.currency,
            invoice: invoice.map(str::to_owned),
            transfers: Vec::new(),
        }
    }

    fn leg(&mut self, debit: Account, credit: Account, amount: i64, release_at: Option<Timestamp>) {
        if amount <= 0 {
            return;
        }
        let leg = u32::try_from(self.transfers.len()).unwrap_or(u32::MAX);
        self.transfers.push(Transfer {
            source: self.source.clone(),
            leg,
            partner_id: self.partner_id,
            currency: self.currency,
            debit,
            credit,
            amount,
            invoice: self.invoice.clone(),
            release_at,
        });
    }

    /// Money reaching the partner from `from`: it pays off clawback first and
    /// only the rest becomes available (R-COM-3).
    fn pay_partner(&mut self, from: Account, amount: i64, clawback: i64) -> i64 {
        let payoff = amount.min(clawback).max(0);
        self.leg(from, Account::Clawback, payoff, None);
        self.leg(from, Account::Available, amount - payoff, None);
        clawback - payoff
    }

    /// R-COM-3: takes `amount` of commission back to the expense: from the
    /// invoice's lot, then available, and records the rest as clawback.
    fn reverse(&mut self, money: &PartnerMoney, lot: Lot, amount: i64) {
        let sink = Account::CommissionExpense;
        let mut left = amount;
        for (account, balance) in [
            (Account::OnReview, lot.on_review),
            (Account::Held, lot.held),
            (Account::Available, money.balances.available),
        ] {
            let take = left.min(balance).max(0);
            self.leg(account, sink, take, None);
            left -= take;
        }
        self.leg(Account::Clawback, sink, left, None);
    }
}

/// `paid_at + hold_days`, checked.
fn hold_end(paid_at: Timestamp, hold_days: i64) -> Result<Timestamp, LedgerError> {
    if hold_days < 0 {
        return Err(LedgerError::InvalidHoldDays(hold_days));
    }
    hold_days
        .checked_mul(86_400_000)
        .and_then(|ms| paid_at.millis().checked_add(ms))
        .map(Timestamp::from_millis)
        .ok_or(LedgerError::Money(MoneyError::Overflow))
}

/// R-COM-1..4, I4: books what an invoice's latest event changed: the
/// commission of its totals minus what it has booked (see the module doc for
/// where the money goes). Call it after recording any billing event on the
/// invoice; a replay leaves nothing to book and returns no transfers.
///
/// `source` names the event (`com:`, `ref:`, `cb:`, `rein:`). `hold_days` is
/// R-COM-4's setting, `now` decides whether the hold already ended. An invoice
/// whose payment has not arrived has no partner yet and books nothing.
pub fn book_commission_change(
    money: &mut PartnerMoney,
    invoice: &mut Invoice,
    source: Source,
    hold_days: i64,
    now: Timestamp,
) -> Result<Vec<Transfer>, LedgerError> {
    if !source.is_commission_event() {
        return Err(LedgerError::NotACommissionEvent(source.key()));
    }
    let target = invoice.commission()?;
    let delta = invoice.delta()?;
    if delta == 0 {
        return Ok(Vec::new());
    }
    let Some(payment) = &invoice.payment else {
        return Err(CommissionError::NoPayment(invoice.id.clone()).into());
    };
    check_book(money, payment.partner_id, payment.currency, &source)?;
    let lot = money.lot(&invoice.id);
    let mut booking = Booking::new(money, source, Some(&invoice.id));
    if delta > 0 {
        let release_at = match lot.release_at {
            Some(at) => at,
            None => hold_end(payment.paid_at, hold_days)?,
        };
        let expense = Account::CommissionExpense;
        if invoice.review == Review::Pending {
            booking.leg(expense, Account::OnReview, delta, Some(release_at));
        } else if now < release_at {
            booking.leg(expense, Account::Held, delta, Some(release_at));
        } else {
            booking.pay_partner(expense, delta, money.balances.clawback);
        }
    } else {
        booking.reverse(money, lot, -delta);
    }
    money.commit(&booking.transfers)?;
    invoice.booked = target;
    Ok(booking.transfers)
}

/// R-COM-4: releases every loaded lot whose hold ended at `now` from held to
/// the partner (paying off clawback first). One booking per lot,
/// `rel:{invoice}#{n}`.
pub fn release_holds(
    money: &mut PartnerMoney,
    now: Timestamp,
) -> Result<Vec<Transfer>, LedgerError> {
    let mut clawback = money.balances.clawback;
    let mut transfers = Vec::new();
    for (invoice, lot) in &money.lots {
        if lot.held <= 0 || !lot.hold_ended(now) {
            continue;
        }
        let n = lot.releases.checked_add(1).ok_or(MoneyError::Overflow)?;
        let source = Source::Release {
            invoice: invoice.clone(),
            n,
        };
        let mut booking = Booking::new(money, source, Some(invoice));
        clawback = booking.pay_partner(Account::Held, lot.held, clawback);
        transfers.append(&mut booking.transfers);
    }
    money.commit(&transfers)?;
    Ok(transfers)
}

/// R-COM-4: an admin or a fraud rule puts an invoice's commission on review.
/// Its held lot moves to on review; money already released stays where it is,
/// and later earnings on the invoice wait for the review too. `review_id` is the
/// caller's id for this review case (`rev:{review_id}`).
pub fn put_on_review(
    money: &mut PartnerMoney,
    invoice: &mut Invoice,
    review_id: &str,
) -> Result<Vec<Transfer>, LedgerError> {
    let mut next = invoice.clone();
    next.put_on_review()?;
    let transfers = match &invoice.payment {
        Some(payment) => {
            let source = Source::PutOnReview {
                review: review_id.to_owned(),
            };
            check_book(money, payment.partner_id, payment.currency, &source)?;
            let lot = money.lot(&invoice.id);
            let mut booking = Booking::new(money, source, Some(&invoice.id));
            booking.leg(Account::Held, Account::OnReview, lot.held, None);
            booking.transfers
        }
        None => Vec::new(),
    };
    money.commit(&transfers)?;
    *invoice = next;
    Ok(transfers)
}

/// R-COM-4: a person approves the review case `review_id` of an invoice. Its
/// on-review lot goes to held while the hold runs, else to the partner (paying
/// off clawback first).
pub fn approve_review(
    money: &mut PartnerMoney,
    invoice: &mut Invoice,
    review_id: &str,
    now: Timestamp,
) -> Result<Vec<Transfer>, LedgerError> {
    let mut next = invoice.clone();
    next.approve()?;
    let transfers = match &invoice.payment {
        Some(payment) => {
            let source = Source::Approval {
                review: review_id.to_owned(),
            };
            check_book(money, payment.partner_id, payment.currency, &source)?;
            let lot = money.lot(&invoice.id);
            let mut booking = Booking::new(money, source, Some(&invoice.id));
            if lot.hold_ended(now) {
                booking.pay_partner(Account::OnReview, lot.on_review, money.balances.clawback);
            } else {
                booking.leg(
                    Account::OnReview,
                    Account::Held,
                    lot.on_review,
                    lot.release_at,
                );
            }
            booking.transfers
        }
        None => Vec::new(),
    };
    money.commit(&transfers)?;
    *invoice = next;
    Ok(transfers)
}

/// R-COM-4: a person rejects an invoice's commission. It becomes zero for
/// good and is reversed like a refund (`rej:{invoice}`): the on-review lot goes
/// back to the expense, and anything of it released earlier is taken from
/// available or becomes clawback.
pub fn reject_review(
    money: &mut PartnerMoney,
    invoice: &mut Invoice,
) -> Result<Vec<Transfer>, LedgerError> {
    let mut next = invoice.clone();
    next.reject()?;
    let source = Source::Rejection {
        invoice: invoice.id.clone(),
    };
    // A rejected commission is zero, so only a reversal can follow: the hold
    // and the clock play no part.
    let transfers = book_commission_change(money, &mut next, source, 0, Timestamp::from_millis(0))?;
    *invoice = next;
    Ok(transfers)
}

/// Refuses to plan on another partner's or currency's book: currencies never
/// mix and a customer stays with one partner (R-AFF-4).
fn check_book(
    money: &PartnerMoney,
    partner_id: i64,
    currency: Currency,
    source: &Source,
) -> Result<(), LedgerError> {
    if money.partner_id == partner_id && money.currency == currency {
        Ok(())
    } else {
        Err(LedgerError::WrongBook {
            key: source.key(),
            partner: money.partner_id,
            currency: money.currency,
            found_partner: partner_id,
            found_currency: currency,
        })
    }
}

#[cfg(test)]
mod tests;
