/*-------------------------------------------------------------------------
 *
 * src/monitor.c
 *	  The permission cache's statistics, for monitoring: this backend's
 *	  (um_cache_stats), every backend's (um_cache_stats_all), and
 *	  um_cache_reset() to empty this backend's cache.
 *
 * The figures are the cache's (cache.c keeps its counters and hands out a
 * copy through um_cache_get_stats); everything that shows or publishes
 * them is here.
 *
 * um_cache_stats() shows the calling backend's cache.  To see every
 * backend's, the figures must be in shared memory, which an extension can
 * only reserve when it is loaded at server start: with um in
 * shared_preload_libraries, each backend publishes its statistics into a
 * slot of its own (indexed by its PGPROC number) at the end of every
 * transaction that changed them, and um_cache_stats_all() reads every slot.
 * Without it, um_cache_stats_all() shows the calling backend only (um keeps
 * working exactly the same; only the view is narrower).
 *
 * A slot has one writer, its backend, and is read without locks: the writer
 * makes a change counter odd while it writes and even again afterwards (as
 * PostgreSQL's own backend status array does), and a reader retries until it
 * sees the same even value before and after copying.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/twophase.h"
#include "access/xact.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "um.h"

PG_FUNCTION_INFO_V1(um_cache_stats);
PG_FUNCTION_INFO_V1(um_cache_stats_all);
PG_FUNCTION_INFO_V1(um_cache_reset);

typedef struct UmMonitorSlot
{
	pg_atomic_uint32 changecount;	/* odd while the owner writes */
	int			pid;			/* 0: free */
	Oid			dbid;
	TimestampTz published_at;
	UmCacheStats stats;
} UmMonitorSlot;

static UmMonitorSlot *slots = NULL;
static int	nslots = 0;
static bool exit_registered = false;
static bool exiting = false;
static uint64 published_activity = 0;	/* um_cache_activity() at the last publish */

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static int
slot_count(void)
{
	return MaxBackends + NUM_AUXILIARY_PROCS + max_prepared_xacts;
}

static Size
monitor_shmem_size(void)
{
	return mul_size(slot_count(), sizeof(UmMonitorSlot));
}

static void
monitor_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(monitor_shmem_size());
}

static void
monitor_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	slots = ShmemInitStruct("um backend cache statistics", monitor_shmem_size(), &found);
	nslots = slot_count();
	if (!found)
	{
		int			i;

		memset(slots, 0, monitor_shmem_size());
		for (i = 0; i < nslots; i++)
			pg_atomic_init_u32(&slots[i].changecount, 0);
	}
	LWLockRelease(AddinShmemInitLock);
}

/* this process's slot, or NULL */
static UmMonitorSlot *
my_slot(void)
{
	int			n;

	if (slots == NULL || MyProc == NULL)
		return NULL;
#if PG_VERSION_NUM >= 170000
	n = MyProcNumber;
#else
	n = MyProc->pgprocno;
#endif
	if (n < 0 || n >= nslots)
		return NULL;
	return &slots[n];
}

static void
slot_begin_write(UmMonitorSlot *slot)
{
	pg_atomic_fetch_add_u32(&slot->changecount, 1);
	pg_write_barrier();
}

static void
slot_end_write(UmMonitorSlot *slot)
{
	pg_write_barrier();
	pg_atomic_fetch_add_u32(&slot->changecount, 1);
}

/*
 * on_shmem_exit: runs after the backend's last transaction was ended
 * (ShutdownPostgres is a before_shmem_exit callback), so nothing publishes
 * again; shared memory and MyProc are still there.
 */
static void
monitor_exit(int code, Datum arg)
{
	UmMonitorSlot *slot = my_slot();

	(void) code;
	(void) arg;
	exiting = true;
	if (slot == NULL)
		return;
	slot_begin_write(slot);
	slot->pid = 0;
	slot_end_write(slot);
}

/*
 * Publish this backend's statistics if its cache was used since the last
 * time (a backend that never used it publishes nothing).  The counters are
 * compared first; the figures, whose memory total walks the cache's
 * memory contexts, are only gathered when they changed.
 */
static void
monitor_publish(void)
{
	UmMonitorSlot *slot;
	UmCacheStats s;
	uint64		activity;
	TimestampTz now;

	if (exiting || slots == NULL)
		return;
	activity = um_cache_activity();
	if (activity == published_activity)
		return;
	slot = my_slot();
	if (slot == NULL)
		return;
	if (!exit_registered)
	{
		on_shmem_exit(monitor_exit, (Datum) 0);
		exit_registered = true;
	}
	um_cache_get_stats(&s);
	now = GetCurrentTimestamp();
	slot_begin_write(slot);
	slot->pid = MyProcPid;
	slot->dbid = MyDatabaseId;
	slot->published_at = now;
	slot->stats = s;
	slot_end_write(slot);
	published_activity = activity;
}

static void
monitor_xact_callback(XactEvent event, void *arg)
{
	(void) arg;
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PREPARE || event == XACT_EVENT_PARALLEL_COMMIT ||
		event == XACT_EVENT_PARALLEL_ABORT)
		monitor_publish();
}

void
um_monitor_init(void)
{
	if (process_shared_preload_libraries_in_progress)
	{
		/* PostgreSQL 15 and later (MaxBackends is known when the request runs) */
		prev_shmem_request_hook = shmem_request_hook;
		shmem_request_hook = monitor_shmem_request;
		prev_shmem_startup_hook = shmem_startup_hook;
		shmem_startup_hook = monitor_shmem_startup;
	}
	RegisterXactCallback(monitor_xact_callback, NULL);
}

/* ---- the SQL functions */

/*
 * um_cache_stats(): this backend's cache: hits, misses, loader queries,
 * invalidations received, resets, evictions at the memory bound, retried
 * checks, memory, and entries.
 */
Datum
um_cache_stats(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	UmCacheStats s;
	Datum		values[14];
	bool		nulls[14];

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);
	if (tupdesc->natts != 14)
		elog(ERROR, "um_cache_stats: expected 14 columns");
	um_cache_get_stats(&s);
	memset(nulls, 0, sizeof(nulls));
	values[0] = Int64GetDatum(s.hits);
	values[1] = Int64GetDatum(s.misses);
	values[2] = Int64GetDatum(s.queries);
	values[3] = Int64GetDatum(s.invalidations);
	values[4] = Int64GetDatum(s.resets);
	values[5] = Int64GetDatum(s.evictions);
	values[6] = Int64GetDatum(s.retries);
	values[7] = Int64GetDatum(s.memory_bytes);
	values[8] = Int64GetDatum(um_cache_memory_limit());
	values[9] = Int64GetDatum(s.users);
	values[10] = Int64GetDatum(s.members);
	values[11] = Int64GetDatum(s.organizations);
	values[12] = Int64GetDatum(s.scope_memos);
	values[13] = Int64GetDatum(s.permissions);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* um_cache_reset(): empty this backend's cache (for measurements) */
Datum
um_cache_reset(PG_FUNCTION_ARGS)
{
	um_cache_reset_all();
	PG_RETURN_VOID();
}

static void
emit_row(ReturnSetInfo *rsinfo, int pid, Oid dbid, TimestampTz at, bool at_null,
		 const UmCacheStats *s, bool mine)
{
	Datum		values[13];
	bool		nulls[13];

	memset(nulls, 0, sizeof(nulls));
	values[0] = Int32GetDatum(pid);
	values[1] = ObjectIdGetDatum(dbid);
	values[2] = BoolGetDatum(mine);
	values[3] = TimestampTzGetDatum(at);
	nulls[3] = at_null;
	values[4] = Int64GetDatum(s->hits);
	values[5] = Int64GetDatum(s->misses);
	values[6] = Int64GetDatum(s->queries);
	values[7] = Int64GetDatum(s->invalidations);
	values[8] = Int64GetDatum(s->resets);
	values[9] = Int64GetDatum(s->evictions);
	values[10] = Int64GetDatum(s->memory_bytes);
	values[11] = Int64GetDatum(s->users + s->members + s->organizations + s->scope_memos);
	values[12] = Int64GetDatum(um_cache_memory_limit());
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/*
 * um_cache_stats_all(): one row per backend whose cache has been used: the
 * calling backend's live figures, and the others' as of the end of their
 * last transaction that changed them (all of them only with um in
 * shared_preload_libraries).
 */
Datum
um_cache_stats_all(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	UmCacheStats mine;
	int			i;

#if PG_VERSION_NUM >= 160000
	InitMaterializedSRF(fcinfo, 0);
#else
	SetSingleFuncCall(fcinfo, 0);
#endif

	um_cache_get_stats(&mine);
	emit_row(rsinfo, MyProcPid, MyDatabaseId, 0, true, &mine, true);

	for (i = 0; slots != NULL && i < nslots; i++)
	{
		UmMonitorSlot copy;
		int			tries;

		for (tries = 0; tries < 1000; tries++)
		{
			uint32		before = pg_atomic_read_u32(&slots[i].changecount);

			pg_read_barrier();
			memcpy(&copy, &slots[i], sizeof(copy));
			pg_read_barrier();
			if ((before & 1) == 0 && before == pg_atomic_read_u32(&slots[i].changecount))
				break;
			CHECK_FOR_INTERRUPTS();
		}
		if (tries == 1000 || copy.pid == 0 || copy.pid == MyProcPid)
			continue;
		emit_row(rsinfo, copy.pid, copy.dbid, copy.published_at, false, &copy.stats, false);
	}
	return (Datum) 0;
}
