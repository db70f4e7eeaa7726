-- The report's counters in two parts. `report_rollups` (hour first) stays where
-- every click and sign-up is counted: its newest hours are its last pages, so the
-- click writer's upserts stay on a few hot pages. A job moves hours that have passed
-- into `report_rollups_settled`, keyed partner first and holding the counters in
-- the key itself (WITHOUT ROWID), so a partner's year is one contiguous range of one
-- b-tree rather than 8,760 index entries each with a table lookup. The report sums
-- both, so a late count for a settled hour is never lost: it is moved on the next run.
-- Kept in lockstep with the other engine's 0011_report_settled.sql.
create table report_rollups_settled (
    partner_id integer not null,
    hour integer not null,
    -- 0: the default link.
    campaign_id integer not null,
    utm_term text not null,
    clicks integer not null default 0,
    bot_clicks integer not null default 0,
    unique_visitors integer not null default 0,
    signups integer not null default 0,
    primary key (partner_id, hour, campaign_id, utm_term)
) strict, without rowid;
-- The program-wide report (every partner) reads by hour.
create index report_rollups_settled_hour on report_rollups_settled (hour);

-- The same settled counters by UTC day (hour / 24): a report's rows over whole days
-- read 365 of these per row of the report instead of 8,760 hours; the hours at the
-- range's ends (a time zone's midnight is not UTC's) come from the hourly table.
create table report_days_settled (
    partner_id integer not null,
    day integer not null,
    campaign_id integer not null,
    utm_term text not null,
    clicks integer not null default 0,
    bot_clicks integer not null default 0,
    unique_visitors integer not null default 0,
    signups integer not null default 0,
    primary key (partner_id, day, campaign_id, utm_term)
) strict, without rowid;
create index report_days_settled_day on report_days_settled (day);
