/*-------------------------------------------------------------------------
 *
 * src/um.c
 *	  Entry point of the um extension: module magic and _PG_init.
 *
 * um keeps its state per backend, so it works when loaded on first use by
 * CREATE EXTENSION or any um function.  Loaded through
 * shared_preload_libraries it also reserves shared memory: the cache
 * statistics every backend publishes (monitor.c) and the pool of audit
 * writers (audit_writer.c); and only then is the log hook in place for every
 * backend from its start (session.c).  _PG_init asks each module to define
 * its settings and install its callbacks and hooks, then reserves the "um."
 * prefix so that a misspelt um setting is an error rather than a silent
 * placeholder.
 *
 * um needs PostgreSQL 15 or later (shmem_request_hook,
 * MarkGUCPrefixReserved); newer versions are handled where their APIs
 * differ (PG_VERSION_NUM tests in the modules).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/guc.h"

#include "um.h"

#if PG_VERSION_NUM < 150000
#error "um needs PostgreSQL 15 or later"
#endif

PG_MODULE_MAGIC;

void		_PG_init(void);

/*
 * _PG_init: called once per backend when the library is loaded.
 */
void
_PG_init(void)
{
	um_scan_init();
	um_cache_init();
	um_guards_init();
	um_planner_init();
	um_identity_init();
	um_session_init();
	um_login_init();
	um_audit_writer_init();
	um_monitor_init();
	MarkGUCPrefixReserved("um");
}
