-- R-REP-2: the UTM report's paying customers, revenue and commission, per report
-- row (partner, campaign, term) and UTC hour of the payment, in each currency.
-- Written by the money store in the same transaction as the booking it comes
-- from (partnerd-store/src/money_sql.rs, report_money_change), so the report is
-- real time and never disagrees with the ledger. Kept in lockstep with the
-- other engine's 0009_report_money.sql.
create table report_money (
    partner_id bigint not null references partners (id),
    -- Hours since the epoch (UTC) of the payment's paid_at: refunds later change
    -- the hour their payment was made in.
    hour bigint not null,
    -- As in report_rollups: 0 for the default link, '' for no term.
    campaign_id bigint not null,
    utm_term text not null,
    currency text not null check (length(currency) = 3 and currency = upper(currency)),
    -- New paying customers: counted once, with the first of their payments to arrive.
    customers bigint not null default 0,
    -- Paid net of refunds and open chargebacks, minor units.
    revenue bigint not null default 0,
    -- Commission booked (net of reversals), minor units.
    commission bigint not null default 0,
    -- Partner first: a partner's report over any range reads one index range.
    primary key (partner_id, hour, campaign_id, utm_term, currency)
);
-- The program-wide report reads by hour.
create index report_money_hour on report_money (hour);
