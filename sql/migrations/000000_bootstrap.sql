-- The migrations' own bookkeeping table, first, so that sql/ also applies with plain psql:
-- every file of sql/migrations/ in name order, then every file of sql/repeatable/ in name
-- order (000003 clears the repeatable files' records). `deno task migrate` runs this same text
-- before it reads what is applied (src/db/migrate.ts), then records it like any other file.
create schema if not exists jobengine;
create table if not exists jobengine.schema_migrations (
  version text primary key,
  name text not null,
  kind text not null check (kind in ('versioned', 'repeatable')),
  checksum text not null,
  applied_at timestamptz not null default now()
);
