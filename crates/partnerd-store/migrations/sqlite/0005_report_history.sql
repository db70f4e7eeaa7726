-- The report's counters for hours before the last two days, moved out of
-- report_rollups by the hourly housekeeping job (Store::compact_report). Click
-- batches keep writing report_rollups, keyed hour-first so a batch's upserts land
-- together in the current hour; a partner's report over a year reads this table,
-- keyed partner-first and stored in key order (WITHOUT ROWID), so that year is
-- one contiguous range instead of an index range plus a lookup per row. Reports
-- sum both tables. Kept in lockstep with ../postgres/0005_report_history.sql.
create table report_history (
    partner_id integer not null,
    -- UTC hours since the epoch: a partner's time zone is exact to the hour.
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
-- The program-wide report.
create index report_history_hour on report_history (hour);
