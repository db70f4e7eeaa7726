-- Cheaper click batches (see partnerd-store/src/clicks.rs). Kept in lockstep with
-- ../postgres/0004_click_writes.sql.

-- Nothing reads clicks by partner: the report reads report_rollups, attribution
-- reads one click by its id. The (partner_id, at) index made every click of a
-- batch dirty a page at a random place in it.
drop index clicks_partner_at;

-- A visitor of a day as one integer (partner, campaign, term and visitor hashed
-- together): small rows, so a batch of new visitors dirties few pages. Only today's
-- and yesterday's rows are kept (housekeeping). The old rows cannot be converted;
-- a visitor already counted today before the upgrade may count once more.
drop table report_visitors;
create table report_visitors (
    day integer not null,
    visitor_key integer not null,
    primary key (day, visitor_key)
) strict, without rowid;
