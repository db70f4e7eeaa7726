-- Nothing to change on PostgreSQL: SQLite's 0014 turns report_visitors into a log
-- its one click writer appends to and keeps in memory; here several nodes write
-- clicks and sequences do not commit in order, so each visitor is still looked up
-- in the table keyed by (day, visitor_key). Kept so the two engines' migrations
-- stay in lockstep.
select 1;
