/*-------------------------------------------------------------------------
 *
 * src/audit_writer.c
 *	  The audit writers: background workers that carry a job out of the
 *	  caller's transaction and commit it in one of their own.
 *
 * A refused call raises an error, and an error rolls back everything the
 * transaction wrote, so what a refusal must leave behind (its audit event,
 * a failed login's count) cannot be written by the caller.  It is handed to
 * a background worker instead, which commits it in a transaction of its
 * own while the caller waits, before the caller answers.  A job is one of
 * two kinds: an audit event (um_internal.audit_autonomous(), here), or a login
 * attempt, whose rules (counting, lockout) are login.c's; the worker runs
 * those through um_login_execute().
 *
 * Jobs fail closed.  If the worker cannot run (no free max_worker_processes
 * slot, a lock held past lock_timeout, a role that may not connect) the
 * caller gets UM069, so a refusal is never answered unrecorded (and a login
 * guess never uncounted).  The job lives in a pinned dynamic shared memory
 * segment, so a caller cancelled while it waits (statement_timeout,
 * pg_cancel_backend) cannot stop it: the worker still does it.
 *
 * The worker connects to the caller's database as the role that called
 * (inside um's SECURITY DEFINER functions: their owner, the extension's
 * owner), with search_path pinned and every name schema-qualified, and runs
 * fixed statements with the job's values as parameters.
 *
 * Where the workers come from.  Dynamic background workers share the
 * max_worker_processes slots with parallel queries, so one report with a
 * high max_parallel_workers_per_gather could take every slot and, with it,
 * every login (they fail closed).  With um in shared_preload_libraries,
 * um.audit_writers static workers (default 2) are registered at server
 * start: their slots are reserved for um and nothing else can take them.
 * Each waits for a job, connects to the job's database on its first one and
 * keeps serving jobs of that database and role (no process start, no
 * connection per login); asked for another database while idle, or idle
 * for 2 seconds, it exits and the postmaster starts it afresh, unconnected.  When every pooled
 * writer is busy the job goes to a dynamic worker as without preloading,
 * and failing that the caller waits for a pooled one, up to 5 seconds.
 * Without preloading only dynamic workers exist: when none can be started
 * the login (or refusal) fails with UM069, closed.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/timestamp.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "mb/pg_wchar.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "um.h"

PG_FUNCTION_INFO_V1(um_audit_autonomous);

PGDLLEXPORT void um_autonomous_main(Datum main_arg);
PGDLLEXPORT void um_writer_main(Datum main_arg);

/* um.audit_writers: static audit writers registered at server start */
static int	audit_writers = 2;

#define MAX_AUDIT_WRITERS	64
#define POOL_WAIT_MS		5000
#define WRITER_IDLE_MS		2000

/* One pooled writer, in shared memory; protected by the pool's mutex. */
typedef struct WriterSlot
{
	pid_t		pid;			/* 0: not running (starting, restarting) */
	Latch	   *latch;
	Oid			dbid;			/* connected to (InvalidOid: not yet) */
	Oid			roleid;
	bool		busy;			/* a job is assigned */
	bool		recycle;		/* asked to exit (for another database) */
	dsm_handle	job;
	Oid			job_db;			/* the job's database and user (0: none) */
	int64		job_user;
} WriterSlot;

typedef struct WriterPool
{
	slock_t		mutex;
	int			n;
	WriterSlot	slot[FLEXIBLE_ARRAY_MEMBER];
} WriterPool;

static WriterPool *pool = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/*
 * The job, in a dynamic shared memory segment both processes map.  What a
 * kind needs beyond an audit event's fields lives in data (for a login
 * attempt: login.c's LoginAttempt).
 */
struct UmJob
{
	/* filled in by the caller */
	UmJobKind	kind;
	dsm_handle	handle;			/* of the segment the job lives in */
	Oid			database_id;
	Oid			role_id;		/* the worker connects as this role */
	Oid			audit_role_id;	/* the role recorded as db_role */
	bool		has_actor;
	int64		actor_user_id;	/* the acting user, as the caller had it */
	int64		impersonator_user_id;	/* 0: not impersonating */
	bool		has_org;
	int64		org_id;
	bool		has_target;
	int64		target_id;		/* UM_JOB_LOGIN: the user, when known */
	char		action[NAMEDATALEN];
	char		outcome[NAMEDATALEN];
	char		target_type[NAMEDATALEN];
	char		details[UM_JOB_TEXT_MAX];	/* a JSON object */
	int			caller_procno;	/* whose latch to set when done */
	/* filled in by the worker */
	bool		connected;
	bool		done;
	char		error[UM_JOB_TEXT_MAX];
	/* the kind's own data, read and written by both (uint64: aligned for any field) */
	uint64		data[UM_JOB_DATA_SIZE / sizeof(uint64)];
};

/*
 * um_job_copy_text: a short field (action, outcome, target type, a reason)
 * into a job.  The writer never fails on a long input: whatever does not fit
 * is cut at a character boundary, so a refusal is still recorded.
 */
void
um_job_copy_text(const char *s, char *dst, size_t size)
{
	int			len = strlen(s);

	if (len >= (int) size)
		len = pg_mbcliplen(s, len, size - 1);
	memcpy(dst, s, len);
	dst[len] = '\0';
}

/*
 * copy_details: the details JSON object into the job.  One too long for the
 * job is replaced by an object that says so and keeps the start of the text
 * (as a JSON string), so the event is still written and still valid JSON.
 */
static void
copy_details(const char *s, char *dst, size_t size)
{
	StringInfoData buf;
	int			len = strlen(s);
	int			keep;
	char	   *start;

	if (len < (int) size)
	{
		memcpy(dst, s, len + 1);
		return;
	}
	/* an escaped character takes at most 6 bytes, and the wrapper < 64 */
	keep = pg_mbcliplen(s, len, (size - 64) / 6);
	start = pnstrdup(s, keep);
	initStringInfo(&buf);
	appendStringInfo(&buf, "{\"truncated\": true, \"bytes\": %d, \"start\": ", len);
	escape_json(&buf, start);
	appendStringInfoChar(&buf, '}');
	Assert(buf.len < (int) size);
	memcpy(dst, buf.data, buf.len + 1);
	pfree(start);
	pfree(buf.data);
}

/*
 * new_job: a zeroed job in a new segment, with the caller's identity.
 */
static UmJob *
new_job(dsm_segment **segp, UmJobKind kind)
{
	dsm_segment *seg = dsm_create(sizeof(UmJob), 0);
	UmJob	   *job = dsm_segment_address(seg);

	memset(job, 0, sizeof(UmJob));
	job->kind = kind;
	job->handle = dsm_segment_handle(seg);
	job->database_id = MyDatabaseId;
	job->role_id = GetUserId();
	job->audit_role_id = GetOuterUserId();
#if PG_VERSION_NUM >= 170000
	job->caller_procno = MyProcNumber;
#else
	job->caller_procno = MyProc->pgprocno;
#endif
	job->has_actor = um_identity_get(&job->actor_user_id);
	if (job->has_actor)
	{
		int64		real_id;

		(void) um_identity_real(&real_id);
		job->impersonator_user_id = (real_id != job->actor_user_id) ? real_id : 0;
	}
	*segp = seg;
	return job;
}

/* the job did not finish: say why (UM069) */
static void
job_failed(UmJob *job)
{
	char	   *role = GetUserNameFromId(job->role_id, true);

	ereport(ERROR,
			(errcode(ERRCODE_UM_AUDIT_UNAVAILABLE),
			 errmsg("could not record %s", job->action),
			 job->error[0] ? errdetail("%s", job->error)
			 : job->connected ? errdetail("The audit writer stopped before it finished.")
			 : errdetail("The audit writer could not connect as role \"%s\".", role ? role : "?"),
			 errhint("Retry; if it persists, see the server log.")));
}

/*
 * pool_claim: hand the job to an idle pooled writer (one connected to the
 * job's database as its role, else an unconnected one); returns its index,
 * or -1 (-2: a pooled writer already works for the job's user).  An idle
 * writer connected elsewhere is asked to make way.
 */
static int
pool_claim(dsm_segment *seg, UmJob *job, pid_t *pid)
{
	int			i,
				pick = -1;
	Latch	   *wake = NULL;

	SpinLockAcquire(&pool->mutex);
	/*
	 * One pooled writer per user at a time: attempts for one account whose
	 * row is held locked (each waits up to lock_timeout) cannot occupy the
	 * whole pool; the rest go to dynamic workers.
	 */
	if (job->has_target)
		for (i = 0; i < pool->n; i++)
			if (pool->slot[i].busy && pool->slot[i].job_db == job->database_id &&
				pool->slot[i].job_user == job->target_id)
			{
				SpinLockRelease(&pool->mutex);
				return -2;
			}
	for (i = 0; i < pool->n && pick < 0; i++)
	{
		WriterSlot *w = &pool->slot[i];

		if (w->pid != 0 && !w->busy && !w->recycle &&
			w->dbid == job->database_id && w->roleid == job->role_id)
			pick = i;
	}
	for (i = 0; i < pool->n && pick < 0; i++)
	{
		WriterSlot *w = &pool->slot[i];

		if (w->pid != 0 && !w->busy && !w->recycle && !OidIsValid(w->dbid))
			pick = i;
	}
	if (pick >= 0)
	{
		pool->slot[pick].busy = true;
		pool->slot[pick].job = dsm_segment_handle(seg);
		pool->slot[pick].job_db = job->database_id;
		pool->slot[pick].job_user = job->has_target ? job->target_id : 0;
		*pid = pool->slot[pick].pid;
		wake = pool->slot[pick].latch;
	}
	else
	{
		for (i = 0; i < pool->n; i++)
		{
			WriterSlot *w = &pool->slot[i];

			if (w->pid != 0 && !w->busy && !w->recycle)
			{
				w->recycle = true;
				wake = w->latch;
				break;
			}
		}
	}
	SpinLockRelease(&pool->mutex);
	if (wake)
		SetLatch(wake);
	return pick;
}

/* wait_pooled: until the pooled writer i (process pid) has done the job */
static void
wait_pooled(dsm_segment *seg, UmJob *job, int i, pid_t pid)
{
	for (;;)
	{
		bool		alive;

		if (job->done)
			return;
		SpinLockAcquire(&pool->mutex);
		alive = pool->slot[i].pid == pid && pool->slot[i].job == dsm_segment_handle(seg);
		SpinLockRelease(&pool->mutex);
		if (!alive)
		{
			pg_read_barrier();
			if (job->done)
				return;
			job_failed(job);
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 100, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

static bool run_dynamic(dsm_segment *seg, UmJob *job);

/*
 * run_job: have the job done by a pooled writer or a dynamic worker, and
 * wait for it.  The segment is pinned until the worker has mapped it, so
 * the job survives this backend's error or cancel.
 */
static void
run_job(dsm_segment *seg, UmJob *job)
{
	TimestampTz start = GetCurrentTimestamp();

	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot record %s on a hot standby", job->action),
				 errhint("Log in and change users on the primary server.")));
	if (pool == NULL || pool->n == 0)
	{
		if (!run_dynamic(seg, job))
			ereport(ERROR,
					(errcode(ERRCODE_UM_AUDIT_UNAVAILABLE),
					 errmsg("could not record %s", job->action),
					 errdetail("No background worker could be started to write it."),
					 errhint("Retry; to make it impossible for other work to take um's workers, preload um (shared_preload_libraries), which reserves um.audit_writers of them.")));
		return;
	}
	for (;;)
	{
		pid_t		pid = 0;
		int			i;

		/*
		 * Pinned only while a writer owns the job (it unpins when it maps
		 * it), so a cancel anywhere below leaks nothing.
		 */
		dsm_pin_segment(seg);
		i = pool_claim(seg, job, &pid);
		if (i >= 0)
		{
			wait_pooled(seg, job, i, pid);
			return;
		}
		dsm_unpin_segment(dsm_segment_handle(seg));
		/* every pooled writer busy: a dynamic worker, if one can be had */
		if (run_dynamic(seg, job))
			return;
		if (TimestampDifferenceExceeds(start, GetCurrentTimestamp(), POOL_WAIT_MS))
		{
			ereport(ERROR,
					(errcode(ERRCODE_UM_AUDIT_UNAVAILABLE),
					 errmsg("could not record %s", job->action),
					 errdetail("Every audit writer stayed busy for %d seconds.", POOL_WAIT_MS / 1000),
					 errhint("Retry; if it persists, raise um.audit_writers.")));
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 10, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * run_dynamic: a dynamic background worker does the job; false when none
 * could be started (the job was not touched).
 */
static bool
run_dynamic(dsm_segment *seg, UmJob *job)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	BgwHandleStatus status;
	pid_t		pid;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "um");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "um_autonomous_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "um audit writer for PID %d", MyProcPid);
	snprintf(worker.bgw_type, BGW_MAXLEN, "um audit writer");
	worker.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(seg));
	worker.bgw_notify_pid = MyProcPid;

	dsm_pin_segment(seg);
	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
	{
		dsm_unpin_segment(dsm_segment_handle(seg));
		return false;
	}
	status = WaitForBackgroundWorkerStartup(handle, &pid);
	if (status == BGWH_STARTED)
		status = WaitForBackgroundWorkerShutdown(handle);
	if (status == BGWH_POSTMASTER_DIED)
		ereport(FATAL,
				(errcode(ERRCODE_ADMIN_SHUTDOWN),
				 errmsg("postmaster exited while um recorded %s", job->action)));
	if (!job->done)
		job_failed(job);
	return true;
}

/* ---- jobs, for the module whose kind they are (login.c) */

/*
 * um_job_new: a job of the given kind, with the caller's identity, its
 * action and its target (a row of target_type, or none); its data zeroed.
 */
UmJob *
um_job_new(UmJobKind kind, const char *action, const char *target_type,
		   bool has_target, int64 target_id)
{
	dsm_segment *seg;
	UmJob	   *job = new_job(&seg, kind);

	job->has_target = has_target;
	job->target_id = has_target ? target_id : 0;
	um_job_copy_text(action, job->action, sizeof(job->action));
	um_job_copy_text(target_type, job->target_type, sizeof(job->target_type));
	return job;
}

/* um_job_data: the kind's own data, UM_JOB_DATA_SIZE bytes (the caller's and the worker's) */
void *
um_job_data(UmJob *job)
{
	return job->data;
}

/* um_job_target: the job's target id (0 when it has none) */
int64
um_job_target(const UmJob *job)
{
	return job->target_id;
}

/* the segment of a job this backend made */
static dsm_segment *
job_segment(UmJob *job)
{
	dsm_segment *seg = dsm_find_mapping(job->handle);

	if (seg == NULL)
		elog(ERROR, "um audit writer: the job's segment is not mapped");
	return seg;
}

/*
 * um_job_run: have the job done and committed by an audit writer, and wait
 * for it (UM069 when it could not be done).
 */
void
um_job_run(UmJob *job)
{
	run_job(job_segment(job), job);
}

/* um_job_free: done with the job (after reading what the worker wrote) */
void
um_job_free(UmJob *job)
{
	dsm_detach(job_segment(job));
}

/*
 * um_internal.audit_autonomous(action text, outcome text, org_id bigint,
 *     target_type text, target_id bigint, details jsonb)  returns void
 *
 * Internal (EXECUTE revoked from PUBLIC).  Commits one audit event in a
 * transaction of its own, with the caller's acting user and impersonator.
 */
Datum
um_audit_autonomous(PG_FUNCTION_ARGS)
{
	dsm_segment *seg;
	UmJob	   *job = new_job(&seg, UM_JOB_AUDIT);

	um_job_copy_text(PG_ARGISNULL(0) ? "" : text_to_cstring(PG_GETARG_TEXT_PP(0)),
			  job->action, sizeof(job->action));
	um_job_copy_text(PG_ARGISNULL(1) ? "denied" : text_to_cstring(PG_GETARG_TEXT_PP(1)),
			  job->outcome, sizeof(job->outcome));
	job->has_org = !PG_ARGISNULL(2);
	job->org_id = job->has_org ? PG_GETARG_INT64(2) : 0;
	um_job_copy_text(PG_ARGISNULL(3) ? "" : text_to_cstring(PG_GETARG_TEXT_PP(3)),
			  job->target_type, sizeof(job->target_type));
	job->has_target = !PG_ARGISNULL(4);
	job->target_id = job->has_target ? PG_GETARG_INT64(4) : 0;
	copy_details(PG_ARGISNULL(5) ? "{}" : DatumGetCString(DirectFunctionCall1(jsonb_out, PG_GETARG_DATUM(5))),
				 job->details, sizeof(job->details));
	run_job(seg, job);
	dsm_detach(seg);
	PG_RETURN_VOID();
}

/* ---- the worker */

static const char *const audit_sql =
"INSERT INTO um.audit_events (action, outcome, org_id, target_type, target_id, details, db_role,"
"                             actor_user_id, impersonator_user_id)"
" VALUES ($1, $2, $3, NULLIF($4, ''), $5, $6::pg_catalog.jsonb, $7, $8, $9)";

/*
 * um_job_write_audit: in the worker, insert the job's audit event with this
 * outcome and details (a JSON object), in the job's transaction.
 */
void
um_job_write_audit(UmJob *job, const char *outcome, const char *details)
{
	Oid			types[9] = {TEXTOID, TEXTOID, INT8OID, TEXTOID, INT8OID, TEXTOID,
	NAMEOID, INT8OID, INT8OID};
	Datum		vals[9];
	char		nulls[9];
	NameData	role;
	char	   *rolename = GetUserNameFromId(job->audit_role_id, true);
	int			rc;

	memset(nulls, ' ', sizeof(nulls));
	namestrcpy(&role, rolename ? rolename : "?");
	vals[0] = CStringGetTextDatum(job->action);
	vals[1] = CStringGetTextDatum(outcome);
	vals[2] = Int64GetDatum(job->org_id);
	nulls[2] = job->has_org ? ' ' : 'n';
	vals[3] = CStringGetTextDatum(job->target_type);
	vals[4] = Int64GetDatum(job->target_id);
	nulls[4] = job->has_target ? ' ' : 'n';
	vals[5] = CStringGetTextDatum(details);
	vals[6] = NameGetDatum(&role);
	vals[7] = Int64GetDatum(job->actor_user_id);
	nulls[7] = job->has_actor ? ' ' : 'n';
	vals[8] = Int64GetDatum(job->impersonator_user_id);
	nulls[8] = job->impersonator_user_id != 0 ? ' ' : 'n';
	rc = SPI_execute_with_args(audit_sql, 9, types, vals, nulls, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "um audit writer: insert failed: %s", SPI_result_code_string(rc));
}

/*
 * execute_job: run a mapped job in one transaction of this (connected)
 * worker, say whether it committed, and wake the caller.  An error is
 * copied into the job and ends the worker.
 */
static void
execute_job(UmJob *job)
{
	PG_TRY();
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, "um audit writer");
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		if (job->kind == UM_JOB_LOGIN)
			um_login_execute(job);
		else
			um_job_write_audit(job, job->outcome, job->details);
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
		pgstat_report_activity(STATE_IDLE, NULL);
		pg_write_barrier();
		job->done = true;
	}
	PG_CATCH();
	{
		ErrorData  *e;

		MemoryContextSwitchTo(TopMemoryContext);
		e = CopyErrorData();
		snprintf(job->error, sizeof(job->error), "%s (SQLSTATE %s)",
				 e->message ? e->message : "unknown error", unpack_sql_state(e->sqlerrcode));
		PG_RE_THROW();
	}
	PG_END_TRY();
	SetLatch(&GetPGProcByNumber(job->caller_procno)->procLatch);
}

/* map a job (and release the pin that kept it alive for us) */
static dsm_segment *
attach_job(dsm_handle h)
{
	dsm_segment *seg = dsm_attach(h);

	if (seg == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("um audit writer: could not map its job")));
	dsm_unpin_segment(h);
	return seg;
}

static void
connect_for(UmJob *job)
{
#if PG_VERSION_NUM >= 170000
	BackgroundWorkerInitializeConnectionByOid(job->database_id, job->role_id,
											  BGWORKER_BYPASS_ROLELOGINCHECK);
#else
	BackgroundWorkerInitializeConnectionByOid(job->database_id, job->role_id, 0);
#endif
	job->connected = true;

	/* never wait long for a lock: the waiting caller might hold it */
	SetConfigOption("lock_timeout", "5s", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
}

/*
 * um_autonomous_main: a dynamic background worker for one job.
 */
void
um_autonomous_main(Datum main_arg)
{
	dsm_segment *seg;
	UmJob	   *job;

	BackgroundWorkerUnblockSignals();
	seg = attach_job(DatumGetUInt32(main_arg));
	job = dsm_segment_address(seg);
	connect_for(job);
	execute_job(job);
	dsm_detach(seg);
	proc_exit(0);
}

/* ---- the pool of writers reserved at server start */

static void
writer_exit(int code, Datum arg)
{
	WriterSlot *w = &pool->slot[DatumGetInt32(arg)];

	(void) code;
	SpinLockAcquire(&pool->mutex);
	if (w->pid == MyProcPid)
	{
		w->pid = 0;
		w->busy = false;
		w->recycle = false;
		w->dbid = InvalidOid;
		w->roleid = InvalidOid;
		w->job = DSM_HANDLE_INVALID;
		w->job_db = InvalidOid;
		w->job_user = 0;
	}
	SpinLockRelease(&pool->mutex);
}

/*
 * um_writer_main: a pooled writer.  Serves jobs of the database and role it
 * connected to for its first one, until asked to make way (it exits, and
 * the postmaster starts it again, unconnected) or an error ends it.
 */
void
um_writer_main(Datum main_arg)
{
	int			i = DatumGetInt32(main_arg);
	WriterSlot *w;

	BackgroundWorkerUnblockSignals();
	if (pool == NULL || i >= pool->n)
		proc_exit(0);
	w = &pool->slot[i];
	on_shmem_exit(writer_exit, Int32GetDatum(i));
	SpinLockAcquire(&pool->mutex);
	w->pid = MyProcPid;
	w->latch = MyLatch;
	w->busy = false;
	w->recycle = false;
	w->dbid = InvalidOid;
	w->roleid = InvalidOid;
	w->job = DSM_HANDLE_INVALID;
	SpinLockRelease(&pool->mutex);

	for (;;)
	{
		dsm_handle	h = DSM_HANDLE_INVALID;
		bool		recycle;

		int			rc;

		/*
		 * Connected, a writer that stays idle for WRITER_IDLE_MS leaves its
		 * database, so that DROP DATABASE (which waits 5 seconds for other
		 * sessions) is never kept from it by um.
		 */
		rc = WaitLatch(MyLatch, WL_LATCH_SET | WL_EXIT_ON_PM_DEATH | (OidIsValid(w->dbid) ? WL_TIMEOUT : 0),
					   WRITER_IDLE_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		SpinLockAcquire(&pool->mutex);
		if (rc & WL_TIMEOUT)
			w->recycle = true;
		recycle = w->recycle && !w->busy;
		if (w->busy)
			h = w->job;
		SpinLockRelease(&pool->mutex);
		if (recycle)
			proc_exit(1);		/* restarted unconnected */
		if (h != DSM_HANDLE_INVALID)
		{
			dsm_segment *seg = attach_job(h);
			UmJob	   *job = dsm_segment_address(seg);

			if (!OidIsValid(w->dbid))
			{
				connect_for(job);
				SpinLockAcquire(&pool->mutex);
				w->dbid = job->database_id;
				w->roleid = job->role_id;
				SpinLockRelease(&pool->mutex);
			}
			else
				job->connected = true;
			execute_job(job);
			dsm_detach(seg);
			SpinLockAcquire(&pool->mutex);
			w->busy = false;
			w->job = DSM_HANDLE_INVALID;
			w->job_db = InvalidOid;
			w->job_user = 0;
			SpinLockRelease(&pool->mutex);
		}
	}
}

static Size
pool_size(void)
{
	return add_size(offsetof(WriterPool, slot), mul_size(audit_writers, sizeof(WriterSlot)));
}

static void
pool_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(pool_size());
}

static void
pool_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	pool = ShmemInitStruct("um audit writers", pool_size(), &found);
	if (!found)
	{
		memset(pool, 0, pool_size());
		SpinLockInit(&pool->mutex);
		pool->n = audit_writers;
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * um_audit_writer_init: from _PG_init.  Preloaded, reserve the pool: its
 * shared memory and its static workers.
 */
void
um_audit_writer_init(void)
{
	int			i;

	/* a server-start setting, defined only while preloading (as pg_stat_statements does) */
	if (!process_shared_preload_libraries_in_progress)
		return;
	DefineCustomIntVariable("um.audit_writers",
							"Audit writers reserved at server start (with um in shared_preload_libraries).",
							"Their background worker slots are um's alone: parallel queries cannot take the capacity logins need.",
							&audit_writers,
							2, 0, MAX_AUDIT_WRITERS,
							PGC_POSTMASTER, 0,
							NULL, NULL, NULL);
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = pool_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = pool_shmem_startup;
	for (i = 0; i < audit_writers; i++)
	{
		BackgroundWorker worker;

		memset(&worker, 0, sizeof(worker));
		worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
		worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
		worker.bgw_restart_time = 0;
		snprintf(worker.bgw_library_name, BGW_MAXLEN, "um");
		snprintf(worker.bgw_function_name, BGW_MAXLEN, "um_writer_main");
		snprintf(worker.bgw_name, BGW_MAXLEN, "um audit writer %d", i + 1);
		snprintf(worker.bgw_type, BGW_MAXLEN, "um audit writer");
		worker.bgw_main_arg = Int32GetDatum(i);
		RegisterBackgroundWorker(&worker);
	}
}
