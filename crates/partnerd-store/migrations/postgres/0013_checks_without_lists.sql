-- Nothing to change on PostgreSQL: SQLite's 0013 rewrites the checks of the tables
-- every billing event writes to, because SQLite checks `x in ('a', 'b', 'c', …)` by
-- building a temporary b-tree on every row; PostgreSQL checks such a list directly.
-- Kept so the two engines' migrations stay in lockstep.
select 1;
