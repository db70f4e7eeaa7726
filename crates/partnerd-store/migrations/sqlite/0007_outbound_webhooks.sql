-- Outbound webhooks (issue 4 part 6; DESIGN.md "Integrations, real ones"): endpoints the
-- vendor subscribes in the console, the events the ledger's bookings become, one delivery
-- per event and endpoint, and every attempt. Kept in lockstep with
-- ../postgres/0007_outbound_webhooks.sql. Times are milliseconds UTC.
--
-- How events are made: a job reads ledger_transfers after webhook_cursor, turns each
-- booking into an event, writes a delivery for every enabled endpoint subscribed to its
-- type and moves the cursor, in one transaction: a crash repeats nothing and loses
-- nothing, and the money bookings themselves are not touched.

-- Where the vendor wants events. The signing secret is stored as given (whsec_…): the
-- admin must be able to read it again to set up the receiver, so it cannot be a hash. It
-- is never logged and never written to the audit log.
create table webhook_endpoints (
    id integer primary key,
    -- Checked with outbound::check_url when saved, resolved and checked again before
    -- every delivery (DNS may change), and connected to only at the checked addresses.
    url text not null,
    -- The admin's note on what the endpoint is for.
    description text not null default '',
    -- The Standard Webhooks secret, whsec_{base64}.
    secret text not null,
    -- The secret before the last rotation: deliveries carry a signature with it too
    -- until previous_secret_until, so the receiver can switch over without losing any.
    previous_secret text,
    previous_secret_until integer,
    -- The event types the endpoint receives, separated by single spaces.
    event_types text not null check (length(event_types) > 0),
    -- 1: an admin allowed private and loopback targets for this endpoint (SSRF guard).
    allow_private integer not null check (allow_private in (0, 1)),
    -- 0: nothing is sent (an admin's choice, or the receiver answered 410 Gone).
    enabled integer not null check (enabled in (0, 1)),
    -- Why it is disabled; null while enabled.
    disabled_reason text,
    disabled_at integer,
    created_at integer not null,
    updated_at integer not null,
    check ((enabled = 1) = (disabled_reason is null))
) strict;

-- One event per ledger booking: source is the booking's key (com:…, wd:…) and unique, so
-- a booking read twice never becomes two events; a console test event has test:{id}.
create table webhook_events (
    id integer primary key,
    -- The Standard Webhooks message id (webhook-id): the same on every retry and for
    -- every endpoint, so receivers deduplicate on it.
    message_id text not null unique,
    -- commission.earned, payout.paid … (partnerd_app::webhooks::EVENT_TYPES).
    event_type text not null,
    source text not null unique,
    -- The JSON body, exactly as it is sent and signed.
    payload text not null,
    created_at integer not null
) strict;

-- One event to one endpoint, until it is delivered (a 2xx) or has failed for good.
create table webhook_deliveries (
    id integer primary key,
    event_id integer not null references webhook_events (id),
    endpoint_id integer not null references webhook_endpoints (id),
    status text not null check (status in ('pending', 'delivered', 'failed')),
    -- Attempts since the delivery was made or resent: picks the next backoff.
    attempts integer not null default 0 check (attempts >= 0),
    -- When a pending delivery is due.
    next_attempt_at integer not null,
    -- A worker that claimed the delivery holds it until then, so two nodes never send
    -- it at once; a worker that died lets it go when this passes.
    locked_until integer,
    -- The last attempt's HTTP status (null: no answer) and short error.
    last_status integer,
    last_error text,
    delivered_at integer,
    created_at integer not null,
    updated_at integer not null,
    unique (event_id, endpoint_id)
) strict;
create index webhook_deliveries_due on webhook_deliveries (status, next_attempt_at);
create index webhook_deliveries_endpoint on webhook_deliveries (endpoint_id, id);

-- Every attempt of a delivery, for the console: what the receiver said and how long it took.
create table webhook_attempts (
    id integer primary key,
    delivery_id integer not null references webhook_deliveries (id),
    attempted_at integer not null,
    -- The HTTP status; null when there was no answer (refused target, timeout, …).
    status_code integer,
    duration_ms integer not null check (duration_ms >= 0),
    -- At most 200 characters; never a secret or a header.
    error text
) strict;
create index webhook_attempts_delivery on webhook_attempts (delivery_id, id);

-- How far the events job has read the ledger: the last ledger_transfers.id turned into
-- events. One row. It starts at the ledger's end: bookings made before this feature
-- existed are not announced.
create table webhook_cursor (
    id integer primary key check (id = 1),
    last_transfer_id integer not null check (last_transfer_id >= 0),
    updated_at integer not null
) strict;
insert into webhook_cursor (id, last_transfer_id, updated_at)
select 1, coalesce(max(id), 0), 0 from ledger_transfers;
