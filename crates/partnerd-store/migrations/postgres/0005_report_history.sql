-- The report's counters for hours before the last two days, moved out of
-- report_rollups by the hourly housekeeping job (Store::compact_report): click
-- batches write report_rollups (hour-first), a partner's report over a year reads
-- this table's partner-first key. Reports sum both tables. Kept in lockstep with
-- ../sqlite/0005_report_history.sql.
create table report_history (
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
);
-- The program-wide report.
create index report_history_hour on report_history (hour);
