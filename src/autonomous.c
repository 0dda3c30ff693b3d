/*-------------------------------------------------------------------------
 *
 * src/autonomous.c
 *	  Writes that must survive the caller's rollback: the failed-login
 *	  counter and the audit events of refused calls.
 *
 * A refused login raises an error, and an error rolls back everything the
 * transaction wrote, so a failure counted in the caller's own transaction
 * would be forgotten and the lockout never reached (an attacker could also
 * wrap each guess in BEGIN ... ROLLBACK).  um.audit_autonomous() therefore
 * hands the write to a short-lived background worker, which commits it in
 * a transaction of its own while the caller waits, before the caller
 * raises its error.  The worker connects to the same database as the role
 * that called (the owner of the SECURITY DEFINER function that called) and
 * runs fixed, schema-qualified statements with the arguments as parameters.
 *
 * A worker costs a process start (a few milliseconds), paid only on the
 * refusal path.  If no worker can be started (max_worker_processes in
 * use), or its write fails (a lock held longer than lock_timeout, a hot
 * standby), the caller gets error UM069 instead of the refusal: the
 * attempt is refused either way, and never silently uncounted.
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
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "um.h"

PG_FUNCTION_INFO_V1(um_audit_autonomous);

PGDLLEXPORT void um_autonomous_main(Datum main_arg);

#define JOB_TEXT_MAX	1024

/* The job, in a dynamic shared memory segment both processes map. */
typedef struct AutonomousJob
{
	/* filled in by the caller */
	Oid			database_id;
	Oid			role_id;		/* the worker connects as this role */
	Oid			audit_role_id;	/* the role recorded as db_role */
	bool		has_user;
	int64		user_id;		/* the user whose login counter to change */
	int			counter_op;		/* 0 none, 1 count a failure, 2 reset */
	int			max_failures;
	int			lockout_seconds;
	bool		has_actor;
	int64		actor_user_id;	/* the acting user, recorded as the caller had it */
	int64		impersonator_user_id;	/* 0: not impersonating */
	bool		has_org;
	int64		org_id;
	bool		has_target;
	int64		target_id;
	char		action[NAMEDATALEN];
	char		outcome[NAMEDATALEN];
	char		target_type[NAMEDATALEN];
	char		details[JOB_TEXT_MAX];	/* a JSON object */
	/* filled in by the worker */
	bool		done;
	int			failed_count;
	bool		locked;
	char		error[JOB_TEXT_MAX];
} AutonomousJob;

static void
copy_text_arg(FunctionCallInfo fcinfo, int argno, char *dst, size_t size, const char *dflt)
{
	const char *s = PG_ARGISNULL(argno) ? dflt : text_to_cstring(PG_GETARG_TEXT_PP(argno));

	if (strlen(s) >= size)
		elog(ERROR, "um.audit_autonomous: argument %d is too long", argno + 1);
	strlcpy(dst, s, size);
}

/*
 * um.audit_autonomous(action text, outcome text, org_id bigint,
 *     target_type text, target_id bigint, details jsonb,
 *     login_counter text)  returns int
 *
 * Internal (EXECUTE revoked from PUBLIC).  Commits one audit event, and
 * with login_counter 'fail' or 'reset' also counts a failed login of user
 * target_id or resets the count, in a transaction of its own.  Returns the
 * failed-login count after the change (0 without a counter operation).
 */
Datum
um_audit_autonomous(PG_FUNCTION_ARGS)
{
	dsm_segment *seg;
	AutonomousJob *job;
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	BgwHandleStatus status;
	pid_t		pid;
	int			result;
	const char *op = PG_ARGISNULL(6) ? "none" : text_to_cstring(PG_GETARG_TEXT_PP(6));

	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot record an audit event on a hot standby"),
				 errhint("Log in and change users on the primary server.")));

	seg = dsm_create(sizeof(AutonomousJob), 0);
	job = dsm_segment_address(seg);
	memset(job, 0, sizeof(AutonomousJob));
	job->database_id = MyDatabaseId;
	job->role_id = GetUserId();
	job->audit_role_id = GetOuterUserId();
	job->has_actor = um_identity_get(&job->actor_user_id);
	if (job->has_actor)
	{
		int64		real_id;

		(void) um_identity_real(&real_id);
		job->impersonator_user_id = (real_id != job->actor_user_id) ? real_id : 0;
	}
	copy_text_arg(fcinfo, 0, job->action, sizeof(job->action), "");
	copy_text_arg(fcinfo, 1, job->outcome, sizeof(job->outcome), "denied");
	job->has_org = !PG_ARGISNULL(2);
	job->org_id = job->has_org ? PG_GETARG_INT64(2) : 0;
	copy_text_arg(fcinfo, 3, job->target_type, sizeof(job->target_type), "");
	job->has_target = !PG_ARGISNULL(4);
	job->target_id = job->has_target ? PG_GETARG_INT64(4) : 0;
	if (PG_ARGISNULL(5))
		strlcpy(job->details, "{}", sizeof(job->details));
	else
	{
		char	   *d = DatumGetCString(DirectFunctionCall1(jsonb_out, PG_GETARG_DATUM(5)));

		if (strlen(d) >= sizeof(job->details))
			elog(ERROR, "um.audit_autonomous: details are too long");
		strlcpy(job->details, d, sizeof(job->details));
	}
	if (strcmp(op, "fail") == 0 || strcmp(op, "reset") == 0)
	{
		if (!job->has_target)
			elog(ERROR, "um.audit_autonomous: a login counter operation needs target_id");
		job->has_user = true;
		job->user_id = job->target_id;
		job->counter_op = (strcmp(op, "fail") == 0) ? 1 : 2;
		job->max_failures = um_login_max_failures;
		job->lockout_seconds = um_login_lockout_seconds;
	}
	else if (strcmp(op, "none") != 0)
		elog(ERROR, "um.audit_autonomous: unknown login counter operation \"%s\"", op);

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_ConsistentState;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "um");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "um_autonomous_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "um audit writer for PID %d", MyProcPid);
	snprintf(worker.bgw_type, BGW_MAXLEN, "um audit writer");
	worker.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(seg));
	worker.bgw_notify_pid = MyProcPid;

	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
		ereport(ERROR,
				(errcode(ERRCODE_UM_AUDIT_UNAVAILABLE),
				 errmsg("could not record the refused %s", job->action),
				 errdetail("No background worker could be started to write the audit event."),
				 errhint("Raise max_worker_processes, or retry when fewer parallel queries run.")));
	status = WaitForBackgroundWorkerStartup(handle, &pid);
	if (status == BGWH_STARTED)
		status = WaitForBackgroundWorkerShutdown(handle);
	if (status == BGWH_POSTMASTER_DIED)
		ereport(FATAL,
				(errcode(ERRCODE_ADMIN_SHUTDOWN),
				 errmsg("postmaster exited while um wrote an audit event")));
	if (!job->done)
		ereport(ERROR,
				(errcode(ERRCODE_UM_AUDIT_UNAVAILABLE),
				 errmsg("could not record the refused %s", job->action),
				 errdetail("%s", job->error[0] ? job->error : "The audit writer did not finish."),
				 errhint("Retry; if it persists, see the server log.")));
	result = job->failed_count;
	dsm_detach(seg);
	PG_RETURN_INT32(result);
}

static const char *const counter_sql[] = {
	NULL,
	/* count a failure; the Nth in a row locks the account and starts over */
	"UPDATE um.users SET"
	"   failed_login_count = CASE WHEN failed_login_count OPERATOR(pg_catalog.+) 1 OPERATOR(pg_catalog.>=) $2"
	"                             THEN 0 ELSE failed_login_count OPERATOR(pg_catalog.+) 1 END,"
	"   locked_until = CASE WHEN failed_login_count OPERATOR(pg_catalog.+) 1 OPERATOR(pg_catalog.>=) $2"
	"                       THEN pg_catalog.now() OPERATOR(pg_catalog.+) pg_catalog.make_interval(secs => $3)"
	"                       ELSE locked_until END"
	" WHERE id OPERATOR(pg_catalog.=) $1"
	" RETURNING failed_login_count, locked_until IS NOT NULL AND locked_until OPERATOR(pg_catalog.>) pg_catalog.now()",
	/* a correct password: start counting afresh */
	"UPDATE um.users SET failed_login_count = 0"
	" WHERE id OPERATOR(pg_catalog.=) $1 AND failed_login_count OPERATOR(pg_catalog.<>) 0"
	" RETURNING 0, false"
};

static const char *const audit_sql =
"INSERT INTO um.audit_events (action, outcome, org_id, target_type, target_id, details, db_role,"
"                             actor_user_id, impersonator_user_id)"
" VALUES ($1, $2, $3, NULLIF($4, ''), $5,"
"         $6::pg_catalog.jsonb OPERATOR(pg_catalog.||) pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object("
"             'failed_logins', $7, 'locked', $8)),"
"         $9, $10, $11)";

static void
run_job(AutonomousJob *job)
{
	bool		locked = false;
	bool		has_count = false;
	int			count = 0;
	int			rc;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (job->counter_op != 0)
	{
		Oid			types[3] = {INT8OID, INT4OID, FLOAT8OID};
		Datum		vals[3];

		vals[0] = Int64GetDatum(job->user_id);
		vals[1] = Int32GetDatum(job->max_failures);
		vals[2] = Float8GetDatum((double) job->lockout_seconds);
		rc = SPI_execute_with_args(counter_sql[job->counter_op], job->counter_op == 1 ? 3 : 1,
								   types, vals, NULL, false, 0);
		if (rc != SPI_OK_UPDATE_RETURNING)
			elog(ERROR, "um audit writer: counter update failed: %s", SPI_result_code_string(rc));
		if (SPI_processed > 0 && job->counter_op == 1)
		{
			bool		isnull;

			count = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
			locked = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
			has_count = true;
		}
	}
	{
		Oid			types[11] = {TEXTOID, TEXTOID, INT8OID, TEXTOID, INT8OID, TEXTOID,
		INT4OID, BOOLOID, NAMEOID, INT8OID, INT8OID};
		Datum		vals[11];
		char		nulls[11];
		NameData	role;
		char	   *rolename = GetUserNameFromId(job->audit_role_id, true);

		memset(nulls, ' ', sizeof(nulls));
		namestrcpy(&role, rolename ? rolename : "?");
		vals[0] = CStringGetTextDatum(job->action);
		vals[1] = CStringGetTextDatum(job->outcome);
		vals[2] = Int64GetDatum(job->org_id);
		nulls[2] = job->has_org ? ' ' : 'n';
		vals[3] = CStringGetTextDatum(job->target_type);
		vals[4] = Int64GetDatum(job->target_id);
		nulls[4] = job->has_target ? ' ' : 'n';
		vals[5] = CStringGetTextDatum(job->details);
		vals[6] = Int32GetDatum(count);
		nulls[6] = has_count ? ' ' : 'n';
		vals[7] = BoolGetDatum(locked);
		nulls[7] = has_count ? ' ' : 'n';
		vals[8] = NameGetDatum(&role);
		vals[9] = Int64GetDatum(job->actor_user_id);
		nulls[9] = job->has_actor ? ' ' : 'n';
		vals[10] = Int64GetDatum(job->impersonator_user_id);
		nulls[10] = job->impersonator_user_id != 0 ? ' ' : 'n';
		rc = SPI_execute_with_args(audit_sql, 11, types, vals, nulls, false, 0);
		if (rc != SPI_OK_INSERT)
			elog(ERROR, "um audit writer: insert failed: %s", SPI_result_code_string(rc));
	}
	SPI_finish();
	job->failed_count = count;
	job->locked = locked;
}

/*
 * um_autonomous_main: the background worker.  Attaches to the job, connects,
 * runs it in one transaction, and says whether it committed.
 */
void
um_autonomous_main(Datum main_arg)
{
	dsm_segment *seg;
	AutonomousJob *job;

	BackgroundWorkerUnblockSignals();
	seg = dsm_attach(DatumGetUInt32(main_arg));
	if (seg == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("um audit writer: could not map its job")));
	job = dsm_segment_address(seg);
	BackgroundWorkerInitializeConnectionByOid(job->database_id, job->role_id, 0);

	/* never wait long for a lock the waiting caller might hold */
	SetConfigOption("lock_timeout", "5s", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);

	PG_TRY();
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, "um audit writer");
		run_job(job);
		PopActiveSnapshot();
		CommitTransactionCommand();
		pgstat_report_activity(STATE_IDLE, NULL);
		job->done = true;
	}
	PG_CATCH();
	{
		ErrorData  *e;

		MemoryContextSwitchTo(TopMemoryContext);
		e = CopyErrorData();
		strlcpy(job->error, e->message ? e->message : "unknown error", sizeof(job->error));
		PG_RE_THROW();
	}
	PG_END_TRY();
	dsm_detach(seg);
	proc_exit(0);
}
