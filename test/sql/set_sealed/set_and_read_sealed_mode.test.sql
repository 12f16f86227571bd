-- set_sealed / is_sealed: the sealed flag lives in jobengine.settings; set_sealed(null) raises
-- JE009; a missing settings row reads as unsealed.
begin;
select plan(8);

select is(jobengine.is_sealed(), false, 'a fresh database is not sealed');
select lives_ok($$ select jobengine.set_sealed(true) $$, 'set_sealed(true)');
select is(jobengine.is_sealed(), true, 'is_sealed() is true');
select is((select value from jobengine.settings where key = 'sealed'), 'true'::jsonb, 'settings.sealed is true');
select lives_ok($$ select jobengine.set_sealed(true) $$, 'sealing twice is harmless');
select throws_ok($$ select jobengine.set_sealed(null) $$, 'JE009', null, 'set_sealed(null) raises JE009');
do $$ begin perform jobengine.set_sealed(false); end $$;
select is(jobengine.is_sealed(), false, 'set_sealed(false) unseals');
delete from jobengine.settings where key = 'sealed';
select is(jobengine.is_sealed(), false, 'without a settings row the engine is not sealed');

select * from finish();
rollback;
