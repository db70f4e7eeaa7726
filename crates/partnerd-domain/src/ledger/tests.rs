//! Worked cases of the planners; the random sequences are in
//! `tests/ledger_model.rs`.

use std::collections::BTreeMap;

use super::*;
use crate::commission::{CommissionRate, Payment};

const DAY: i64 = 86_400_000;
const PARTNER: i64 = 7;
const HOLD_DAYS: i64 = 30;

fn at(days: i64) -> Timestamp {
    Timestamp::from_millis(days * DAY)
}

/// A small stand-in for the store: what a store method would read, plan and
/// write, kept in memory.
struct Book {
    money: PartnerMoney,
    invoices: BTreeMap<String, Invoice>,
    transfers: Vec<Transfer>,
    withdrawals: Vec<Withdrawal>,
    items: Vec<PayoutItem>,
}

impl Book {
    fn new() -> Self {
        Self {
            money: PartnerMoney::new(PARTNER, Currency::USD),
            invoices: BTreeMap::new(),
            transfers: Vec::new(),
            withdrawals: Vec::new(),
            items: Vec::new(),
        }
    }

    fn keep(&mut self, transfers: Result<Vec<Transfer>, LedgerError>) -> Vec<Transfer> {
        let transfers = transfers.expect("the planner accepts");
        self.transfers.extend(transfers.iter().cloned());
        self.assert_sound();
        transfers
    }

    fn invoice(&mut self, id: &str) -> Invoice {
        self.invoices
            .get(id)
            .cloned()
            .unwrap_or_else(|| Invoice::new(id))
    }

    fn pay_with(
        &mut self,
        id: &str,
        amount: i64,
        days: i64,
        under_review: bool,
        now: i64,
    ) -> Vec<Transfer> {
        let mut invoice = self.invoice(id);
        invoice
            .record_payment(Payment {
                partner_id: PARTNER,
                currency: Currency::USD,
                amount,
                rate: CommissionRate::from_percent(20).expect("rate"),
                paid_at: at(days),
                under_review,
            })
            .expect("payment");
        let source = Source::Commission { payment: id.into() };
        let result =
            book_commission_change(&mut self.money, &mut invoice, source, HOLD_DAYS, at(now));
        self.invoices.insert(id.into(), invoice);
        self.keep(result)
    }

    fn pay(&mut self, id: &str, amount: i64, days: i64) -> Vec<Transfer> {
        self.pay_with(id, amount, days, false, days)
    }

    fn refund(
        &mut self,
        invoice_id: &str,
        refund_id: &str,
        amount: i64,
        now: i64,
    ) -> Vec<Transfer> {
        let mut invoice = self.invoice(invoice_id);
        invoice.record_refund(refund_id, amount).expect("refund");
        let source = Source::Refund {
            refund: refund_id.into(),
        };
        let result = if invoice.payment.is_some() {
            book_commission_change(&mut self.money, &mut invoice, source, HOLD_DAYS, at(now))
        } else {
            Ok(Vec::new())
        };
        self.invoices.insert(invoice_id.into(), invoice);
        self.keep(result)
    }

    fn release(&mut self, now: i64) -> Vec<Transfer> {
        let result = release_holds(&mut self.money, at(now));
        self.keep(result)
    }

    fn withdraw(&mut self, id: &str) -> Result<Withdrawal, LedgerError> {
        let (withdrawal, transfers) = request_withdrawal(&mut self.money, id, 5_000)?;
        self.withdrawals.push(withdrawal.clone());
        self.keep(Ok(transfers));
        Ok(withdrawal)
    }

    fn approve(&mut self, index: usize) {
        let item = approve_withdrawal(&mut self.withdrawals[index]).expect("approve");
        self.items.push(item);
        self.assert_sound();
    }

    fn payout(&mut self, index: usize, status: PayoutStatus) -> Result<Vec<Transfer>, LedgerError> {
        let item = self
            .items
            .iter_mut()
            .find(|i| i.withdrawal_id == self.withdrawals[index].id)
            .expect("an item");
        let transfers =
            record_payout_status(&mut self.money, &mut self.withdrawals[index], item, status)?;
        Ok(self.keep(Ok(transfers)))
    }

    fn breaches(&self) -> Vec<Breach> {
        let invoices: Vec<Invoice> = self.invoices.values().cloned().collect();
        check_invariants(&LedgerRecords {
            transfers: &self.transfers,
            balances: std::slice::from_ref(&self.money),
            invoices: &invoices,
            withdrawals: &self.withdrawals,
            payout_items: &self.items,
        })
    }

    fn assert_sound(&self) {
        let breaches = self.breaches();
        assert!(breaches.is_empty(), "{breaches:#?}");
    }

    fn balances(&self) -> PartnerBalances {
        self.money.balances
    }
}

fn accounts(transfers: &[Transfer]) -> Vec<(Account, Account, i64)> {
    transfers
        .iter()
        .map(|t| (t.debit, t.credit, t.amount))
        .collect()
}

#[test]
fn commission_is_held_until_its_hold_ends() {
    let mut book = Book::new();
    let transfers = book.pay("in_1", 100_000, 0);
    assert_eq!(
        accounts(&transfers),
        [(Account::CommissionExpense, Account::Held, 20_000)]
    );
    assert_eq!(transfers[0].release_at, Some(at(HOLD_DAYS)));
    assert_eq!(transfers[0].source.key(), "com:in_1");
    assert!(
        book.release(HOLD_DAYS - 1).is_empty(),
        "R-COM-4: not before the hold ends"
    );
    let released = book.release(HOLD_DAYS);
    assert_eq!(released[0].source.key(), "rel:in_1#1");
    assert_eq!(book.balances().available, 20_000);
    assert_eq!(book.balances().held, 0);
    assert!(book.release(HOLD_DAYS + 1).is_empty(), "released once");
}

#[test]
fn the_vendor_example_earns_2400_dollars_in_the_ledger() {
    // R-COM-2: $1,000 a month for 12 months at 20 %.
    let mut book = Book::new();
    for month in 0..12 {
        book.pay(&format!("in_{month}"), 100_000, month * 30);
    }
    book.release(12 * 30 + HOLD_DAYS);
    assert_eq!(book.balances().earned, 240_000);
    assert_eq!(book.balances().available, 240_000);
}

#[test]
fn a_replayed_payment_books_nothing() {
    let mut book = Book::new();
    book.pay("in_1", 100_000, 0);
    assert!(book.pay("in_1", 100_000, 0).is_empty());
    assert_eq!(book.balances().held, 20_000);
}

#[test]
fn a_late_event_after_the_hold_goes_straight_to_available() {
    let mut book = Book::new();
    book.pay_with("in_1", 10_000, 0, false, HOLD_DAYS);
    assert_eq!(book.balances().available, 2_000);
    assert_eq!(book.balances().held, 0);
}

#[test]
fn a_reversal_takes_from_its_own_lot_then_available_then_clawback() {
    let mut book = Book::new();
    book.pay("in_1", 100_000, 0); // 20 000, released below
    book.release(HOLD_DAYS);
    book.withdraw("w_1").expect("withdraw");
    book.pay("in_2", 50_000, HOLD_DAYS); // 10 000 held
    book.pay("in_3", 25_000, HOLD_DAYS); // 5 000 held, released before the refund
    book.refund("in_3", "re_0", 5_000, HOLD_DAYS + 1); // own lot: 5 000 → 4 000
    assert_eq!(book.balances().held, 14_000);
    book.release(2 * HOLD_DAYS);
    assert_eq!(book.balances().available, 14_000);
    book.pay("in_4", 30_000, 2 * HOLD_DAYS); // 6 000 held, another invoice's lot
    // A full refund of in_1 (whose 20 000 is in flight): its lot is empty,
    // so 14 000 comes from available and 6 000 becomes clawback; in_4's lot
    // is not touched.
    let transfers = book.refund("in_1", "re_1", 100_000, 2 * HOLD_DAYS + 1);
    assert_eq!(
        accounts(&transfers),
        [
            (Account::Available, Account::CommissionExpense, 14_000),
            (Account::Clawback, Account::CommissionExpense, 6_000),
        ]
    );
    let b = book.balances();
    assert_eq!(
        (b.available, b.held, b.clawback, b.in_flight),
        (0, 6_000, 6_000, 20_000)
    );
    // R-COM-3: the next release pays off the clawback before anything is available.
    let released = book.release(3 * HOLD_DAYS);
    assert_eq!(
        accounts(&released),
        [(Account::Held, Account::Clawback, 6_000)]
    );
    assert_eq!(
        (book.balances().clawback, book.balances().available),
        (0, 0)
    );
}

#[test]
fn a_refund_in_the_hold_takes_only_from_its_own_lot() {
    let mut book = Book::new();
    book.pay("in_1", 100_000, 0);
    book.pay("in_2", 100_000, 0);
    let transfers = book.refund("in_2", "re_1", 100_000, 1);
    assert_eq!(
        accounts(&transfers),
        [(Account::Held, Account::CommissionExpense, 20_000)]
    );
    assert_eq!(book.money.lot("in_1").held, 20_000);
    assert_eq!(book.money.lot("in_2").held, 0);
}

#[test]
fn a_refund_before_its_payment_ends_where_the_usual_order_does() {
    let mut usual = Book::new();
    usual.pay("in_1", 100_000, 0);
    usual.refund("in_1", "re_1", 50_000, 0);

    let mut early = Book::new();
    assert!(early.refund("in_1", "re_1", 50_000, 0).is_empty());
    early.pay("in_1", 100_000, 0);

    assert_eq!(usual.money, early.money);
    assert_eq!(usual.invoices, early.invoices);
    assert_eq!(early.balances().held, 10_000);
}

#[test]
fn commission_under_review_waits_for_a_person() {
    let mut book = Book::new();
    book.pay_with("in_1", 100_000, 0, true, 0);
    assert_eq!(book.balances().on_review, 20_000);
    assert!(
        book.release(HOLD_DAYS + 5).is_empty(),
        "the hold alone does not release it"
    );

    let mut invoice = book.invoice("in_1");
    let result = approve_review(&mut book.money, &mut invoice, "review_1", at(HOLD_DAYS + 5));
    book.invoices.insert("in_1".into(), invoice);
    let transfers = book.keep(result);
    assert_eq!(transfers[0].source.key(), "apr:review_1");
    assert_eq!(book.balances().available, 20_000, "the hold already ended");
}

#[test]
fn approval_within_the_hold_moves_to_held() {
    let mut book = Book::new();
    book.pay_with("in_1", 100_000, 0, true, 0);
    let mut invoice = book.invoice("in_1");
    let result = approve_review(&mut book.money, &mut invoice, "review_1", at(1));
    book.invoices.insert("in_1".into(), invoice);
    book.keep(result);
    assert_eq!(
        (book.balances().held, book.balances().on_review),
        (20_000, 0)
    );
    book.release(HOLD_DAYS);
    assert_eq!(book.balances().available, 20_000);
}

#[test]
fn a_rejection_returns_the_commission_to_the_expense() {
    let mut book = Book::new();
    book.pay_with("in_1", 100_000, 0, true, 0);
    let mut invoice = book.invoice("in_1");
    let result = reject_review(&mut book.money, &mut invoice);
    book.invoices.insert("in_1".into(), invoice);
    let transfers = book.keep(result);
    assert_eq!(transfers[0].source.key(), "rej:in_1");
    assert_eq!(book.balances(), PartnerBalances::default());
    // Later events on a rejected invoice earn nothing.
    assert!(book.refund("in_1", "re_1", 10_000, 1).is_empty());
}

#[test]
fn putting_held_commission_on_review_takes_it_out_of_the_hold() {
    let mut book = Book::new();
    book.pay("in_1", 100_000, 0);
    let mut invoice = book.invoice("in_1");
    let result = put_on_review(&mut book.money, &mut invoice, "review_1");
    book.invoices.insert("in_1".into(), invoice);
    let transfers = book.keep(result);
    assert_eq!(transfers[0].source.key(), "rev:review_1");
    assert_eq!(
        accounts(&transfers),
        [(Account::Held, Account::OnReview, 20_000)]
    );
    assert!(
        book.release(HOLD_DAYS).is_empty(),
        "the hold alone does not release it"
    );
    assert_eq!(book.balances().on_review, 20_000);
}

#[test]
fn putting_released_commission_on_review_and_rejecting_it_claws_it_back() {
    let mut book = Book::new();
    book.pay("in_1", 100_000, 0);
    book.release(HOLD_DAYS);
    book.withdraw("w_1").expect("withdraw");
    let mut invoice = book.invoice("in_1");
    let put = put_on_review(&mut book.money, &mut invoice, "review_1");
    assert!(book.keep(put).is_empty(), "nothing left in its lot to hold");
    let result = reject_review(&mut book.money, &mut invoice);
    book.invoices.insert("in_1".into(), invoice);
    book.keep(result);
    assert_eq!(book.balances().clawback, 20_000);
}

#[test]
fn a_withdrawal_takes_the_whole_available_balance_and_only_above_the_minimum() {
    let mut book = Book::new();
    book.pay("in_1", 20_000, 0); // 4 000 < 5 000 minimum
    book.release(HOLD_DAYS);
    let before = book.transfers.len();
    assert_eq!(
        book.withdraw("w_1"),
        Err(LedgerError::BelowMinimum {
            available: Money::new(4_000, Currency::USD),
            minimum: Money::new(5_000, Currency::USD),
        })
    );
    assert_eq!(
        book.transfers.len(),
        before,
        "a refused request books nothing"
    );
    book.pay("in_2", 10_000, HOLD_DAYS);
    book.release(2 * HOLD_DAYS);
    let withdrawal = book.withdraw("w_1").expect("withdraw");
    assert_eq!(withdrawal.amount, 6_000);
    assert_eq!(
        (book.balances().available, book.balances().in_flight),
        (0, 6_000)
    );
    assert_eq!(
        book.withdraw("w_2"),
        Err(LedgerError::NothingToWithdraw(Currency::USD))
    );
}

#[test]
fn a_rejected_withdrawal_comes_back() {
    let mut book = Book::new();
    book.pay("in_1", 100_000, 0);
    book.release(HOLD_DAYS);
    book.withdraw("w_1").expect("withdraw");
    let result = reject_withdrawal(&mut book.money, &mut book.withdrawals[0]);
    book.keep(result);
    assert_eq!(book.withdrawals[0].status, WithdrawalStatus::Rejected);
    assert_eq!(
        (book.balances().available, book.balances().in_flight),
        (20_000, 0)
    );
    assert!(approve_withdrawal(&mut book.withdrawals[0]).is_err());
}

#[test]
fn a_successful_payout_is_paid_once_and_stale_reports_are_ignored() {
    let mut book = Book::new();
    book.pay("in_1", 100_000, 0);
    book.release(HOLD_DAYS);
    book.withdraw("w_1").expect("withdraw");
    book.approve(0);
    assert!(
        book.payout(0, PayoutStatus::Unclaimed)
            .expect("ok")
            .is_empty()
    );
    let paid = book.payout(0, PayoutStatus::Success).expect("ok");
    assert_eq!(paid[0].source.key(), "paid:w_1");
    assert!(
        book.payout(0, PayoutStatus::Success)
            .expect("ok")
            .is_empty()
    );
    assert!(
        book.payout(0, PayoutStatus::Pending)
            .expect("ok")
            .is_empty()
    );
    assert_eq!(book.withdrawals[0].status, WithdrawalStatus::Paid);
    assert_eq!(
        (book.balances().paid, book.balances().in_flight),
        (20_000, 0)
    );
}

#[test]
fn money_that_does_not_arrive_comes_back_and_pays_clawback_first() {
    for status in PayoutStatus::ALL
        .into_iter()
        .filter(|s| s.outcome() == PayoutOutcome::CameBack)
    {
        let mut book = Book::new();
        book.pay("in_1", 100_000, 0);
        book.release(HOLD_DAYS);
        book.withdraw("w_1").expect("withdraw");
        book.approve(0);
        book.refund("in_1", "re_1", 25_000, HOLD_DAYS + 1); // 5 000 clawback
        assert_eq!(book.balances().clawback, 5_000);
        let back = book.payout(0, status).expect("ok");
        assert_eq!(back[0].source.key(), "back:w_1");
        assert_eq!(
            accounts(&back),
            [
                (Account::PayoutClearing, Account::Clawback, 5_000),
                (Account::PayoutClearing, Account::Available, 15_000),
            ],
            "{status}"
        );
        assert_eq!(book.withdrawals[0].status, WithdrawalStatus::Failed);
        assert_eq!(
            book.payout(0, PayoutStatus::Success),
            Err(LedgerError::PayoutConflict {
                id: "w_1".into(),
                recorded: status,
                reported: PayoutStatus::Success,
            })
        );
    }
}

#[test]
fn a_payout_reversed_after_success_comes_back_from_paid() {
    let mut book = Book::new();
    book.pay("in_1", 100_000, 0);
    book.release(HOLD_DAYS);
    book.withdraw("w_1").expect("withdraw");
    book.approve(0);
    book.payout(0, PayoutStatus::Success).expect("ok");
    let back = book.payout(0, PayoutStatus::Reversed).expect("ok");
    assert_eq!(
        accounts(&back),
        [(Account::PaidOut, Account::Available, 20_000)]
    );
    assert_eq!(
        (book.balances().paid, book.balances().available),
        (0, 20_000)
    );
}

#[test]
fn planners_refuse_another_partners_book_and_change_nothing() {
    let mut book = Book::new();
    book.pay("in_1", 100_000, 0);
    let mut other = PartnerMoney::new(PARTNER + 1, Currency::USD);
    let mut invoice = book.invoice("in_1");
    invoice.record_refund("re_1", 1_000).expect("refund");
    let before = (other.clone(), invoice.clone());
    let result = book_commission_change(
        &mut other,
        &mut invoice,
        Source::Refund {
            refund: "re_1".into(),
        },
        HOLD_DAYS,
        at(1),
    );
    assert!(matches!(result, Err(LedgerError::WrongBook { .. })));
    assert_eq!((other, invoice), before);
}

#[test]
fn negative_hold_days_are_refused() {
    let mut money = PartnerMoney::new(PARTNER, Currency::USD);
    let mut invoice = Invoice::new("in_1");
    invoice
        .record_payment(Payment {
            partner_id: PARTNER,
            currency: Currency::USD,
            amount: 100,
            rate: CommissionRate::from_percent(20).expect("rate"),
            paid_at: at(0),
            under_review: false,
        })
        .expect("payment");
    let source = Source::Commission {
        payment: "in_1".into(),
    };
    assert_eq!(
        book_commission_change(&mut money, &mut invoice, source, -1, at(0)),
        Err(LedgerError::InvalidHoldDays(-1))
    );
}

#[test]
fn source_keys_round_trip_even_with_separators_in_ids() {
    let sources = [
        Source::Commission {
            payment: "in:1#2".into(),
        },
        Source::Refund {
            refund: "re_1".into(),
        },
        Source::Chargeback {
            chargeback: "dp_1".into(),
        },
        Source::Reinstatement {
            chargeback: "dp_1".into(),
        },
        Source::Rejection {
            invoice: "in_1".into(),
        },
        Source::PutOnReview { review: "7".into() },
        Source::Approval { review: "7".into() },
        Source::Release {
            invoice: "in#1".into(),
            n: 2,
        },
        Source::Withdrawal {
            withdrawal: "w_1".into(),
        },
        Source::Payout {
            withdrawal: "w_1".into(),
        },
        Source::MoneyBack {
            withdrawal: "w_1".into(),
        },
    ];
    for source in sources {
        assert_eq!(Source::parse(&source.key()), Ok(source.clone()), "{source}");
    }
    for bad in ["", "com", "com:", "xyz:1", "rel:in_1", "rel:in_1#x"] {
        assert!(Source::parse(bad).is_err(), "{bad}");
    }
    assert_eq!(
        Source::parse("rel:in#1#3"),
        Ok(Source::Release {
            invoice: "in#1".into(),
            n: 3
        })
    );
}

#[test]
fn accounts_and_statuses_round_trip_through_their_spelling() {
    for account in Account::ALL {
        assert_eq!(Account::parse(account.as_str()), Some(account));
    }
    for status in PayoutStatus::ALL {
        assert_eq!(
            PayoutStatus::parse(&status.as_str().to_lowercase()),
            Some(status)
        );
    }
    assert_eq!(
        WithdrawalStatus::parse("paid"),
        Some(WithdrawalStatus::Paid)
    );
}

#[test]
fn rebuilding_from_the_transfers_gives_the_incremental_balances() {
    let mut book = Book::new();
    book.pay("in_1", 100_000, 0);
    book.pay_with("in_2", 50_000, 1, true, 1);
    book.refund("in_1", "re_1", 30_000, 2);
    book.release(HOLD_DAYS);
    book.withdraw("w_1").expect("withdraw");
    let rebuilt = Balances::from_transfers(&book.transfers).expect("rebuild");
    assert_eq!(rebuilt.get(PARTNER, Currency::USD), Some(&book.money));
    assert_eq!(rebuilt.payout_clearing(Currency::USD), Ok(14_000));
}

/// A ledger with a little of everything, to break in the tests below.
fn busy_book() -> Book {
    let mut book = Book::new();
    book.pay("in_1", 100_000, 0);
    book.refund("in_1", "re_1", 10_000, 1);
    book.release(HOLD_DAYS);
    book.withdraw("w_1").expect("withdraw");
    book.approve(0);
    book.payout(0, PayoutStatus::Success).expect("ok");
    book.pay("in_2", 100_000, HOLD_DAYS);
    book.release(2 * HOLD_DAYS);
    book.withdraw("w_2").expect("withdraw");
    book
}

fn invariants_of(breaches: &[Breach]) -> Vec<Invariant> {
    let mut found: Vec<Invariant> = breaches.iter().map(|b| b.invariant).collect();
    found.dedup();
    found
}

#[test]
fn a_sound_ledger_has_no_breaches() {
    assert_eq!(busy_book().breaches(), []);
}

#[test]
fn a_transfer_of_nothing_breaks_i1() {
    let mut book = busy_book();
    let mut bogus = book.transfers[0].clone();
    bogus.source = Source::Refund {
        refund: "re_x".into(),
    };
    bogus.amount = 0;
    book.transfers.push(bogus);
    let breaches = book.breaches();
    assert_eq!(invariants_of(&breaches), [Invariant::I1]);
    assert!(
        breaches[0]
            .to_string()
            .contains("must move a positive amount"),
        "{}",
        breaches[0]
    );
}

#[test]
fn stored_accounts_that_do_not_balance_break_i1_and_i8() {
    let mut book = busy_book();
    book.money.balances.available += 1;
    assert_eq!(
        invariants_of(&book.breaches()),
        [Invariant::I1, Invariant::I8]
    );
}

#[test]
fn available_below_zero_breaks_i2() {
    let mut book = busy_book();
    let mut overdraw = book.transfers[0].clone();
    overdraw.source = Source::Withdrawal {
        withdrawal: "w_x".into(),
    };
    overdraw.debit = Account::Available;
    overdraw.credit = Account::PayoutClearing;
    overdraw.invoice = None;
    overdraw.release_at = None;
    overdraw.amount = 1_000_000;
    book.transfers.push(overdraw.clone());
    book.money.apply(&overdraw).expect("apply");
    book.withdrawals.push(Withdrawal {
        id: "w_x".into(),
        partner_id: PARTNER,
        currency: Currency::USD,
        amount: 1_000_000,
        status: WithdrawalStatus::Requested,
    });
    let breaches = book.breaches();
    assert_eq!(invariants_of(&breaches), [Invariant::I2], "{breaches:#?}");
    assert!(breaches[0].message.contains("went to -"), "{}", breaches[0]);
}

#[test]
fn a_source_booked_twice_breaks_i3() {
    let mut book = busy_book();
    let again = book.transfers[0].clone();
    book.transfers.push(again.clone());
    book.money.apply(&again).expect("apply");
    let found = invariants_of(&book.breaches());
    assert!(found.contains(&Invariant::I3), "{found:?}");
}

#[test]
fn a_commission_that_is_not_the_formula_breaks_i4() {
    let mut book = busy_book();
    if let Some(invoice) = book.invoices.get_mut("in_1") {
        invoice.booked += 1;
    }
    let breaches = book.breaches();
    assert_eq!(invariants_of(&breaches), [Invariant::I4]);
    assert!(
        breaches[0]
            .message
            .contains("20 % of 1000.00 USD paid minus 100.00 USD refunded or charged back"),
        "{}",
        breaches[0]
    );
}

#[test]
fn a_payout_of_an_unapproved_withdrawal_breaks_i5() {
    let mut book = busy_book();
    book.items.push(PayoutItem {
        withdrawal_id: "w_2".into(),
        partner_id: PARTNER,
        currency: Currency::USD,
        amount: book.withdrawals[1].amount,
        status: PayoutStatus::Pending,
    });
    assert_eq!(invariants_of(&book.breaches()), [Invariant::I5]);
}

#[test]
fn a_paid_withdrawal_without_a_successful_payout_breaks_i6() {
    let mut book = busy_book();
    book.items[0].status = PayoutStatus::Pending;
    assert_eq!(invariants_of(&book.breaches()), [Invariant::I6]);
}

#[test]
fn clearing_that_is_not_the_money_in_flight_breaks_i7() {
    let mut book = busy_book();
    book.withdrawals[1].amount += 1;
    assert_eq!(invariants_of(&book.breaches()), [Invariant::I7]);
}

#[test]
fn stored_balances_that_are_not_the_transfers_break_i8() {
    let mut book = busy_book();
    book.money.balances.available += 1;
    book.money.balances.earned += 1;
    if let Some(lot) = book.money.lots.get_mut("in_1") {
        lot.releases = 0;
    }
    let breaches = book.breaches();
    assert_eq!(invariants_of(&breaches), [Invariant::I8]);
    assert_eq!(breaches.len(), 3, "{breaches:#?}");
    assert!(
        breaches[0]
            .to_string()
            .starts_with("I8 (stored balances match the transfers): partner 7's stored"),
        "{}",
        breaches[0]
    );
}
