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
GRANT SELECT ON um.cache_activity TO pg_read_all_stats;
