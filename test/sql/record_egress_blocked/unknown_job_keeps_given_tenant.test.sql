-- record_egress_blocked with a job id that does not exist must not silently drop the tenant the
-- caller gave: `select ... into v_tenant` from no row sets v_tenant to null, and the event lands in
-- tenant "default". Either refuse the unknown job (JE004) or keep p_tenant.
begin;
select plan(1);

create function pg_temp.outcome() returns text language plpgsql as $$
begin
  return (jobengine.record_egress_blocked('example.com', 443, 'fetch', gen_random_uuid(), 'acme')).tenant_id;
exception when others then
  return sqlstate;
end $$;

select is(
  (select case when o in ('acme', 'JE004') then 'acme or JE004' else 'tenant ' || o end from pg_temp.outcome() o),
  'acme or JE004',
  'an unknown job id with p_tenant acme: the event keeps tenant acme (or JE004), not "default"');

select * from finish();
rollback;
