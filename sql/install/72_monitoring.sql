-- Monitoring: every backend's permission cache (src/monitor.c).
--
-- With um in shared_preload_libraries each backend publishes its cache
-- statistics at the end of every transaction that changed them; without it
-- only the calling backend's are visible.  Monitoring roles get them through
-- pg_read_all_stats (pg_monitor includes it).

CREATE FUNCTION @extschema@.um_cache_stats_all(
  OUT pid integer, OUT database oid, OUT is_mine boolean, OUT published_at timestamptz,
  OUT hits bigint, OUT misses bigint, OUT queries bigint, OUT invalidations bigint,
  OUT resets bigint, OUT evictions bigint, OUT memory_bytes bigint, OUT entries bigint,
  OUT memory_limit_bytes bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'um_cache_stats_all'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION @extschema@.um_cache_stats_all() IS
  'every backend''s permission cache: this backend live, the others as of their last transaction (all of them when um is in shared_preload_libraries)';
REVOKE EXECUTE ON FUNCTION @extschema@.um_cache_stats_all() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.um_cache_stats_all() TO pg_read_all_stats;

CREATE VIEW um.cache_activity AS
SELECT s.pid, d.datname AS database, a.usename AS role, a.application_name, s.is_mine,
       s.published_at, s.hits, s.misses,
       round(s.hits::numeric / nullif(s.hits + s.misses, 0), 4) AS hit_ratio,
       s.queries, s.invalidations, s.resets, s.evictions, s.entries,
       s.memory_bytes, s.memory_limit_bytes
  FROM @extschema@.um_cache_stats_all() s
  LEFT JOIN pg_catalog.pg_database d ON d.oid = s.database
  LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = s.pid;
COMMENT ON VIEW um.cache_activity IS
  'each backend''s um permission cache: hits, misses, loader queries, invalidations, memory (all backends when um is preloaded)';
COMMENT ON COLUMN um.cache_activity.pid IS 'the backend''s process id';
COMMENT ON COLUMN um.cache_activity.database IS 'the backend''s database';
COMMENT ON COLUMN um.cache_activity.role IS 'the database role the backend logged in as';
COMMENT ON COLUMN um.cache_activity.application_name IS 'the backend''s application_name';
COMMENT ON COLUMN um.cache_activity.is_mine IS 'the backend running this query (its figures are live)';
COMMENT ON COLUMN um.cache_activity.published_at IS 'when the backend last published its figures (the end of a transaction that changed them)';
COMMENT ON COLUMN um.cache_activity.hits IS 'permission checks answered from the cache';
COMMENT ON COLUMN um.cache_activity.misses IS 'permission checks that had to load from the tables first';
COMMENT ON COLUMN um.cache_activity.hit_ratio IS 'hits / (hits + misses), rounded to 4 places; NULL before the first check';
COMMENT ON COLUMN um.cache_activity.queries IS 'queries the cache''s loader ran against um''s tables';
COMMENT ON COLUMN um.cache_activity.invalidations IS 'invalidations received: a committed change to a table the answers depend on';
COMMENT ON COLUMN um.cache_activity.resets IS 'times the cache was emptied whole and started afresh (a change to the permission catalog, a TRUNCATE, um_cache_reset); other changes drop only the entries they touch';
COMMENT ON COLUMN um.cache_activity.evictions IS 'entries dropped for growing past um.cache_memory_limit, least recently used first';
COMMENT ON COLUMN um.cache_activity.entries IS 'users, memberships, organizations and scope answers held now';
COMMENT ON COLUMN um.cache_activity.memory_bytes IS 'memory the cache uses now';
COMMENT ON COLUMN um.cache_activity.memory_limit_bytes IS 'the most it may use (um.cache_memory_limit)';
GRANT SELECT ON um.cache_activity TO pg_read_all_stats;
