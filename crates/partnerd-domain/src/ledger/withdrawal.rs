//! Withdrawals and PayPal payouts (R-PAY-1..3) on the ledger.
//!
//! A withdrawal takes the whole available balance of a currency into payout
//! clearing (`wd:`). An admin rejects it (the money comes back, `back:`) or
//! approves it, which creates its one payout item (I5). The item's status, as
//! PayPal reports it, decides the rest: SUCCESS moves the money from clearing to
//! paid out (`paid:`); FAILED, RETURNED, BLOCKED, REFUNDED and REVERSED bring it
//! back to the partner (`back:`), paying off clawback first, even after an
//! earlier SUCCESS (a reversed payout). PENDING, ONHOLD and UNCLAIMED leave it
//! in flight; an unclaimed payout that expires is reported RETURNED.

use serde::{Deserialize, Serialize};

use super::{Account, Booking, LedgerError, PartnerMoney, Source, Transfer, check_book};
use crate::money::{Currency, Money};

/// Where a withdrawal is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WithdrawalStatus {
    /// Requested by the partner; the money is in clearing (in flight).
    Requested,
    /// Approved by an admin; its payout item is on its way (still in flight).
    Approved,
    /// Rejected by an admin; the money went back.
    Rejected,
    /// The payout arrived (I6).
    Paid,
    /// The payout failed or came back; the money went back.
    Failed,
}

impl WithdrawalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            WithdrawalStatus::Requested => "requested",
            WithdrawalStatus::Approved => "approved",
            WithdrawalStatus::Rejected => "rejected",
            WithdrawalStatus::Paid => "paid",
            WithdrawalStatus::Failed => "failed",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        [
            WithdrawalStatus::Requested,
            WithdrawalStatus::Approved,
            WithdrawalStatus::Rejected,
            WithdrawalStatus::Paid,
            WithdrawalStatus::Failed,
        ]
        .into_iter()
        .find(|s| s.as_str() == value)
    }

    /// Whether the withdrawal's money is in payout clearing (I7).
    pub fn is_in_flight(self) -> bool {
        matches!(
            self,
            WithdrawalStatus::Requested | WithdrawalStatus::Approved
        )
    }
}

impl std::fmt::Display for WithdrawalStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A partner's request to be paid one currency's whole available balance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Withdrawal {
    /// The caller's id, unique; the ledger keys are `wd:`, `paid:`, `back:` + id.
    pub id: String,
    pub partner_id: i64,
    pub currency: Currency,
    pub amount: i64,
    pub status: WithdrawalStatus,
}

/// A PayPal payout item's `transaction_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PayoutStatus {
    Pending,
    OnHold,
    Unclaimed,
    Success,
    Failed,
    Returned,
    Blocked,
    Refunded,
    Reversed,
}

/// What a payout status means for the money.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayoutOutcome {
    /// Still on its way (or waiting for the recipient to claim it).
    InFlight,
    /// Arrived at the partner.
    Arrived,
    /// Did not arrive, or was taken back: the money returns to the partner's
    /// balance (R-PAY-3).
    CameBack,
}

impl PayoutStatus {
    pub const ALL: [PayoutStatus; 9] = [
        PayoutStatus::Pending,
        PayoutStatus::OnHold,
        PayoutStatus::Unclaimed,
        PayoutStatus::Success,
        PayoutStatus::Failed,
        PayoutStatus::Returned,
        PayoutStatus::Blocked,
        PayoutStatus::Refunded,
        PayoutStatus::Reversed,
    ];

    /// PayPal's spelling (`SUCCESS`, `ONHOLD` …).
    pub fn as_str(self) -> &'static str {
        match self {
            PayoutStatus::Pending => "PENDING",
            PayoutStatus::OnHold => "ONHOLD",
            PayoutStatus::Unclaimed => "UNCLAIMED",
            PayoutStatus::Success => "SUCCESS",
            PayoutStatus::Failed => "FAILED",
            PayoutStatus::Returned => "RETURNED",
            PayoutStatus::Blocked => "BLOCKED",
            PayoutStatus::Refunded => "REFUNDED",
            PayoutStatus::Reversed => "REVERSED",
        }
    }

    /// Reads PayPal's spelling, in any case.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(value))
    }

    pub fn outcome(self) -> PayoutOutcome {
        match self {
            PayoutStatus::Pending | PayoutStatus::OnHold | PayoutStatus::Unclaimed => {
                PayoutOutcome::InFlight
            }
            PayoutStatus::Success => PayoutOutcome::Arrived,
            PayoutStatus::Failed
            | PayoutStatus::Returned
            | PayoutStatus::Blocked
            | PayoutStatus::Refunded
            | PayoutStatus::Reversed => PayoutOutcome::CameBack,
        }
    }
}

impl std::fmt::Display for PayoutStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The one payout of an approved withdrawal (I5), sent to PayPal with the
/// withdrawal id as `sender_batch_id`, or paid by hand from the CSV export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayoutItem {
    pub withdrawal_id: String,
    pub partner_id: i64,
    pub currency: Currency,
    pub amount: i64,
    pub status: PayoutStatus,
}

/// R-PAY-1: a withdrawal of the whole available balance, refused below
/// `minimum` (the currency's `min_withdrawal`, minor units) or when there is
/// nothing to withdraw. Moves available → payout clearing (`wd:{id}`).
pub fn request_withdrawal(
    money: &mut PartnerMoney,
    withdrawal_id: &str,
    minimum: i64,
) -> Result<(Withdrawal, Vec<Transfer>), LedgerError> {
    let available = money.balances.available;
    if available <= 0 {
        return Err(LedgerError::NothingToWithdraw(money.currency));
    }
    if available < minimum {
        return Err(LedgerError::BelowMinimum {
            available: Money::new(available, money.currency),
            minimum: Money::new(minimum, money.currency),
        });
    }
    let source = Source::Withdrawal {
        withdrawal: withdrawal_id.to_owned(),
    };
    let mut booking = Booking::new(money, source, None);
    booking.leg(Account::Available, Account::PayoutClearing, available, None);
    money.commit(&booking.transfers)?;
    let withdrawal = Withdrawal {
        id: withdrawal_id.to_owned(),
        partner_id: money.partner_id,
        currency: money.currency,
        amount: available,
        status: WithdrawalStatus::Requested,
    };
    Ok((withdrawal, booking.transfers))
}

/// R-PAY-3: an admin rejects a requested withdrawal; its money comes back to
/// the partner (`back:{id}`), paying off any clawback recorded meanwhile.
pub fn reject_withdrawal(
    money: &mut PartnerMoney,
    withdrawal: &mut Withdrawal,
) -> Result<Vec<Transfer>, LedgerError> {
    expect_status(withdrawal, WithdrawalStatus::Requested, "rejected")?;
    let transfers = money_back(money, withdrawal, Account::PayoutClearing)?;
    withdrawal.status = WithdrawalStatus::Rejected;
    Ok(transfers)
}

/// R-PAY-3: an admin approves a requested withdrawal. No money moves (it is
/// already in clearing); the answer is the payout item to create and send.
pub fn approve_withdrawal(withdrawal: &mut Withdrawal) -> Result<PayoutItem, LedgerError> {
    expect_status(withdrawal, WithdrawalStatus::Requested, "approved")?;
    withdrawal.status = WithdrawalStatus::Approved;
    Ok(PayoutItem {
        withdrawal_id: withdrawal.id.clone(),
        partner_id: withdrawal.partner_id,
        currency: withdrawal.currency,
        amount: withdrawal.amount,
        status: PayoutStatus::Pending,
    })
}

/// R-PAY-3: records a payout status reported by PayPal (a poll, a webhook, or
/// an admin marking a CSV payout paid or failed) and books what it means.
///
/// Reports arrive late, twice and out of order, so: a report that does not
/// change where the money is books nothing (a stale PENDING after SUCCESS is
/// ignored, the first final status is kept); SUCCESS pays the withdrawal; a
/// failure, return, block, refund or reversal brings the money back, even after
/// SUCCESS. SUCCESS after the money came back is refused: the partner may have
/// withdrawn it again, so a person must sort it out.
pub fn record_payout_status(
    money: &mut PartnerMoney,
    withdrawal: &mut Withdrawal,
    item: &mut PayoutItem,
    status: PayoutStatus,
) -> Result<Vec<Transfer>, LedgerError> {
    if item.withdrawal_id != withdrawal.id {
        return Err(LedgerError::ItemMismatch {
            item: item.withdrawal_id.clone(),
            withdrawal: withdrawal.id.clone(),
        });
    }
    let expected = match item.status.outcome() {
        PayoutOutcome::InFlight => WithdrawalStatus::Approved,
        PayoutOutcome::Arrived => WithdrawalStatus::Paid,
        PayoutOutcome::CameBack => WithdrawalStatus::Failed,
    };
    expect_status(withdrawal, expected, "paid out")?;
    let (transfers, new_status) = match (item.status.outcome(), status.outcome()) {
        (PayoutOutcome::InFlight, PayoutOutcome::InFlight) => (Vec::new(), None),
        (PayoutOutcome::InFlight, PayoutOutcome::Arrived) => {
            let source = Source::Payout {
                withdrawal: withdrawal.id.clone(),
            };
            check_book(money, withdrawal.partner_id, withdrawal.currency, &source)?;
            let mut booking = Booking::new(money, source, None);
            booking.leg(
                Account::PayoutClearing,
                Account::PaidOut,
                withdrawal.amount,
                None,
            );
            money.commit(&booking.transfers)?;
            (booking.transfers, Some(WithdrawalStatus::Paid))
        }
        (PayoutOutcome::InFlight, PayoutOutcome::CameBack) => {
            let transfers = money_back(money, withdrawal, Account::PayoutClearing)?;
            (transfers, Some(WithdrawalStatus::Failed))
        }
        (PayoutOutcome::Arrived, PayoutOutcome::CameBack) => {
            let transfers = money_back(money, withdrawal, Account::PaidOut)?;
            (transfers, Some(WithdrawalStatus::Failed))
        }
        (PayoutOutcome::CameBack, PayoutOutcome::Arrived) => {
            return Err(LedgerError::PayoutConflict {
                id: withdrawal.id.clone(),
                recorded: item.status,
                reported: status,
            });
        }
        // A stale or repeated report: the money stays where it is.
        (PayoutOutcome::Arrived, _) | (PayoutOutcome::CameBack, _) => return Ok(Vec::new()),
    };
    item.status = status;
    if let Some(new_status) = new_status {
        withdrawal.status = new_status;
    }
    Ok(transfers)
}

/// Brings a withdrawal's money back from `from` to the partner (`back:{id}`).
fn money_back(
    money: &mut PartnerMoney,
    withdrawal: &Withdrawal,
    from: Account,
) -> Result<Vec<Transfer>, LedgerError> {
    let source = Source::MoneyBack {
        withdrawal: withdrawal.id.clone(),
    };
    check_book(money, withdrawal.partner_id, withdrawal.currency, &source)?;
    let mut booking = Booking::new(money, source, None);
    booking.pay_partner(from, withdrawal.amount, money.balances.clawback);
    money.commit(&booking.transfers)?;
    Ok(booking.transfers)
}

fn expect_status(
    withdrawal: &Withdrawal,
    expected: WithdrawalStatus,
    action: &'static str,
) -> Result<(), LedgerError> {
    if withdrawal.status == expected {
        Ok(())
    } else {
        Err(LedgerError::WithdrawalState {
            id: withdrawal.id.clone(),
            status: withdrawal.status,
            action,
        })
    }
}
