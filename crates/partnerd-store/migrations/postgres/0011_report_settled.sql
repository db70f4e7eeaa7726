-- The report's counters in two parts. `report_rollups` (hour first) stays where
-- every click and sign-up is counted; a job moves hours that have passed into
-- `report_rollups_settled`, keyed partner first with a key index that also holds the
-- counters, so a partner's year is an index-only range scan. The report sums both,
-- so a late count for a settled hour is never lost: it is moved on the next run.
-- Kept in lockstep with the other engine's 0011_report_settled.sql.
create table report_rollups_settled (
    partner_id bigint not null,
    hour bigint not null,
    -- 0: the default link.
    campaign_id bigint not null,
    utm_term text not null,
    clicks bigint not null default 0,
    bot_clicks bigint not null default 0,
    unique_visitors bigint not null default 0,
    signups bigint not null default 0,
    primary key (partner_id, hour, campaign_id, utm_term)
        include (clicks, bot_clicks, unique_visitors, signups)
);
-- The program-wide report (every partner) reads by hour.
create index report_rollups_settled_hour on report_rollups_settled (hour);

-- The same settled counters by UTC day (hour / 24): a report's rows over whole days
-- read 365 of these per row of the report instead of 8,760 hours; the hours at the
-- range's ends (a time zone's midnight is not UTC's) come from the hourly table.
create table report_days_settled (
    partner_id bigint not null,
    day bigint not null,
    campaign_id bigint not null,
    utm_term text not null,
    clicks bigint not null default 0,
    bot_clicks bigint not null default 0,
    unique_visitors bigint not null default 0,
    signups bigint not null default 0,
    primary key (partner_id, day, campaign_id, utm_term)
        include (clicks, bot_clicks, unique_visitors, signups)
);
create index report_days_settled_day on report_days_settled (day);
