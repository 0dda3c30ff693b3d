/*-------------------------------------------------------------------------
 *
 * src/um.c
 *	  Entry point of the um extension: module magic and _PG_init.
 *
 * um keeps its state per backend and needs no shared memory, so it works
 * when loaded on first use by CREATE EXTENSION or any um function, without
 * shared_preload_libraries.  Loaded at server start, it also reserves the
 * shared memory in which every backend publishes its cache statistics
 * (monitor.c).  _PG_init defines the settings, registers the cache's
 * invalidation and transaction callbacks and the identity's transaction
 * callback, and reserves the "um." prefix so that a misspelt um setting is
 * an error rather than a silent placeholder.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/guc.h"

#include "um.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/*
 * _PG_init: called once per backend when the library is loaded.
 */
void
_PG_init(void)
{
	um_cache_init();
	um_identity_init();
	um_session_init();
	um_autonomous_init();
	um_monitor_init();
#if PG_VERSION_NUM >= 150000
	MarkGUCPrefixReserved("um");
#else
	EmitWarningsOnPlaceholders("um");
#endif
}
