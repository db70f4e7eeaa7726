-- Marketing resources (R-RES-1): banners, logos and widgets the vendor uploads, kept in
-- the database so every node serves them. Kept in lockstep with ../postgres/0003_resources.sql.
create table resources (
    id integer primary key,
    kind text not null check (kind in ('banner', 'logo', 'widget')),
    title text not null,
    -- Images: the file's bytes and type; widgets: null.
    content_type text,
    data blob,
    file_name text,
    width integer,
    height integer,
    -- Widgets: HTML with {{link}} where the partner's link goes.
    html text,
    created_at integer not null,
    archived_at integer,
    check ((kind = 'widget') = (html is not null))
) strict;

-- R-RES-1: downloads counted, per partner.
create table resource_downloads (
    resource_id integer not null references resources (id),
    partner_id integer not null references partners (id),
    at integer not null
) strict;
create index resource_downloads_resource on resource_downloads (resource_id);
