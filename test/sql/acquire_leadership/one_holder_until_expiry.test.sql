-- acquire_leadership: one holder per name; the holder renews; another takes over only once the
-- lease expired; release_leadership gives it up (holder only). JE009 for a bad TTL.
begin;
select plan(10);

select is(jobengine.acquire_leadership('scheduler', 'a', 30), true, 'a takes the free lease');
select is(jobengine.acquire_leadership('scheduler', 'b', 30), false, 'b cannot take it while a holds it');
create temp table first as select * from jobengine.leaders where name = 'scheduler';
select is(jobengine.acquire_leadership('scheduler', 'a', 30), true, 'a renews');
select ok(
  (select l.acquired_at = f.acquired_at and l.expires_at >= f.expires_at from jobengine.leaders l, first f where l.name = 'scheduler'),
  'renewal keeps acquired_at and moves expires_at on'
);
select is(jobengine.acquire_leadership('other', 'b', 30), true, 'names are independent');

update jobengine.leaders set expires_at = clock_timestamp() - interval '1 second' where name = 'scheduler';
select is(jobengine.acquire_leadership('scheduler', 'b', 30), true, 'after expiry b takes over');
select is((select holder from jobengine.leaders where name = 'scheduler'), 'b', 'b is the holder');

do $$ begin perform jobengine.release_leadership('scheduler', 'a'); end $$;
select is((select holder from jobengine.leaders where name = 'scheduler'), 'b', 'a cannot release b''s lease');
do $$ begin perform jobengine.release_leadership('scheduler', 'b'); end $$;
select is(jobengine.acquire_leadership('scheduler', 'a', 30), true, 'released: a takes it at once');

select throws_ok($$ select jobengine.acquire_leadership('scheduler', 'a', 0) $$, 'JE009', null, 'a TTL of 0 raises JE009');

select * from finish();
rollback;
