-- Stripe webhooks in (issue 4, CONTRACT.md `POST /webhooks/stripe`). Kept in lockstep
-- with ../sqlite/0006_stripe.sql. Times are milliseconds UTC, amounts integer minor
-- units. The bookings themselves go through the money tables of 0005 (billing_events,
-- invoices, invoice_refunds …); these tables hold only what Stripe's way of naming
-- things needs: events seen, charges linked to invoices, events waiting for a link,
-- how a charge's cumulative refunded amount was shared out, and console secrets.

-- Every verified event partnerd processed, so a redelivery answers 200 and books
-- nothing. Written after the event's bookings committed (each booking is itself
-- idempotent), or together with its pending row.
create table stripe_events (
    -- evt_…: Stripe's id, the same on every delivery of the event.
    id text primary key,
    -- The event's type (invoice.paid …), for the console and for debugging.
    event_type text not null,
    -- booked: its bookings committed; pending: waiting in stripe_pending_events;
    -- ignored: a type partnerd does not book, or nothing to book.
    outcome text not null check (outcome in ('booked', 'pending', 'ignored')),
    received_at bigint not null,
    -- When a pending event was finally booked.
    booked_at bigint
);

-- Refunds and disputes name a charge (ch_…) or payment intent (pi_…), partnerd's
-- payment is the invoice (in_…): invoice.paid, invoice_payment.paid and charge.refunded
-- (before API 2025-03-31.basil) tell which invoice a charge paid.
create table stripe_aliases (
    -- ch_… or pi_…; Stripe ids are unique across object types by their prefix.
    alias text primary key,
    -- in_…: invoices.id (the invoice row may not exist yet).
    invoice_id text not null,
    created_at bigint not null
);
create index stripe_aliases_invoice on stripe_aliases (invoice_id);

-- Verified events that cannot be booked yet and must not be lost: a refund or dispute
-- whose charge is not linked to an invoice yet, a payment of a customer whose sign-up
-- has not arrived yet. Booked (and deleted) by the call that brings what they wait for.
create table stripe_pending_events (
    -- evt_… (also in stripe_events with outcome 'pending').
    event_id text primary key,
    event_type text not null,
    -- What the event waits for: one of a charge / payment intent link, or a sign-up.
    charge_id text,
    payment_intent_id text,
    customer_id text,
    -- JSON of what the booking needs (ids and amounts, no personal data).
    payload text not null,
    received_at bigint not null,
    check (charge_id is not null or payment_intent_id is not null or customer_id is not null)
);
create index stripe_pending_charge on stripe_pending_events (charge_id);
create index stripe_pending_intent on stripe_pending_events (payment_intent_id);
create index stripe_pending_customer on stripe_pending_events (customer_id);

-- charge.refunded carries the charge's cumulative amount_refunded. Each refund booked
-- for a charge (by its re_… id, or by a key made of the charge and the cumulative
-- amount when the event lists no refunds) gets a fixed share here first, so that a
-- duplicate or an older event delivered late books nothing, and a redelivery after a
-- crash books the same share again (the booking is idempotent on refund_key).
create table stripe_refund_shares (
    -- re_…, or ch_…/refunded/{cumulative}: the refund id booked (invoice_refunds.id).
    refund_key text primary key,
    charge_id text not null,
    -- What this refund books; 0 when the charge's refunds were already booked.
    amount bigint not null check (amount >= 0),
    created_at bigint not null
);
create index stripe_refund_shares_charge on stripe_refund_shares (charge_id);

-- Signing secrets (whsec_…) an admin saved in the console, accepted beside
-- PARTNERD_STRIPE_WEBHOOK_SECRET. HMAC needs the secret itself, so it is kept as is;
-- the console shows only the hint and never the secret again.
create table stripe_signing_secrets (
    id bigserial primary key,
    secret text not null unique,
    -- The last four characters, so an admin can tell secrets apart when rotating.
    hint text not null,
    -- Who saved it (an audit actor label).
    created_by text not null,
    created_at bigint not null
);
