-- The money ledger (DESIGN.md "The money ledger"; R-COM-1..4, R-PAY-1..4). Kept in
-- lockstep with ../postgres/0005_money.sql. Amounts are integer minor units beside
-- their ISO 4217 currency; times are milliseconds UTC. The pure rules live in
-- partnerd-domain (commission.rs, ledger.rs); these tables hold what they read and
-- write, and partnerd-store/src/money.rs books everything of one event in one
-- transaction.

-- Every billing event received (the API's payments, refunds, chargebacks and
-- cancellations; Stripe's events by their event id) with the answer it was given,
-- so a replay answers as the first delivery did and books nothing. request is the
-- facts of the first delivery: a replay with other facts is refused, not answered.
create table billing_events (
    origin text not null check (origin in ('api', 'stripe', 'demo')),
    event_id text not null,
    kind text not null check (kind in ('payment', 'refund', 'chargeback', 'reinstatement', 'cancellation')),
    request text not null,
    -- JSON; '' only inside the transaction that is recording the event.
    answer text not null,
    received_at integer not null,
    primary key (origin, event_id)
) strict;

-- One row per payment id (the vendor's, or Stripe's invoice id), created by the first
-- event that names it: a refund or chargeback may arrive before its payment
-- (R-COM-3), so the payment's columns stay null until it arrives.
create table invoices (
    id text primary key,
    -- The vendor's customer id (= signups.customer_id); null until the payment arrives.
    customer_id text,
    subscription_id text,
    -- The credited partner (R-AFF-4), copied from the customer's sign-up when the
    -- payment arrives; null when the customer is not credited (no commission).
    partner_id integer references partners (id),
    currency text check (currency is null or (length(currency) = 3 and currency = upper(currency))),
    amount integer check (amount is null or amount >= 0),
    -- R-COM-1: the rate fixed for the customer when they were credited, so a refund
    -- months later reverses at the rate the commission was earned.
    commission_rate integer check (commission_rate is null or commission_rate between 0 and 100),
    -- The hold (R-COM-4) counts from here, whenever the event is delivered.
    paid_at integer,
    review text not null default 'not_needed'
        check (review in ('not_needed', 'pending', 'approved', 'rejected')),
    -- Numbers the review cases of this invoice (ledger keys rev:/apr: {invoice}/{n}).
    review_round integer not null default 0,
    -- I4: commission booked so far; always floor(rate × (paid − refunded)) after a commit.
    booked integer not null default 0,
    created_at integer not null,
    updated_at integer not null,
    check ((amount is null) = (paid_at is null))
) strict;
create index invoices_partner on invoices (partner_id, paid_at);
create index invoices_customer on invoices (customer_id);

-- R-COM-3: refunds by their own id, which is global (ledger key ref:{id}).
create table invoice_refunds (
    id text primary key,
    invoice_id text not null references invoices (id),
    amount integer not null check (amount > 0),
    recorded_at integer not null
) strict;
create index invoice_refunds_invoice on invoice_refunds (invoice_id);

-- R-COM-3: disputes; the withdrawal and the reinstatement arrive in either order.
create table invoice_chargebacks (
    id text primary key,
    invoice_id text not null references invoices (id),
    withdrawn integer check (withdrawn is null or withdrawn > 0),
    reinstated integer check (reinstated is null or reinstated > 0),
    recorded_at integer not null
) strict;
create index invoice_chargebacks_invoice on invoice_chargebacks (invoice_id);

-- The ledger: append-only double-entry transfers. Nothing updates or deletes them;
-- balances are derived from them (I8). (source, leg) is unique, so a replayed
-- event cannot book twice (I3). id is the booking order the rebuild follows.
create table ledger_transfers (
    id integer primary key,
    source text not null,
    leg integer not null check (leg >= 0),
    partner_id integer not null references partners (id),
    currency text not null check (length(currency) = 3 and currency = upper(currency)),
    debit text not null check (debit in ('held', 'on_review', 'available', 'clawback', 'commission_expense', 'payout_clearing', 'paid_out')),
    credit text not null check (credit in ('held', 'on_review', 'available', 'clawback', 'commission_expense', 'payout_clearing', 'paid_out')),
    amount integer not null check (amount > 0),
    -- The invoice whose commission this moves (required for held / on review).
    invoice_id text,
    -- On credits into held or on review: when the invoice's hold ends (R-COM-4).
    release_at integer,
    created_at integer not null,
    unique (source, leg),
    check (debit <> credit)
) strict;
create index ledger_transfers_partner on ledger_transfers (partner_id, id);

-- One partner's balances in one currency, as the transfers leave them (I8): read
-- by the panel and the API without summing transfers, and the row every booking of
-- this book locks, so two withdrawals cannot both take the same balance (R-PAY-1).
-- The checks repeat I2: no booking may leave a balance negative.
create table partner_money (
    partner_id integer not null references partners (id),
    currency text not null check (length(currency) = 3 and currency = upper(currency)),
    earned integer not null default 0,
    held integer not null default 0 check (held >= 0),
    on_review integer not null default 0 check (on_review >= 0),
    available integer not null default 0 check (available >= 0),
    in_flight integer not null default 0 check (in_flight >= 0),
    paid integer not null default 0 check (paid >= 0),
    clawback integer not null default 0 check (clawback >= 0),
    updated_at integer not null,
    primary key (partner_id, currency)
) strict;

-- R-COM-4: each invoice's held and on-review money with its own hold end. Rows stay
-- when empty: releases numbers the next release key (rel:{invoice}#{n}).
create table ledger_lots (
    invoice_id text primary key references invoices (id),
    partner_id integer not null references partners (id),
    currency text not null,
    release_at integer,
    held integer not null default 0 check (held >= 0),
    on_review integer not null default 0 check (on_review >= 0),
    releases integer not null default 0 check (releases >= 0)
) strict;
-- The hold-release job looks only at lots with money whose hold ended.
create index ledger_lots_due on ledger_lots (release_at) where held > 0;
create index ledger_lots_book on ledger_lots (partner_id, currency);

-- R-PAY-1..3: a request for one currency's whole available balance. id is the
-- caller's (random) id; it names the ledger keys wd:/paid:/back:{id} and is the
-- PayPal sender_batch_id, so a retried payout cannot pay twice.
create table withdrawals (
    id text primary key,
    partner_id integer not null references partners (id),
    currency text not null check (length(currency) = 3 and currency = upper(currency)),
    amount integer not null check (amount > 0),
    status text not null check (status in ('requested', 'approved', 'rejected', 'paid', 'failed')),
    requested_at integer not null,
    -- The admin's decision (R-PAY-3); the audit log has who.
    decided_at integer,
    reason text,
    updated_at integer not null
) strict;
create index withdrawals_status on withdrawals (status, requested_at);
create index withdrawals_partner on withdrawals (partner_id, requested_at);

-- R-PAY-3: the one payout of an approved withdrawal (I5: the primary key allows one).
-- sender_batch_id is written here, with the approval, before PayPal is called;
-- payout_batch_id and payout_item_id once PayPal answered.
create table payout_items (
    withdrawal_id text primary key references withdrawals (id),
    partner_id integer not null references partners (id),
    currency text not null,
    amount integer not null check (amount > 0),
    -- The PayPal address the money goes to, as it was when approved.
    receiver text not null,
    sender_batch_id text not null unique,
    payout_batch_id text,
    payout_item_id text,
    status text not null check (status in ('PENDING', 'ONHOLD', 'UNCLAIMED', 'SUCCESS', 'FAILED', 'RETURNED', 'BLOCKED', 'REFUNDED', 'REVERSED')),
    created_at integer not null,
    submitted_at integer,
    updated_at integer not null
) strict;
create index payout_items_status on payout_items (status);

-- R-PAY-2, R-PAY-4: where and to whom payouts go. A row of its own: partners without
-- one can do everything but withdraw.
create table payout_profiles (
    partner_id integer primary key references partners (id),
    paypal_email text,
    legal_name text,
    -- ISO 3166-1 alpha-2.
    country text check (country is null or (length(country) = 2 and country = upper(country))),
    tax_id text,
    updated_at integer not null
) strict;

-- Subscriptions seen in payments and cancellations (POST /subscriptions/{id}/cancel,
-- customer.subscription.deleted). A cancellation books nothing: commission follows
-- payments (R-COM-1), and a cancelled subscription simply pays no more.
create table subscriptions (
    id text primary key,
    customer_id text,
    status text not null check (status in ('active', 'cancelled')),
    created_at integer not null,
    cancelled_at integer
) strict;
