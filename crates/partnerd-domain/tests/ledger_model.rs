//! Model-based property tests of the money ledger (DESIGN.md I1–I8, issue 4).
//!
//! `random_sequences_keep_every_invariant` plays random sequences of billing
//! events (payments, partial and full refunds, chargebacks lost and won),
//! deliveries that come late, twice or out of order, commission-rate and hold
//! changes, reviews, hold releases as time moves on, withdrawals (some below the
//! minimum), approvals, rejections and every PayPal outcome against the pure
//! planners, through an in-memory stand-in for the store. After every step
//! I1–I8 must hold and the ledger must agree with a model that recomputes each
//! partner's commission from the raw events.
//!
//! `delivery_order_and_duplicates_do_not_change_the_ledger` delivers every
//! billing event 1–5 times in a random order and compares the end state with
//! one delivery in the usual order.
//!
//! 256 sequences by default; CI runs `PROPTEST_CASES=10000`.
//!
//! Reproducing a failure: proptest prints the shrunk sequence (`minimal failing
//! input`) and the step that broke, and saves the case's seed in
//! `tests/ledger_model.proptest-regressions`; the next
//! `cargo test -p partnerd-domain --test ledger_model` replays it first.
//! `PROPTEST_RNG_SEED=<number>` makes a whole run repeatable.

use std::collections::{BTreeMap, BTreeSet};

use partnerd_domain::Timestamp;
use partnerd_domain::commission::{CommissionRate, Invoice, Payment, Recorded, Review};
use partnerd_domain::ledger::{
    self, Breach, LedgerError, LedgerRecords, PartnerMoney, PayoutItem, PayoutOutcome,
    PayoutStatus, Source, Transfer, Withdrawal, WithdrawalStatus,
};
use partnerd_domain::money::Currency;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
const START: i64 = 1_700_000_000_000;
const PARTNERS: [i64; 2] = [1, 2];
const CURRENCIES: [Currency; 2] = [Currency::USD, Currency::JPY];

/// R-PAY-1: `min_withdrawal` per currency, as a vendor might set it.
fn min_withdrawal(currency: Currency) -> i64 {
    if currency == Currency::JPY {
        1_000
    } else {
        5_000
    }
}

fn config() -> Config {
    Config {
        // Beside the test file, since this crate keeps no `src/main.rs` or
        // `tests/lib.rs` for proptest's default location.
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..Config::default()
    }
}

#[derive(Debug, Clone)]
struct Customer {
    partner_id: i64,
    currency: Currency,
    /// R-COM-1: fixed when the customer is credited.
    rate: CommissionRate,
    under_review: bool,
}

/// A billing event as the billing system sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Payment {
        id: String,
        customer: usize,
        amount: i64,
        paid_at: Timestamp,
    },
    Refund {
        id: String,
        payment: String,
        amount: i64,
    },
    Chargeback {
        id: String,
        payment: String,
        amount: i64,
    },
    Reinstatement {
        chargeback: String,
        payment: String,
        amount: i64,
    },
}

impl Event {
    fn invoice(&self) -> &str {
        match self {
            Event::Payment { id, .. } => id,
            Event::Refund { payment, .. }
            | Event::Chargeback { payment, .. }
            | Event::Reinstatement { payment, .. } => payment,
        }
    }
}

/// What the store would hold, changed only through the domain's planners the
/// way a store method would: read, plan, write back on success.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Store {
    money: BTreeMap<(i64, Currency), PartnerMoney>,
    invoices: BTreeMap<String, Invoice>,
    transfers: Vec<Transfer>,
    withdrawals: Vec<Withdrawal>,
    items: BTreeMap<String, PayoutItem>,
}

impl Store {
    fn money(&mut self, partner_id: i64, currency: Currency) -> &mut PartnerMoney {
        self.money
            .entry((partner_id, currency))
            .or_insert_with(|| PartnerMoney::new(partner_id, currency))
    }

    /// Records a billing event on its invoice and books what it changed.
    fn deliver(
        &mut self,
        event: &Event,
        customers: &[Customer],
        hold_days: i64,
        now: Timestamp,
    ) -> Result<(Recorded, Vec<Transfer>), LedgerError> {
        let id = event.invoice().to_owned();
        let mut invoice = self
            .invoices
            .get(&id)
            .cloned()
            .unwrap_or_else(|| Invoice::new(&id));
        let (recorded, source) = match event {
            Event::Payment {
                id,
                customer,
                amount,
                paid_at,
            } => {
                let c = &customers[*customer];
                let payment = Payment {
                    partner_id: c.partner_id,
                    currency: c.currency,
                    amount: *amount,
                    rate: c.rate,
                    paid_at: *paid_at,
                    under_review: c.under_review,
                };
                let source = Source::Commission {
                    payment: id.clone(),
                };
                (invoice.record_payment(payment)?, source)
            }
            Event::Refund { id, amount, .. } => {
                let source = Source::Refund { refund: id.clone() };
                (invoice.record_refund(id, *amount)?, source)
            }
            Event::Chargeback { id, amount, .. } => {
                let source = Source::Chargeback {
                    chargeback: id.clone(),
                };
                (invoice.record_chargeback(id, *amount)?, source)
            }
            Event::Reinstatement {
                chargeback, amount, ..
            } => {
                let source = Source::Reinstatement {
                    chargeback: chargeback.clone(),
                };
                (invoice.record_reinstatement(chargeback, *amount)?, source)
            }
        };
        // Until its payment arrives an invoice has no partner: nothing to book.
        let transfers = match invoice.payment.as_ref().map(|p| (p.partner_id, p.currency)) {
            Some((partner, currency)) => {
                let money = self.money(partner, currency);
                ledger::book_commission_change(money, &mut invoice, source, hold_days, now)?
            }
            None => Vec::new(),
        };
        self.invoices.insert(id, invoice);
        self.transfers.extend(transfers.iter().cloned());
        Ok((recorded, transfers))
    }

    /// The hold-release job (R-COM-4).
    fn release_holds(&mut self, now: Timestamp) -> Result<Vec<Transfer>, LedgerError> {
        let mut all = Vec::new();
        for money in self.money.values_mut() {
            all.extend(ledger::release_holds(money, now)?);
        }
        self.transfers.extend(all.iter().cloned());
        Ok(all)
    }

    fn breaches(&self) -> Vec<Breach> {
        let balances: Vec<PartnerMoney> = self.money.values().cloned().collect();
        let invoices: Vec<Invoice> = self.invoices.values().cloned().collect();
        let items: Vec<PayoutItem> = self.items.values().cloned().collect();
        ledger::check_invariants(&LedgerRecords {
            transfers: &self.transfers,
            balances: &balances,
            invoices: &invoices,
            withdrawals: &self.withdrawals,
            payout_items: &items,
        })
    }

    /// The balances and the lots that hold money, for comparing two ledgers
    /// that reached the same state by different routes.
    fn money_state(&self) -> Vec<PartnerMoney> {
        self.money
            .values()
            .map(|m| {
                let mut m = m.clone();
                m.lots
                    .retain(|_, lot| lot.held != 0 || lot.on_review != 0 || lot.releases != 0);
                m
            })
            .filter(|m| m.balances != Default::default() || !m.lots.is_empty())
            .collect()
    }
}

fn show(breaches: &[Breach]) -> String {
    breaches
        .iter()
        .map(|b| format!("  {b}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// How much of what is left of a payment a refund or chargeback takes.
#[derive(Debug, Clone, Copy)]
enum Size {
    Full,
    /// Per mille of what is left, at least one minor unit.
    Part(i64),
}

impl Size {
    fn of(self, left: i64) -> i64 {
        match self {
            Size::Full => left,
            Size::Part(per_mille) => (left * per_mille / 1000).clamp(1, left),
        }
    }
}

/// One step of a sequence. Indices pick among what exists at that moment
/// (modulo its count); a step with nothing to act on does nothing.
#[derive(Debug, Clone)]
enum Action {
    NewCustomer {
        partner: usize,
        currency: usize,
        under_review: bool,
    },
    /// R-COM-1: applies to customers credited from now on.
    ChangeRate {
        percent: i64,
    },
    ChangeHoldDays {
        days: i64,
    },
    /// `deliver: false` leaves the event pending, to arrive later (out of order).
    Pay {
        customer: usize,
        amount: i64,
        deliver: bool,
    },
    Refund {
        payment: usize,
        size: Size,
        deliver: bool,
    },
    Chargeback {
        payment: usize,
        size: Size,
        deliver: bool,
    },
    /// The vendor wins the dispute: the funds are reinstated.
    WinDispute {
        chargeback: usize,
        deliver: bool,
    },
    DeliverPending {
        pending: usize,
    },
    /// The same event once more: it must book nothing.
    Redeliver {
        event: usize,
    },
    PutOnReview {
        invoice: usize,
    },
    ApproveReview {
        invoice: usize,
    },
    RejectReview {
        invoice: usize,
    },
    Wait {
        hours: i64,
    },
    ReleaseHolds,
    RequestWithdrawal {
        partner: usize,
        currency: usize,
    },
    ApproveWithdrawal {
        withdrawal: usize,
    },
    RejectWithdrawal {
        withdrawal: usize,
    },
    Payout {
        withdrawal: usize,
        status: PayoutStatus,
    },
}

fn size() -> impl Strategy<Value = Size> {
    prop_oneof![1 => Just(Size::Full), 3 => (1..=1000i64).prop_map(Size::Part)]
}

fn action() -> impl Strategy<Value = Action> {
    let pick = any::<usize>;
    prop_oneof![
        1 => (0..2usize, 0..2usize, prop::bool::weighted(0.25)).prop_map(
            |(partner, currency, under_review)| Action::NewCustomer { partner, currency, under_review }
        ),
        1 => prop::sample::select(vec![0i64, 5, 10, 20, 25, 33, 50, 100])
            .prop_map(|percent| Action::ChangeRate { percent }),
        1 => prop::sample::select(vec![0i64, 1, 14, 30])
            .prop_map(|days| Action::ChangeHoldDays { days }),
        8 => (pick(), 1..200_000i64, prop::bool::weighted(0.7))
            .prop_map(|(customer, amount, deliver)| Action::Pay { customer, amount, deliver }),
        4 => (pick(), size(), prop::bool::weighted(0.7))
            .prop_map(|(payment, size, deliver)| Action::Refund { payment, size, deliver }),
        2 => (pick(), size(), prop::bool::weighted(0.7))
            .prop_map(|(payment, size, deliver)| Action::Chargeback { payment, size, deliver }),
        1 => (pick(), prop::bool::weighted(0.7))
            .prop_map(|(chargeback, deliver)| Action::WinDispute { chargeback, deliver }),
        3 => pick().prop_map(|pending| Action::DeliverPending { pending }),
        2 => pick().prop_map(|event| Action::Redeliver { event }),
        1 => pick().prop_map(|invoice| Action::PutOnReview { invoice }),
        2 => pick().prop_map(|invoice| Action::ApproveReview { invoice }),
        1 => pick().prop_map(|invoice| Action::RejectReview { invoice }),
        5 => (1..(40 * 24i64)).prop_map(|hours| Action::Wait { hours }),
        5 => Just(Action::ReleaseHolds),
        5 => (0..2usize, 0..2usize)
            .prop_map(|(partner, currency)| Action::RequestWithdrawal { partner, currency }),
        4 => pick().prop_map(|withdrawal| Action::ApproveWithdrawal { withdrawal }),
        1 => pick().prop_map(|withdrawal| Action::RejectWithdrawal { withdrawal }),
        6 => (pick(), prop::sample::select(PayoutStatus::ALL.to_vec()))
            .prop_map(|(withdrawal, status)| Action::Payout { withdrawal, status }),
    ]
}

/// A payment as the billing system knows it, so refunds never exceed it.
#[derive(Debug, Clone)]
struct Billed {
    id: String,
    amount: i64,
    /// Refunded or charged back so far (events created, delivered or not).
    taken: i64,
}

#[derive(Debug, Clone)]
struct Dispute {
    id: String,
    payment: String,
    amount: i64,
    won: bool,
}

/// The test's world: the billing system, the clock, the settings, and the store.
struct World {
    now: Timestamp,
    rate: CommissionRate,
    hold_days: i64,
    customers: Vec<Customer>,
    events: Vec<Event>,
    pending: Vec<usize>,
    delivered: Vec<usize>,
    billed: Vec<Billed>,
    disputes: Vec<Dispute>,
    rejected: BTreeSet<String>,
    store: Store,
    next_id: u64,
}

impl World {
    fn new() -> Self {
        let rate = CommissionRate::from_percent(20).expect("20 % is a rate");
        let customers = PARTNERS
            .iter()
            .flat_map(|&partner_id| {
                CURRENCIES.iter().map(move |&currency| Customer {
                    partner_id,
                    currency,
                    rate,
                    under_review: false,
                })
            })
            .collect();
        Self {
            now: Timestamp::from_millis(START),
            rate,
            hold_days: 30,
            customers,
            events: Vec::new(),
            pending: Vec::new(),
            delivered: Vec::new(),
            billed: Vec::new(),
            disputes: Vec::new(),
            rejected: BTreeSet::new(),
            store: Store::default(),
            next_id: 0,
        }
    }

    fn id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}_{}", self.next_id)
    }

    fn create(&mut self, event: Event, deliver: bool) -> Result<(), TestCaseError> {
        self.events.push(event);
        let index = self.events.len() - 1;
        if deliver {
            self.deliver(index)
        } else {
            self.pending.push(index);
            Ok(())
        }
    }

    fn deliver(&mut self, index: usize) -> Result<(), TestCaseError> {
        let event = self.events[index].clone();
        let before = self.store.clone();
        let result = self
            .store
            .deliver(&event, &self.customers, self.hold_days, self.now);
        let (recorded, transfers) = match result {
            Ok(done) => done,
            Err(err) => return Err(TestCaseError::fail(format!("{event:?} was refused: {err}"))),
        };
        if self.delivered.contains(&index) {
            prop_assert_eq!(recorded, Recorded::Replay, "a redelivery is a replay");
            prop_assert!(transfers.is_empty(), "a redelivery booked {:?}", transfers);
            prop_assert!(self.store == before, "a redelivery changed the store");
        } else {
            prop_assert_eq!(recorded, Recorded::New);
            self.delivered.push(index);
        }
        Ok(())
    }

    fn invoice_ids_with_payment(&self) -> Vec<String> {
        self.store
            .invoices
            .values()
            .filter(|i| i.payment.is_some())
            .map(|i| i.id.clone())
            .collect()
    }

    /// A review decision through a planner, all or nothing; `Ok(true)` when the
    /// planner accepted.
    fn review(
        &mut self,
        invoice_id: &str,
        decide: impl FnOnce(
            &mut PartnerMoney,
            &mut Invoice,
            String,
        ) -> Result<Vec<Transfer>, LedgerError>,
    ) -> Result<bool, TestCaseError> {
        let review_id = self.id("review");
        let Some(mut invoice) = self.store.invoices.get(invoice_id).cloned() else {
            return Ok(false);
        };
        let Some(payment) = invoice.payment.clone() else {
            return Ok(false);
        };
        let before = self.store.clone();
        let money = self.store.money(payment.partner_id, payment.currency);
        match decide(money, &mut invoice, review_id) {
            Ok(transfers) => {
                self.store.invoices.insert(invoice_id.to_owned(), invoice);
                self.store.transfers.extend(transfers);
                Ok(true)
            }
            Err(_) => {
                prop_assert!(self.store == before, "a refused review changed the store");
                Ok(false)
            }
        }
    }

    fn step(&mut self, action: &Action) -> Result<(), TestCaseError> {
        match *action {
            Action::NewCustomer {
                partner,
                currency,
                under_review,
            } => self.customers.push(Customer {
                partner_id: PARTNERS[partner % PARTNERS.len()],
                currency: CURRENCIES[currency % CURRENCIES.len()],
                rate: self.rate,
                under_review,
            }),
            Action::ChangeRate { percent } => {
                self.rate = CommissionRate::from_percent(percent).expect("a valid rate");
            }
            Action::ChangeHoldDays { days } => self.hold_days = days,
            Action::Pay {
                customer,
                amount,
                deliver,
            } => {
                let id = self.id("in");
                self.billed.push(Billed {
                    id: id.clone(),
                    amount,
                    taken: 0,
                });
                let customer = customer % self.customers.len();
                let paid_at = self.now;
                let event = Event::Payment {
                    id,
                    customer,
                    amount,
                    paid_at,
                };
                self.create(event, deliver)?;
            }
            Action::Refund {
                payment,
                size,
                deliver,
            }
            | Action::Chargeback {
                payment,
                size,
                deliver,
            } => {
                if self.billed.is_empty() {
                    return Ok(());
                }
                let index = payment % self.billed.len();
                let left = self.billed[index].amount - self.billed[index].taken;
                if left <= 0 {
                    return Ok(());
                }
                let amount = size.of(left);
                self.billed[index].taken += amount;
                let payment = self.billed[index].id.clone();
                let event = if matches!(action, Action::Refund { .. }) {
                    let id = self.id("re");
                    Event::Refund {
                        id,
                        payment,
                        amount,
                    }
                } else {
                    let id = self.id("dp");
                    self.disputes.push(Dispute {
                        id: id.clone(),
                        payment: payment.clone(),
                        amount,
                        won: false,
                    });
                    Event::Chargeback {
                        id,
                        payment,
                        amount,
                    }
                };
                self.create(event, deliver)?;
            }
            Action::WinDispute {
                chargeback,
                deliver,
            } => {
                let open: Vec<usize> = (0..self.disputes.len())
                    .filter(|i| !self.disputes[*i].won)
                    .collect();
                if open.is_empty() {
                    return Ok(());
                }
                let dispute = &mut self.disputes[open[chargeback % open.len()]];
                dispute.won = true;
                let event = Event::Reinstatement {
                    chargeback: dispute.id.clone(),
                    payment: dispute.payment.clone(),
                    amount: dispute.amount,
                };
                self.create(event, deliver)?;
            }
            Action::DeliverPending { pending } => {
                if !self.pending.is_empty() {
                    let index = self.pending.remove(pending % self.pending.len());
                    self.deliver(index)?;
                }
            }
            Action::Redeliver { event } => {
                if !self.delivered.is_empty() {
                    let index = self.delivered[event % self.delivered.len()];
                    self.deliver(index)?;
                }
            }
            Action::PutOnReview { invoice } => {
                let ids = self.invoice_ids_with_payment();
                if let Some(id) = ids.get(invoice % ids.len().max(1)).cloned() {
                    let review = self.store.invoices[&id].review;
                    let accepted = self.review(&id, |money, invoice, review_id| {
                        ledger::put_on_review(money, invoice, &review_id)
                    })?;
                    let allowed = matches!(review, Review::NotNeeded | Review::Approved);
                    prop_assert_eq!(accepted, allowed, "put on review from {:?}", review);
                }
            }
            Action::ApproveReview { invoice } | Action::RejectReview { invoice } => {
                let ids = self.invoice_ids_with_payment();
                if let Some(id) = ids.get(invoice % ids.len().max(1)).cloned() {
                    let review = self.store.invoices[&id].review;
                    let now = self.now;
                    let approve = matches!(action, Action::ApproveReview { .. });
                    let accepted = self.review(&id, |money, invoice, review_id| {
                        if approve {
                            ledger::approve_review(money, invoice, &review_id, now)
                        } else {
                            ledger::reject_review(money, invoice)
                        }
                    })?;
                    prop_assert_eq!(
                        accepted,
                        review == Review::Pending,
                        "decided from {:?}",
                        review
                    );
                    if accepted && !approve {
                        self.rejected.insert(id);
                    }
                }
            }
            Action::Wait { hours } => {
                self.now = Timestamp::from_millis(self.now.millis() + hours * HOUR);
            }
            Action::ReleaseHolds => {
                let now = self.now;
                if let Err(err) = self.store.release_holds(now) {
                    return Err(TestCaseError::fail(format!("release refused: {err}")));
                }
                for money in self.store.money.values() {
                    for (invoice, lot) in &money.lots {
                        prop_assert!(
                            lot.held == 0 || !lot.hold_ended(now),
                            "invoice {} still holds {} after its hold ended",
                            invoice,
                            lot.held
                        );
                    }
                }
            }
            Action::RequestWithdrawal { partner, currency } => {
                let (partner, currency) = (
                    PARTNERS[partner % PARTNERS.len()],
                    CURRENCIES[currency % CURRENCIES.len()],
                );
                let id = self.id("w");
                let before = self.store.clone();
                let money = self.store.money(partner, currency);
                let available = money.balances.available;
                let minimum = min_withdrawal(currency);
                match ledger::request_withdrawal(money, &id, minimum) {
                    Ok((withdrawal, transfers)) => {
                        prop_assert!(available > 0 && available >= minimum);
                        prop_assert_eq!(withdrawal.amount, available, "R-PAY-1: the whole balance");
                        prop_assert_eq!(money.balances.available, 0);
                        self.store.withdrawals.push(withdrawal);
                        self.store.transfers.extend(transfers);
                    }
                    Err(err) => {
                        prop_assert!(
                            available <= 0 || available < minimum,
                            "refused with {} available: {}",
                            available,
                            err
                        );
                        // The refused request wrote nothing (an empty book may
                        // have been created by the look-up itself).
                        self.store.money.retain(|key, m| {
                            before.money.contains_key(key) || *m != PartnerMoney::new(key.0, key.1)
                        });
                        prop_assert!(
                            self.store == before,
                            "a refused withdrawal changed the store"
                        );
                    }
                }
            }
            Action::ApproveWithdrawal { withdrawal } => {
                if self.store.withdrawals.is_empty() {
                    return Ok(());
                }
                let index = withdrawal % self.store.withdrawals.len();
                let w = &mut self.store.withdrawals[index];
                let requested = w.status == WithdrawalStatus::Requested;
                match ledger::approve_withdrawal(w) {
                    Ok(item) => {
                        prop_assert!(requested);
                        self.store.items.insert(item.withdrawal_id.clone(), item);
                    }
                    Err(_) => {
                        prop_assert!(!requested, "approval of a requested withdrawal refused")
                    }
                }
            }
            Action::RejectWithdrawal { withdrawal } => {
                if self.store.withdrawals.is_empty() {
                    return Ok(());
                }
                let index = withdrawal % self.store.withdrawals.len();
                let key = (
                    self.store.withdrawals[index].partner_id,
                    self.store.withdrawals[index].currency,
                );
                let before = self.store.clone();
                let Some(money) = self.store.money.get_mut(&key) else {
                    return Err(TestCaseError::fail("a withdrawal without its book"));
                };
                let w = &mut self.store.withdrawals[index];
                let requested = w.status == WithdrawalStatus::Requested;
                match ledger::reject_withdrawal(money, w) {
                    Ok(transfers) => {
                        prop_assert!(requested);
                        self.store.transfers.extend(transfers);
                    }
                    Err(_) => {
                        prop_assert!(!requested, "rejection of a requested withdrawal refused");
                        prop_assert!(
                            self.store == before,
                            "a refused rejection changed the store"
                        );
                    }
                }
            }
            Action::Payout { withdrawal, status } => {
                let with_items: Vec<usize> = (0..self.store.withdrawals.len())
                    .filter(|i| {
                        self.store
                            .items
                            .contains_key(&self.store.withdrawals[*i].id)
                    })
                    .collect();
                if with_items.is_empty() {
                    return Ok(());
                }
                let index = with_items[withdrawal % with_items.len()];
                let before = self.store.clone();
                let w = &mut self.store.withdrawals[index];
                let (Some(money), Some(item)) = (
                    self.store.money.get_mut(&(w.partner_id, w.currency)),
                    self.store.items.get_mut(&w.id),
                ) else {
                    return Err(TestCaseError::fail("a payout without its book or item"));
                };
                let conflict = item.status.outcome() == PayoutOutcome::CameBack
                    && status.outcome() == PayoutOutcome::Arrived;
                match ledger::record_payout_status(money, w, item, status) {
                    Ok(transfers) => {
                        prop_assert!(!conflict, "SUCCESS accepted after the money came back");
                        self.store.transfers.extend(transfers);
                    }
                    Err(err) => {
                        prop_assert!(conflict, "payout status {} refused: {}", status, err);
                        prop_assert!(
                            self.store == before,
                            "a refused payout status changed the store"
                        );
                    }
                }
            }
        }
        Ok(())
    }

    /// The model's own account of each partner's earned commission: every
    /// delivered payment at its customer's rate, minus delivered refunds and
    /// open chargebacks, floored, zero once rejected (R-COM-1..3, R-COM-4).
    fn expected_earned(&self) -> BTreeMap<(i64, Currency), i128> {
        let delivered: Vec<&Event> = self.delivered.iter().map(|i| &self.events[*i]).collect();
        let mut earned = BTreeMap::new();
        for event in &delivered {
            let Event::Payment {
                id,
                customer,
                amount,
                ..
            } = event
            else {
                continue;
            };
            let customer = &self.customers[*customer];
            let mut refunded = 0i128;
            let mut withdrawn: BTreeMap<&str, i128> = BTreeMap::new();
            let mut reinstated: BTreeMap<&str, i128> = BTreeMap::new();
            for other in &delivered {
                match other {
                    Event::Refund {
                        payment, amount, ..
                    } if payment == id => refunded += i128::from(*amount),
                    Event::Chargeback {
                        id: cb,
                        payment,
                        amount,
                    } if payment == id => {
                        withdrawn.insert(cb, i128::from(*amount));
                    }
                    Event::Reinstatement {
                        chargeback,
                        payment,
                        amount,
                    } if payment == id => {
                        reinstated.insert(chargeback, i128::from(*amount));
                    }
                    _ => {}
                }
            }
            let disputed: i128 = withdrawn
                .iter()
                .map(|(cb, w)| (w - reinstated.get(cb).copied().unwrap_or(0)).max(0))
                .sum();
            let net = (i128::from(*amount) - refunded - disputed).max(0);
            let commission = if self.rejected.contains(id) {
                0
            } else {
                net * i128::from(customer.rate.percent()) / 100
            };
            *earned
                .entry((customer.partner_id, customer.currency))
                .or_insert(0) += commission;
        }
        earned
    }

    /// After a step whose transfers start at `first`: I1–I8 hold, earned
    /// commission is what the model computes, and R-COM-3/R-COM-4 were obeyed.
    fn check(&self, index: usize, action: &Action, first: usize) -> Result<(), TestCaseError> {
        let breaches = self.store.breaches();
        prop_assert!(
            breaches.is_empty(),
            "step {} ({:?}) broke the ledger:\n{}",
            index,
            action,
            show(&breaches)
        );
        let expected = self.expected_earned();
        for money in self.store.money.values() {
            let b = money.balances;
            let want = expected
                .get(&(money.partner_id, money.currency))
                .copied()
                .unwrap_or(0);
            prop_assert_eq!(
                i128::from(b.earned),
                want,
                "step {} ({:?}): partner {} earned in {}",
                index,
                action,
                money.partner_id,
                money.currency
            );
            prop_assert!(
                b.clawback == 0 || b.available == 0,
                "step {} ({:?}): clawback {} beside available {}: R-COM-3 pays clawback first",
                index,
                action,
                b.clawback,
                b.available
            );
        }
        for t in &self.store.transfers[first..] {
            self.check_hold(t)
                .map_err(|err| TestCaseError::fail(format!("step {index} ({action:?}): {err}")))?;
        }
        // R-COM-4: an invoice's unreleased commission sits on review exactly
        // while the invoice waits for a person.
        for invoice in self.store.invoices.values() {
            let Some(p) = &invoice.payment else { continue };
            let lot = self.store.money[&(p.partner_id, p.currency)].lot(&invoice.id);
            let (wrong, account) = if invoice.review == Review::Pending {
                (lot.held, "held")
            } else {
                (lot.on_review, "on review")
            };
            prop_assert_eq!(
                wrong,
                0,
                "step {} ({:?}): invoice {} is {:?} but has {} {}",
                index,
                action,
                &invoice.id,
                invoice.review,
                wrong,
                account
            );
        }
        Ok(())
    }

    /// R-COM-4: commission reaches the partner (available, or paying off
    /// clawback) only once its invoice's hold ended, and leaves on review
    /// only by a person's decision or a reversal.
    fn check_hold(&self, t: &Transfer) -> Result<(), TestCaseError> {
        use partnerd_domain::ledger::Account::*;
        let earning = matches!(t.debit, Held | OnReview | CommissionExpense)
            && matches!(t.credit, Available | Clawback);
        if earning {
            let invoice = t.invoice.as_deref().unwrap_or_default();
            let money = &self.store.money[&(t.partner_id, t.currency)];
            let paid_at = self.store.invoices[invoice]
                .payment
                .as_ref()
                .map(|p| p.paid_at.millis())
                .unwrap_or(i64::MAX);
            let hold_end = money
                .lot(invoice)
                .release_at
                .map_or(paid_at + self.hold_days * DAY, Timestamp::millis);
            prop_assert!(
                hold_end <= self.now.millis(),
                "{} moved {} of invoice {} to the partner before its hold ended",
                t.source,
                t.amount,
                invoice
            );
        }
        if t.debit == OnReview && t.credit != CommissionExpense {
            prop_assert!(
                matches!(t.source, Source::Approval { .. }),
                "{} took money off review without a person",
                t.source
            );
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_sequences_keep_every_invariant(actions in prop::collection::vec(action(), 1..120)) {
        let mut world = World::new();
        for (index, action) in actions.iter().enumerate() {
            let first = world.store.transfers.len();
            world.step(action)?;
            world.check(index, action, first)?;
        }
        // Everything pending arrives in the end, and the holds run out.
        while let Some(index) = world.pending.pop() {
            let first = world.store.transfers.len();
            world.deliver(index)?;
            world.check(actions.len(), &Action::DeliverPending { pending: 0 }, first)?;
        }
        world.now = Timestamp::from_millis(world.now.millis() + 400 * DAY);
        let first = world.store.transfers.len();
        world.step(&Action::ReleaseHolds)?;
        world.check(actions.len(), &Action::ReleaseHolds, first)?;
    }
}

/// A batch of billing events for a few customers, delivered at one moment.
#[derive(Debug, Clone)]
struct Scenario {
    customers: Vec<Customer>,
    /// Delivered, released and paid out before the batch (the same in both
    /// runs), so reversals in the batch meet paid-out money and clawback.
    earlier: Vec<Event>,
    batch: Vec<Event>,
    /// Whether the batch arrives after the hold of its payments ended.
    late: bool,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    let customer = (
        0..2usize,
        0..2usize,
        prop::sample::select(vec![10i64, 20, 33]),
        prop::bool::weighted(0.25),
    );
    let invoice = (
        any::<usize>(),
        1..100_000i64,
        prop::bool::weighted(0.3),
        prop::collection::vec(size(), 0..3),
        prop::option::weighted(0.4, (size(), any::<bool>())),
    );
    (
        prop::collection::vec(customer, 1..4),
        prop::collection::vec(invoice, 1..6),
        any::<bool>(),
    )
        .prop_map(|(customers, invoices, late)| {
            let customers: Vec<Customer> = customers
                .into_iter()
                .map(|(partner, currency, percent, under_review)| Customer {
                    partner_id: PARTNERS[partner],
                    currency: CURRENCIES[currency],
                    rate: CommissionRate::from_percent(percent).expect("a valid rate"),
                    under_review,
                })
                .collect();
            let mut earlier = Vec::new();
            let mut batch = Vec::new();
            for (n, (customer, amount, is_earlier, refunds, chargeback)) in
                invoices.into_iter().enumerate()
            {
                let customer = customer % customers.len();
                let payment = format!("in_{n}");
                let (list, paid_at) = if is_earlier {
                    (&mut earlier, Timestamp::from_millis(START - 100 * DAY))
                } else {
                    (&mut batch, Timestamp::from_millis(START))
                };
                list.push(Event::Payment {
                    id: payment.clone(),
                    customer,
                    amount,
                    paid_at,
                });
                let mut left = amount;
                for (r, size) in refunds.into_iter().enumerate() {
                    if left > 0 {
                        let refund = size.of(left);
                        left -= refund;
                        batch.push(Event::Refund {
                            id: format!("re_{n}_{r}"),
                            payment: payment.clone(),
                            amount: refund,
                        });
                    }
                }
                if let (Some((size, won)), true) = (chargeback, left > 0) {
                    let amount = size.of(left);
                    let id = format!("dp_{n}");
                    batch.push(Event::Chargeback {
                        id: id.clone(),
                        payment: payment.clone(),
                        amount,
                    });
                    if won {
                        batch.push(Event::Reinstatement {
                            chargeback: id,
                            payment: payment.clone(),
                            amount,
                        });
                    }
                }
            }
            Scenario {
                customers,
                earlier,
                batch,
                late,
            }
        })
}

/// A scenario and an order of deliveries: every batch event 1–5 times, shuffled.
fn scenario_and_deliveries() -> impl Strategy<Value = (Scenario, Vec<usize>)> {
    scenario()
        .prop_flat_map(|s| {
            let n = s.batch.len();
            (Just(s), prop::collection::vec(1..=5usize, n))
        })
        .prop_flat_map(|(s, counts)| {
            let order: Vec<usize> = counts
                .iter()
                .enumerate()
                .flat_map(|(event, times)| std::iter::repeat_n(event, *times))
                .collect();
            (Just(s), Just(order).prop_shuffle())
        })
}

const HOLD_DAYS: i64 = 30;

/// Plays the earlier events, releases them, withdraws and pays out what can
/// be, then delivers the batch in `order` at one moment.
fn play(scenario: &Scenario, order: &[usize]) -> Result<Store, TestCaseError> {
    let mut store = Store::default();
    let deliver = |store: &mut Store, event: &Event, now: Timestamp| -> Result<(), TestCaseError> {
        store
            .deliver(event, &scenario.customers, HOLD_DAYS, now)
            .map(|_| ())
            .map_err(|err| TestCaseError::fail(format!("{event:?} was refused: {err}")))
    };
    let earlier_now = Timestamp::from_millis(START - 100 * DAY);
    for event in &scenario.earlier {
        deliver(&mut store, event, earlier_now)?;
    }
    store
        .release_holds(Timestamp::from_millis(START - 50 * DAY))
        .map_err(|err| TestCaseError::fail(err.to_string()))?;
    let books: Vec<(i64, Currency)> = store.money.keys().copied().collect();
    for (n, (partner, currency)) in books.into_iter().enumerate() {
        let money = store.money(partner, currency);
        let Ok((mut withdrawal, transfers)) =
            ledger::request_withdrawal(money, &format!("w_{n}"), min_withdrawal(currency))
        else {
            continue;
        };
        store.transfers.extend(transfers);
        let mut item = ledger::approve_withdrawal(&mut withdrawal)
            .map_err(|err| TestCaseError::fail(err.to_string()))?;
        let money = store.money(partner, currency);
        let paid =
            ledger::record_payout_status(money, &mut withdrawal, &mut item, PayoutStatus::Success)
                .map_err(|err| TestCaseError::fail(err.to_string()))?;
        store.transfers.extend(paid);
        store.items.insert(item.withdrawal_id.clone(), item);
        store.withdrawals.push(withdrawal);
    }
    let now = if scenario.late {
        Timestamp::from_millis(START + (HOLD_DAYS + 10) * DAY)
    } else {
        Timestamp::from_millis(START + DAY)
    };
    for &index in order {
        deliver(&mut store, &scenario.batch[index], now)?;
    }
    let breaches = store.breaches();
    prop_assert!(
        breaches.is_empty(),
        "the ledger broke:\n{}",
        show(&breaches)
    );
    Ok(store)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn delivery_order_and_duplicates_do_not_change_the_ledger(
        (scenario, deliveries) in scenario_and_deliveries()
    ) {
        let once: Vec<usize> = (0..scenario.batch.len()).collect();
        let mut usual = play(&scenario, &once)?;
        let mut shuffled = play(&scenario, &deliveries)?;
        prop_assert_eq!(&usual.invoices, &shuffled.invoices);
        prop_assert_eq!(usual.money_state(), shuffled.money_state());
        // And they stay the same once every hold has run out.
        let later = Timestamp::from_millis(START + 100 * DAY);
        usual.release_holds(later).map_err(|err| TestCaseError::fail(err.to_string()))?;
        shuffled.release_holds(later).map_err(|err| TestCaseError::fail(err.to_string()))?;
        prop_assert_eq!(usual.money_state(), shuffled.money_state());
    }
}
