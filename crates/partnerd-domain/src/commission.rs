//! Commission on an invoice (R-COM-1..3) and the facts it is computed from.
//!
//! The commission of an invoice is a function of its cumulative totals, never
//! of the order its events arrived in: `floor(rate × (paid − refunded) / 100)`,
//! where *refunded* counts refunds and chargebacks whose funds were withdrawn and
//! not reinstated (R-COM-3). Every change books only the difference from what was
//! booked before (invariant I4 of DESIGN.md), so three refunds of a third never
//! leave a stray cent, and a refund that arrives before its payment ends in the
//! same place once both have arrived.
//!
//! An [`Invoice`] records the billing events of one payment, each under its own
//! id, so a replayed event is recognised and books nothing. Where the money goes
//! (held, on review, available …) is the ledger's business (`crate::ledger`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Timestamp;
use crate::money::Currency;

/// Why a commission fact was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommissionError {
    #[error("a commission rate is a whole percent from 0 to 100, not {0}")]
    InvalidRate(i64),
    #[error("an amount must not be negative, got {0}")]
    NegativeAmount(i64),
    #[error("a refund, chargeback or reinstatement must be more than zero, got {0}")]
    NonPositiveAmount(i64),
    #[error("{what} {id} was already recorded with a different amount or currency")]
    ConflictingReplay { what: &'static str, id: String },
    #[error("the commission on invoice {0} is not waiting for a review")]
    NotUnderReview(String),
    #[error("the commission on invoice {0} is already waiting for a review")]
    AlreadyUnderReview(String),
    #[error("the commission on invoice {0} was rejected; a rejection is final")]
    Rejected(String),
    #[error("invoice {0} has no payment yet, so it has no commission to review")]
    NoPayment(String),
    #[error("the commission is too large to compute")]
    Overflow,
}

/// R-COM-1: a commission rate in whole percent (the API and the settings use
/// integers: `20` means 20 %). Fixed per customer when they are credited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct CommissionRate(u8);

impl CommissionRate {
    pub fn from_percent(percent: i64) -> Result<Self, CommissionError> {
        u8::try_from(percent)
            .ok()
            .filter(|p| *p <= 100)
            .map(Self)
            .ok_or(CommissionError::InvalidRate(percent))
    }

    pub fn percent(self) -> i64 {
        i64::from(self.0)
    }
}

impl TryFrom<i64> for CommissionRate {
    type Error = CommissionError;

    fn try_from(percent: i64) -> Result<Self, Self::Error> {
        Self::from_percent(percent)
    }
}

impl From<CommissionRate> for i64 {
    fn from(rate: CommissionRate) -> Self {
        rate.percent()
    }
}

impl std::fmt::Display for CommissionRate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} %", self.0)
    }
}

/// R-COM-1..3, I4: `floor(rate × (paid − refunded) / 100)` in minor units.
///
/// Computed in `i128`, so the product cannot overflow; the result is at most
/// `paid` and fits in `i64`. A net below zero (refunds recorded before their
/// payment arrived, or more refunded than paid) earns nothing rather than a
/// negative commission.
pub fn commission(rate: CommissionRate, paid: i64, refunded: i64) -> Result<i64, CommissionError> {
    for amount in [paid, refunded] {
        if amount < 0 {
            return Err(CommissionError::NegativeAmount(amount));
        }
    }
    commission_of_totals(rate, i128::from(paid), i128::from(refunded))
}

/// I4: what to book now for an invoice that has `booked` commission so far:
/// the commission of the current totals minus what was booked. Positive earns,
/// negative reverses; zero books nothing.
pub fn commission_delta(
    rate: CommissionRate,
    paid: i64,
    refunded: i64,
    booked: i64,
) -> Result<i64, CommissionError> {
    commission(rate, paid, refunded)?
        .checked_sub(booked)
        .ok_or(CommissionError::Overflow)
}

fn commission_of_totals(
    rate: CommissionRate,
    paid: i128,
    refunded: i128,
) -> Result<i64, CommissionError> {
    let net = (paid - refunded).max(0);
    // Both factors are non-negative, so integer division is the floor.
    let amount = net * i128::from(rate.percent()) / 100;
    i64::try_from(amount).map_err(|_| CommissionError::Overflow)
}

/// Whether a person must look at an invoice's commission before it can be
/// withdrawn (R-COM-4, R-AFF-7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Review {
    /// No review asked for: the commission follows the hold.
    NotNeeded,
    /// Waiting for a person; the commission sits in `on_review`.
    Pending,
    /// A person released it; it follows the hold from here on.
    Approved,
    /// A person refused it: the commission is zero for good.
    Rejected,
}

/// The payment of an invoice and what the commission on it depends on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    /// The partner the customer is credited to (R-AFF-4: for life).
    pub partner_id: i64,
    pub currency: Currency,
    /// What the customer paid, in minor units.
    pub amount: i64,
    /// R-COM-1: the customer's rate, fixed when they were credited, so a refund
    /// months later reverses at the rate the commission was earned.
    pub rate: CommissionRate,
    /// When the customer paid; the hold (R-COM-4) counts from here, which keeps
    /// the hold the same whenever the event is delivered.
    pub paid_at: Timestamp,
    /// R-AFF-7, R-COM-4: the customer is marked for review, so the commission
    /// waits for a person.
    pub under_review: bool,
}

/// A chargeback of a payment: funds withdrawn by the card network and, if the
/// vendor wins the dispute, reinstated. Either event may arrive first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chargeback {
    pub withdrawn: Option<i64>,
    pub reinstated: Option<i64>,
}

impl Chargeback {
    /// What the dispute still takes away from the payment. A reinstatement
    /// that arrived before its chargeback takes nothing away and adds nothing.
    pub fn open_amount(&self) -> i64 {
        // Saturating: the fields come from stored rows, and a corrupt row
        // must show up in `ledger verify`, not crash it.
        self.withdrawn
            .unwrap_or(0)
            .saturating_sub(self.reinstated.unwrap_or(0))
            .max(0)
    }
}

/// Whether an event was new or a replay of one already recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    New,
    /// Same id, same facts: nothing changes and nothing is booked.
    Replay,
}

/// One payment and everything that happened to it, keyed by the payment id.
///
/// Refunds and chargebacks may be recorded before the payment itself (webhooks
/// arrive out of order); until the payment arrives the invoice has no partner
/// and no commission. `booked` is the commission the ledger holds for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invoice {
    /// The payment id (the vendor's, or Stripe's invoice id).
    pub id: String,
    pub payment: Option<Payment>,
    /// Refund id → amount.
    pub refunds: BTreeMap<String, i64>,
    /// Chargeback id → its withdrawn and reinstated amounts.
    pub chargebacks: BTreeMap<String, Chargeback>,
    pub review: Review,
    /// Commission booked in the ledger so far (sum of the deltas); I4 holds when
    /// it equals [`Invoice::commission`].
    pub booked: i64,
}

impl Invoice {
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            payment: None,
            refunds: BTreeMap::new(),
            chargebacks: BTreeMap::new(),
            review: Review::NotNeeded,
            booked: 0,
        }
    }

    /// Records the payment. A replay with the same amount and currency changes
    /// nothing (the partner, rate and review flag of the first delivery stay).
    pub fn record_payment(&mut self, payment: Payment) -> Result<Recorded, CommissionError> {
        if payment.amount < 0 {
            return Err(CommissionError::NegativeAmount(payment.amount));
        }
        if let Some(known) = &self.payment {
            return if known.amount == payment.amount && known.currency == payment.currency {
                Ok(Recorded::Replay)
            } else {
                Err(self.conflict("payment", &self.id))
            };
        }
        if payment.under_review && self.review == Review::NotNeeded {
            self.review = Review::Pending;
        }
        self.payment = Some(payment);
        Ok(Recorded::New)
    }

    /// R-COM-3: records a refund of (part of) the payment.
    pub fn record_refund(
        &mut self,
        refund_id: &str,
        amount: i64,
    ) -> Result<Recorded, CommissionError> {
        positive(amount)?;
        match self.refunds.get(refund_id) {
            Some(known) if *known == amount => Ok(Recorded::Replay),
            Some(_) => Err(self.conflict("refund", refund_id)),
            None => {
                self.refunds.insert(refund_id.to_owned(), amount);
                Ok(Recorded::New)
            }
        }
    }

    /// R-COM-3: records funds withdrawn by a chargeback.
    pub fn record_chargeback(
        &mut self,
        chargeback_id: &str,
        amount: i64,
    ) -> Result<Recorded, CommissionError> {
        positive(amount)?;
        let entry = self
            .chargebacks
            .get(chargeback_id)
            .copied()
            .unwrap_or_default();
        match entry.withdrawn {
            Some(known) if known == amount => Ok(Recorded::Replay),
            Some(_) => Err(self.conflict("chargeback", chargeback_id)),
            None => {
                let updated = Chargeback {
                    withdrawn: Some(amount),
                    ..entry
                };
                self.chargebacks.insert(chargeback_id.to_owned(), updated);
                Ok(Recorded::New)
            }
        }
    }

    /// Records funds reinstated after the vendor won the dispute: the
    /// commission comes back.
    pub fn record_reinstatement(
        &mut self,
        chargeback_id: &str,
        amount: i64,
    ) -> Result<Recorded, CommissionError> {
        positive(amount)?;
        let entry = self
            .chargebacks
            .get(chargeback_id)
            .copied()
            .unwrap_or_default();
        match entry.reinstated {
            Some(known) if known == amount => Ok(Recorded::Replay),
            Some(_) => Err(self.conflict("reinstatement of chargeback", chargeback_id)),
            None => {
                let updated = Chargeback {
                    reinstated: Some(amount),
                    ..entry
                };
                self.chargebacks.insert(chargeback_id.to_owned(), updated);
                Ok(Recorded::New)
            }
        }
    }

    /// R-COM-4: an admin (or a fraud rule) holds the commission for a person.
    pub fn put_on_review(&mut self) -> Result<(), CommissionError> {
        if self.payment.is_none() {
            return Err(CommissionError::NoPayment(self.id.clone()));
        }
        match self.review {
            Review::NotNeeded | Review::Approved => {
                self.review = Review::Pending;
                Ok(())
            }
            Review::Pending => Err(CommissionError::AlreadyUnderReview(self.id.clone())),
            Review::Rejected => Err(CommissionError::Rejected(self.id.clone())),
        }
    }

    /// R-COM-4: a person releases the commission.
    pub fn approve(&mut self) -> Result<(), CommissionError> {
        self.decide(Review::Approved)
    }

    /// R-COM-4: a person refuses the commission; it becomes zero for good.
    pub fn reject(&mut self) -> Result<(), CommissionError> {
        self.decide(Review::Rejected)
    }

    fn decide(&mut self, decision: Review) -> Result<(), CommissionError> {
        match self.review {
            Review::Pending => {
                self.review = decision;
                Ok(())
            }
            Review::Rejected => Err(CommissionError::Rejected(self.id.clone())),
            Review::NotNeeded | Review::Approved => {
                Err(CommissionError::NotUnderReview(self.id.clone()))
            }
        }
    }

    /// What the payment lost to refunds and open chargebacks (the *refunded*
    /// of I4). Summed in `i128`, so no number of refunds can overflow it.
    pub fn refunded(&self) -> i128 {
        let refunds: i128 = self.refunds.values().map(|a| i128::from(*a)).sum();
        let disputed: i128 = self
            .chargebacks
            .values()
            .map(|c| i128::from(c.open_amount()))
            .sum();
        refunds + disputed
    }

    /// I4: the commission this invoice must have booked, from its totals: zero
    /// before the payment arrives and after a rejection.
    pub fn commission(&self) -> Result<i64, CommissionError> {
        match &self.payment {
            Some(payment) if self.review != Review::Rejected => {
                commission_of_totals(payment.rate, i128::from(payment.amount), self.refunded())
            }
            _ => Ok(0),
        }
    }

    /// I4: what is left to book: the commission minus what is booked.
    pub fn delta(&self) -> Result<i64, CommissionError> {
        self.commission()?
            .checked_sub(self.booked)
            .ok_or(CommissionError::Overflow)
    }

    fn conflict(&self, what: &'static str, id: &str) -> CommissionError {
        CommissionError::ConflictingReplay {
            what,
            id: id.to_owned(),
        }
    }
}

fn positive(amount: i64) -> Result<(), CommissionError> {
    if amount > 0 {
        Ok(())
    } else {
        Err(CommissionError::NonPositiveAmount(amount))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(percent: i64) -> CommissionRate {
        CommissionRate::from_percent(percent).expect("a valid test rate")
    }

    fn payment(amount: i64) -> Payment {
        Payment {
            partner_id: 1,
            currency: Currency::USD,
            amount,
            rate: rate(20),
            paid_at: Timestamp::from_millis(0),
            under_review: false,
        }
    }

    /// Books what is left to book, as the ledger does after each event.
    fn settle(invoice: &mut Invoice) -> i64 {
        let delta = invoice.delta().expect("delta");
        invoice.booked += delta;
        delta
    }

    #[test]
    fn the_vendor_example_earns_2400_dollars() {
        // R-COM-2: $1,000 a month for 12 months at 20 % → $2,400.
        let total: i64 = (0..12)
            .map(|_| commission(rate(20), 100_000, 0).expect("commission"))
            .sum();
        assert_eq!(total, 240_000);
    }

    #[test]
    fn commission_is_floored_to_the_minor_unit() {
        assert_eq!(commission(rate(20), 999, 0), Ok(199));
        assert_eq!(commission(rate(33), 100, 0), Ok(33));
        assert_eq!(commission(rate(0), 100_000, 0), Ok(0));
        assert_eq!(commission(rate(100), 12_345, 345), Ok(12_000));
    }

    #[test]
    fn a_net_below_zero_earns_nothing() {
        assert_eq!(commission(rate(20), 0, 500), Ok(0));
        assert_eq!(commission(rate(20), 100, 500), Ok(0));
    }

    #[test]
    fn huge_amounts_do_not_overflow() {
        assert_eq!(commission(rate(100), i64::MAX, 0), Ok(i64::MAX));
        assert_eq!(commission(rate(50), i64::MAX, 0), Ok(i64::MAX / 2));
        assert_eq!(
            commission_delta(rate(100), i64::MAX, 0, -1),
            Err(CommissionError::Overflow)
        );
    }

    #[test]
    fn negative_amounts_and_rates_out_of_range_are_refused() {
        assert_eq!(
            commission(rate(20), -1, 0),
            Err(CommissionError::NegativeAmount(-1))
        );
        assert_eq!(
            CommissionRate::from_percent(101),
            Err(CommissionError::InvalidRate(101))
        );
        assert_eq!(
            CommissionRate::from_percent(-1),
            Err(CommissionError::InvalidRate(-1))
        );
    }

    #[test]
    fn partial_refunds_never_leave_stray_cents() {
        // 20 % of $9.99 is 199 cents; three refunds of $3.33 must reverse all
        // of it, where flooring each refund's share (66 + 66 + 66) would leave 1.
        let mut invoice = Invoice::new("in_1");
        invoice.record_payment(payment(999)).expect("payment");
        assert_eq!(settle(&mut invoice), 199);
        let mut reversed = 0;
        for id in ["re_1", "re_2", "re_3"] {
            invoice.record_refund(id, 333).expect("refund");
            reversed += settle(&mut invoice);
        }
        assert_eq!(reversed, -199);
        assert_eq!(invoice.booked, 0);
    }

    #[test]
    fn a_refund_before_its_payment_ends_where_the_usual_order_does() {
        let mut usual = Invoice::new("in_1");
        usual.record_payment(payment(100_000)).expect("payment");
        settle(&mut usual);
        usual.record_refund("re_1", 50_000).expect("refund");
        settle(&mut usual);

        let mut early = Invoice::new("in_1");
        early.record_refund("re_1", 50_000).expect("refund");
        assert_eq!(settle(&mut early), 0, "no payment yet, nothing to book");
        early.record_payment(payment(100_000)).expect("payment");
        assert_eq!(settle(&mut early), 10_000);

        assert_eq!(usual, early);
        assert_eq!(usual.booked, 10_000);
    }

    #[test]
    fn chargebacks_reverse_and_reinstatements_restore() {
        let mut invoice = Invoice::new("in_1");
        invoice.record_payment(payment(10_000)).expect("payment");
        assert_eq!(settle(&mut invoice), 2_000);
        invoice
            .record_chargeback("dp_1", 10_000)
            .expect("chargeback");
        assert_eq!(settle(&mut invoice), -2_000);
        invoice
            .record_reinstatement("dp_1", 10_000)
            .expect("reinstatement");
        assert_eq!(settle(&mut invoice), 2_000);
    }

    #[test]
    fn a_reinstatement_before_its_chargeback_cancels_it() {
        let mut invoice = Invoice::new("in_1");
        invoice.record_payment(payment(10_000)).expect("payment");
        settle(&mut invoice);
        invoice
            .record_reinstatement("dp_1", 10_000)
            .expect("reinstatement");
        assert_eq!(settle(&mut invoice), 0);
        invoice
            .record_chargeback("dp_1", 10_000)
            .expect("chargeback");
        assert_eq!(settle(&mut invoice), 0);
        assert_eq!(invoice.booked, 2_000);
    }

    #[test]
    fn replays_change_nothing_and_conflicting_replays_are_refused() {
        let mut invoice = Invoice::new("in_1");
        assert_eq!(invoice.record_payment(payment(500)), Ok(Recorded::New));
        assert_eq!(invoice.record_payment(payment(500)), Ok(Recorded::Replay));
        assert!(matches!(
            invoice.record_payment(payment(501)),
            Err(CommissionError::ConflictingReplay { .. })
        ));
        assert_eq!(invoice.record_refund("re_1", 100), Ok(Recorded::New));
        assert_eq!(invoice.record_refund("re_1", 100), Ok(Recorded::Replay));
        assert!(invoice.record_refund("re_1", 101).is_err());
        assert_eq!(
            invoice.record_refund("re_2", 0),
            Err(CommissionError::NonPositiveAmount(0))
        );
        assert_eq!(invoice.refunded(), 100);
    }

    #[test]
    fn a_rejected_commission_is_zero_for_good() {
        let mut invoice = Invoice::new("in_1");
        invoice
            .record_payment(Payment {
                under_review: true,
                ..payment(10_000)
            })
            .expect("payment");
        assert_eq!(invoice.review, Review::Pending);
        assert_eq!(invoice.commission(), Ok(2_000));
        invoice.reject().expect("reject");
        assert_eq!(invoice.commission(), Ok(0));
        assert_eq!(
            invoice.approve(),
            Err(CommissionError::Rejected("in_1".into()))
        );
        assert_eq!(
            invoice.put_on_review(),
            Err(CommissionError::Rejected("in_1".into()))
        );
    }

    #[test]
    fn only_a_pending_review_can_be_decided() {
        let mut invoice = Invoice::new("in_1");
        assert_eq!(
            invoice.put_on_review(),
            Err(CommissionError::NoPayment("in_1".into()))
        );
        invoice.record_payment(payment(10_000)).expect("payment");
        assert_eq!(
            invoice.approve(),
            Err(CommissionError::NotUnderReview("in_1".into()))
        );
        invoice.put_on_review().expect("put on review");
        assert_eq!(
            invoice.put_on_review(),
            Err(CommissionError::AlreadyUnderReview("in_1".into()))
        );
        invoice.approve().expect("approve");
        assert_eq!(invoice.review, Review::Approved);
    }
}
