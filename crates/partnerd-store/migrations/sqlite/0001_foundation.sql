-- partnerd foundation schema (SQLite). Kept in lockstep with ../postgres/0001_foundation.sql:
-- same tables, same columns, same meaning. Timestamps are integer milliseconds since the
-- Unix epoch (UTC) on both engines, so every shared statement compares them the same way.

-- The program's settings (PROGRAM.md numbers and identity) as one JSON document; id is
-- always 1. Stored in the database so every node sees the same program.
create table program_settings (
    id integer primary key check (id = 1),
    document text not null,
    updated_at integer not null
) strict;

-- Versioned Terms and Conditions (R-ACC-5); the highest version is current.
create table terms_versions (
    id integer primary key,
    version integer not null unique,
    body text not null,
    created_at integer not null
) strict;

-- The vendor's staff: admins and affiliate managers (R-ACC-2).
create table staff (
    id integer primary key,
    email text not null unique,
    name text not null,
    role text not null check (role in ('admin', 'manager')),
    password_hash text not null,
    created_at integer not null
) strict;

-- Partners (R-ACC-1). Personal columns are nulled on removal (R-ACC-3); the row stays
-- so money records keep their owner. email is null once removed, so the address can sign
-- up again.
create table partners (
    id integer primary key,
    -- R-AFF-1: the unguessable id in /r/{public_id} and the API.
    public_id text not null unique,
    email text unique,
    name text not null,
    company text,
    website text,
    password_hash text,
    manager_id integer references staff (id),
    status text not null check (status in ('active', 'removed')),
    -- R-ACC-5: the Terms version the partner last accepted.
    terms_version integer not null,
    time_zone text not null default 'UTC',
    created_at integer not null,
    removed_at integer,
    removal_kind text check (removal_kind in ('requested', 'violation')),
    removal_reason text
) strict;
create index partners_manager on partners (manager_id);

-- Server-side sessions. Only the SHA-256 of the cookie's token is stored, so a copy of
-- the database cannot be used to sign in.
create table sessions (
    id integer primary key,
    token_hash text not null unique,
    subject_kind text not null check (subject_kind in ('partner', 'staff')),
    subject_id integer not null,
    csrf_token text not null,
    created_at integer not null,
    expires_at integer not null
) strict;
create index sessions_subject on sessions (subject_kind, subject_id);

-- Password reset links: single use, short-lived, stored hashed.
create table password_resets (
    id integer primary key,
    token_hash text not null unique,
    subject_kind text not null check (subject_kind in ('partner', 'staff')),
    subject_id integer not null,
    created_at integer not null,
    expires_at integer not null,
    used_at integer
) strict;

-- Keys of the integration API, stored hashed; looked up per request so a new key works
-- at once and a revoked one stops at once.
create table api_keys (
    id integer primary key,
    name text not null,
    key_hash text not null unique,
    prefix text not null,
    created_at integer not null,
    revoked_at integer
) strict;

-- Append-only audit log (R-ACC-3, settings changes, staff actions). Nothing updates or
-- deletes these rows.
create table audit_log (
    id integer primary key,
    at integer not null,
    actor text not null,
    action text not null,
    object text not null,
    before text,
    after text
) strict;
create index audit_log_at on audit_log (at);

-- Emails, written in the same transaction as the change that needs them. With SMTP set
-- up a job sends each; without, they stay 'kept' and admins read them in the console.
create table outbox (
    id integer primary key,
    to_address text not null,
    subject text not null,
    body text not null,
    status text not null check (status in ('pending', 'sent', 'failed', 'kept')),
    attempts integer not null default 0,
    last_error text,
    created_at integer not null,
    sent_at integer,
    -- The partner the email is about, so removal (R-ACC-3) can erase it too.
    partner_id integer references partners (id)
) strict;

-- Durable background jobs. A worker claims a job by setting locked_by/locked_until; a job
-- whose lease ran out (its worker died) is claimed again.
create table jobs (
    id integer primary key,
    kind text not null,
    payload text not null,
    status text not null check (status in ('queued', 'running', 'done', 'failed')),
    run_at integer not null,
    attempts integer not null default 0,
    max_attempts integer not null,
    locked_by text,
    locked_until integer,
    last_error text,
    created_at integer not null,
    finished_at integer
) strict;
create index jobs_due on jobs (status, run_at);

-- Periodic jobs: whoever advances next_run_at first enqueues the run, so each period runs
-- once however many nodes there are.
create table job_schedules (
    name text primary key,
    kind text not null,
    interval_seconds integer not null check (interval_seconds > 0),
    next_run_at integer not null
) strict;

-- Throttling of log-in, sign-up and reset attempts. key is 'account:<email hash>' or
-- 'network:<keyed ip hash>': never a raw address.
create table throttle (
    key text primary key,
    window_start integer not null,
    hits integer not null
) strict;

-- Keys every node needs (token signing, IP hashing), generated once.
create table secrets (
    name text primary key,
    value text not null
) strict;
