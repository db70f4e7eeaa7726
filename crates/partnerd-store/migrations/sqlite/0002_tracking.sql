-- Affiliate links, clicks and sign-ups (R-AFF-1..7, R-REP-1..2). Kept in lockstep with
-- ../postgres/0002_tracking.sql.

-- R-AFF-2: a saved link with its offer and landing page.
create table campaigns (
    id integer primary key,
    partner_id integer not null references partners (id),
    name text not null,
    -- R-AFF-5: utm_campaign, from the name and the dynamic parameters.
    slug text not null,
    trial_days integer,
    discount_percent integer,
    -- R-AFF-5: the default utm_term.
    custom text,
    -- Null: the program's main page.
    landing_url text,
    created_at integer not null,
    unique (partner_id, slug)
) strict;

-- One row per click. id is time-ordered (milliseconds in the high bits), so inserts
-- append to the primary key instead of landing at random places in it.
create table clicks (
    id integer primary key,
    partner_id integer not null references partners (id),
    -- Null: the default link.
    campaign_id integer references campaigns (id),
    at integer not null,
    utm_term text,
    sub1 text,
    sub2 text,
    sub3 text,
    sub4 text,
    sub5 text,
    -- The referring site's host only: the full URL may carry someone's personal data.
    referrer_host text,
    agent text not null check (agent in ('browser', 'bot')),
    -- Keyed daily hashes: of the network, and of the network with the user agent
    -- (the visitor). Never the address.
    network text not null,
    visitor text not null,
    -- The partner was signed in to partnerd in the browser that clicked (R-AFF-7).
    own_session integer not null default 0
) strict;
create index clicks_partner_at on clicks (partner_id, at);

-- Counters the report reads instead of scanning clicks, kept in the same transactions
-- as the rows they count. Keyed hour-first (UTC hours since the epoch), so a range
-- is one index range and a partner's time zone is exact to the hour.
create table report_rollups (
    hour integer not null,
    partner_id integer not null,
    -- 0: the default link.
    campaign_id integer not null,
    utm_term text not null,
    clicks integer not null default 0,
    bot_clicks integer not null default 0,
    unique_visitors integer not null default 0,
    signups integer not null default 0,
    primary key (hour, partner_id, campaign_id, utm_term)
) strict;
create index report_rollups_partner on report_rollups (partner_id, hour);

-- Who was already counted as a unique visitor on a day, per report row.
create table report_visitors (
    day integer not null,
    partner_id integer not null,
    campaign_id integer not null,
    utm_term text not null,
    visitor text not null,
    primary key (day, partner_id, campaign_id, utm_term, visitor)
) strict;

-- Sign-ups reported by the vendor (R-AFF-4), one per customer, whether credited or not.
create table signups (
    id integer primary key,
    customer_id text not null unique,
    -- The credited partner; null when not credited.
    partner_id integer references partners (id),
    -- The partner the referral named, credited or not (self-referrals are recorded).
    referred_partner_id integer references partners (id),
    campaign_id integer references campaigns (id),
    click_id integer,
    utm_campaign text,
    utm_term text,
    trial_days integer,
    discount_percent integer,
    reason text not null,
    -- R-AFF-7: credited but shares the partner's network or device; held for review.
    review integer not null default 0,
    -- R-COM-1: the rate fixed when the customer was credited.
    commission_rate integer,
    created_at integer not null
) strict;
create index signups_partner on signups (partner_id, created_at);

-- The networks partners sign in from (keyed daily hash), to spot self-referrals
-- that share the partner's network (R-AFF-7).
alter table sessions add column network text;
