-- Who has been counted as a unique visitor of a day, as a log the click writer
-- appends to, instead of a b-tree keyed by the visitors themselves. The keys are
-- hashes, so each new visitor of a batch landed on a page of its own in the old
-- table: once a day held some 100 k visitors, a batch of 4096 clicks dirtied
-- ~1,700 pages of it (7 MB of WAL, against 0.8 MB for the clicks), and the ingest
-- into 10 M clicks fell from 151 k to 105 k clicks/s as the day filled up. Now a
-- batch appends one row per UTC day holding its new visitors' keys; the click
-- writer keeps the keys of the days it counts on (its batches' newest and the one
-- before) in memory and reads the rows other connections appended since it last
-- looked (ids only grow: AUTOINCREMENT) at the start of each batch, inside its
-- write lock (see clicks.rs, `SeenVisitors`).
-- PostgreSQL keeps its table: several nodes write there, and its sequences do not
-- commit in order, so it looks each visitor up instead.
create table report_visitors_log (
    id integer primary key autoincrement,
    day integer not null,
    -- The visitor keys (`clicks::visitor_key`), 8 bytes each, big-endian.
    keys blob not null check (length(keys) > 0 and length(keys) % 8 = 0)
) strict;
-- The housekeeping's delete of old days, and the click writer reading a day whole
-- (the first batch of a day, after a start, with a clock set back).
create index report_visitors_log_day on report_visitors_log (day);

-- The visitors already counted, a row per day, so none is counted twice (printf's
-- %x writes a negative key as its 64 bits: -1 is ffffffffffffffff).
insert into report_visitors_log (day, keys)
    select day, unhex(group_concat(printf('%016x', visitor_key), ''))
    from report_visitors group by day order by day;
drop table report_visitors;
alter table report_visitors_log rename to report_visitors;
