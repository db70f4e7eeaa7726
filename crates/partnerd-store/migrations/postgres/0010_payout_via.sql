-- R-PAY-3: how an approved withdrawal is paid, fixed at approval: 'paypal' (the
-- payout job sends it through PayPal's API) or 'manual' (a mass-payment file, then
-- marked paid or failed by an admin). A PayPal payout whose answer was lost looks
-- unsent; knowing it went to PayPal keeps it out of the mass-payment file and the
-- manual marks, so it cannot be paid twice. Kept in lockstep with the other engine's
-- 0010_payout_via.sql.
alter table payout_items add column via text not null default 'manual'
    check (via in ('manual', 'paypal'));
