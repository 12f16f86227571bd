-- create_workflow's plain-job path draws its ids once per statement: each id is a UUID version 7
-- (millisecond time prefix, version 7, variant 10), distinct, in input order, and two
-- workflows created one after the other do not share ids.
begin;
\ir ../_helpers.psql
select plan(6);

create temp table wf as
  select w.id, row_number() over () as ord
    from jobengine.create_workflow(
      (select jsonb_agg(jsonb_build_object('ref', 'r' || i, 'type', 'bulk.ids')) from generate_series(1, 2000) i)) w;
create temp table wf2 as
  select w.id from jobengine.create_workflow('[{"ref": "a", "type": "bulk.ids"}, {"ref": "b", "type": "bulk.ids"}]') w;

select is((select count(distinct id) from wf), 2000::bigint, '2,000 distinct ids');
select is(
  (select count(*) from wf where substr(id::text, 15, 1) = '7' and substr(id::text, 20, 1) in ('8', '9', 'a', 'b')),
  2000::bigint, 'every id is version 7, variant 10');
select ok(
  (select bool_and(abs(('x' || lpad(replace(substr(id::text, 1, 13), '-', ''), 16, '0'))::bit(64)::bigint
                       - floor(extract(epoch from clock_timestamp()) * 1000)::bigint) < 60000) from wf),
  'the first 48 bits are the Unix time in milliseconds');
select is(
  (select array_agg(id order by ord) from wf), (select array_agg(id order by id) from wf),
  'ids increase in input order');
select is((select count(*) from wf2 join wf using (id)), 0::bigint, 'a second workflow gets other ids');
select is(
  (select count(*) from jobengine.jobs j join wf using (id) where j.status = 'pending' and j.type = 'bulk.ids'),
  2000::bigint, 'the rows carry those ids');

select * from finish();
rollback;
