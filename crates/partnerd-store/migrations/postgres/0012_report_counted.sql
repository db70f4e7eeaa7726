-- R-REP-2: a customer counts once among the report's paying customers, with the
-- first of their credited payments to arrive. Which customers were counted is kept
-- on their sign-up (read by every payment anyway) rather than found by looking
-- for an earlier invoice of the customer: that took an index on invoices by
-- customer, whose entries land on a random page for every payment, and so one
-- page more to write at every commit. Kept in lockstep with the other engine's
-- 0012_report_counted.sql.
alter table signups add column report_counted bigint not null default 0;
update signups set report_counted = 1 where exists (
    select 1 from invoices i
    where i.customer_id = signups.customer_id and i.amount > 0 and i.partner_id is not null
);
drop index invoices_customer;
