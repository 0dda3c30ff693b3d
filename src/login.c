/*-------------------------------------------------------------------------
 *
 * src/login.c
 *	  The login policy: the login settings, and what um decides about each
 *	  login attempt (counting failures, lockout, recording the attempt).
 *
 * The password itself is checked in SQL (um_login(), 80_identity.sql); the
 * decisions that must survive the refusal's rollback are made here, in a
 * transaction of their own.  A failure counted in the caller's transaction
 * would be forgotten with the error that refuses the login, and the lockout
 * never reached (an attacker could also wrap each guess in BEGIN ...
 * ROLLBACK).  So every attempt is a job for an audit writer
 * (audit_writer.c), which runs um_login_execute() in its own transaction
 * while the caller waits, before the caller answers.
 *
 * Logins fail closed.  um_internal.record_login() is called for every attempt, after
 * the password was checked but before anything is revealed, right or wrong;
 * the worker decides under a row lock whether the account was locked at that
 * moment (then the attempt fails whatever the password), counts a wrong
 * password (the Nth in a row locks the account), and resets the count after
 * a right one.  If the worker cannot run (no free max_worker_processes slot,
 * a lock held past lock_timeout, a role that may not connect) the caller gets
 * UM069 for a right password as for a wrong one, so a guess is never
 * answered without being counted.  The job lives in a pinned dynamic shared
 * memory segment, so a caller cancelled while it waits (statement_timeout,
 * pg_cancel_backend) cannot stop the count: the worker still does it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"

#include "um.h"

PG_FUNCTION_INFO_V1(um_login_settings);
PG_FUNCTION_INFO_V1(um_record_login);
PG_FUNCTION_INFO_V1(um_password_reset_settings);

static int	login_max_failures = 5;
static int	login_lockout_seconds = 900;
static int	session_lifetime_seconds = 12 * 3600;
static int	password_hash_cost = 10;
static bool invitations_prove_address = false;
static bool email_change_ends_sessions = false;
static int	session_idle_timeout_seconds = 0;
static char *mfa_issuer = NULL;
static int	step_up_window_seconds = 600;
static char *client_addr_setting = NULL;
static char *client_user_agent_setting = NULL;
static int	password_reset_lifetime_seconds = 1800;
static int	password_reset_interval_seconds = 60;

typedef enum LoginResult
{
	LOGIN_UNKNOWN_EMAIL,		/* no such user: audit only */
	LOGIN_WRONG,				/* wrong password: count it */
	LOGIN_REFUSED,				/* right password, refused for another reason */
	LOGIN_SUCCESS				/* right password, logged in */
} LoginResult;

/* A login attempt: the data of a UM_JOB_LOGIN job (um_job_data()). */
typedef struct LoginAttempt
{
	/* filled in by the caller */
	LoginResult result;
	int			max_failures;
	int			lockout_seconds;
	char		reason[UM_JOB_TEXT_MAX];	/* the audit's words for a refusal */
	bool		reset_code;		/* a password reset code: a wrong one also
								 * counts against its request */
	bool		second_factor;	/* a second factor's code: counted apart
								 * (users.mfa_failed_count, mfa_locked_until),
								 * so that a right password clears nothing of it */
	/* filled in by the worker */
	bool		was_locked;		/* locked when the attempt was made */
	bool		locked;			/* locked after it */
	int			failed_count;
} LoginAttempt;

StaticAssertDecl(sizeof(LoginAttempt) <= UM_JOB_DATA_SIZE,
				 "a login attempt must fit in a job's data");

/*
 * um_login_init: the login settings, from _PG_init.  All are PGC_SUSET:
 * an application role must not lengthen its own sessions or cheapen the
 * password hash.
 */
void
um_login_init(void)
{
	DefineCustomIntVariable("um.login_max_failures",
							"Consecutive failed logins that lock an account.",
							NULL,
							&login_max_failures,
							5, 1, 1000,
							PGC_SUSET, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("um.login_lockout",
							"How long an account stays locked after too many failed logins.",
							NULL,
							&login_lockout_seconds,
							900, 1, 365 * 86400,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("um.session_lifetime",
							"How long a session token from um_login() stays valid.",
							NULL,
							&session_lifetime_seconds,
							12 * 3600, 60, 365 * 86400,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("um.session_idle_timeout",
							"How long a session may go unused before it ends (0: no idle limit).",
							"An organization may set a stricter one (setting session_idle_timeout).",
							&session_idle_timeout_seconds,
							0, 0, 365 * 86400,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);
	/*
	 * What the backend knows of its client, for the session a login in the
	 * same transaction starts (SET LOCAL): anybody may set them, as anybody
	 * may tell um_login anything.
	 */
	DefineCustomStringVariable("um.client_addr",
							   "The client's IP address, recorded with a session that starts now.",
							   NULL,
							   &client_addr_setting,
							   "",
							   PGC_USERSET, 0,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("um.client_user_agent",
							   "The client's user agent, recorded with a session that starts now.",
							   NULL,
							   &client_user_agent_setting,
							   "",
							   PGC_USERSET, 0,
							   NULL, NULL, NULL);
	DefineCustomIntVariable("um.step_up_window",
							"How recent an authentication sensitive calls need.",
							"Transferring an organization, deleting one's account, changing one's address: through a session, only this long after its user last proved who they are (um_reauthenticate).",
							&step_up_window_seconds,
							600, 60, 86400,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomStringVariable("um.mfa_issuer",
							   "The issuer authenticator apps show for um's TOTP factors.",
							   "Your service's name, as in otpauth://totp/<issuer>:<email>.",
							   &mfa_issuer,
							   "um",
							   PGC_SUSET, 0,
							   NULL, NULL, NULL);
	DefineCustomBoolVariable("um.email_change_ends_sessions",
							 "Whether confirming a new email address ends the user's sessions.",
							 "Off: sessions survive an address change (the person proved both mailboxes' consent).",
							 &email_change_ends_sessions,
							 false,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);
	DefineCustomBoolVariable("um.invitations_prove_address",
							 "Whether accepting an invitation proves the invited mailbox.",
							 "Turn it on only when inviters never see invitation tokens: "
							 "um_accept_invitation_and_login then verifies a new account's address and logs it in.",
							 &invitations_prove_address,
							 false,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("um.password_hash_cost",
							"bcrypt cost (log2 of the rounds) for new password hashes.",
							"Each step doubles the time a hash, and a guess, takes.",
							&password_hash_cost,
							10, 4, 15,
							PGC_SUSET, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("um.password_reset_lifetime",
							"How long the secrets of um_request_password_reset() stay valid.",
							NULL,
							&password_reset_lifetime_seconds,
							1800, 60, 7 * 86400,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("um.password_reset_interval",
							"How soon a new password reset for the same user replaces the last one.",
							"Within it a request issues nothing, and the secrets already mailed stay valid.",
							&password_reset_interval_seconds,
							60, 0, 86400,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);
}

/*
 * um_internal.login_settings(): the login settings, for the SQL functions.  (Asking
 * for them through a C function also loads the module, which defines them:
 * current_setting() in a fresh session would not know them yet.)
 */
Datum
um_login_settings(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};

	/* every path that takes a password reads these first (session.c) */
	um_session_note_secret();
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);
	values[0] = Int32GetDatum(login_max_failures);
	values[1] = Int32GetDatum(login_lockout_seconds);
	values[2] = Int32GetDatum(session_lifetime_seconds);
	values[3] = Int32GetDatum(password_hash_cost);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * um_internal.record_login(user_id bigint, action text, result text, reason text,
 *     OUT was_locked boolean, OUT failed_logins integer, OUT locked boolean)
 *
 * Internal.  result is 'unknown_email', 'wrong', 'refused' or 'success';
 * reason is the audit's words for a refusal.  Returns whether the account
 * was locked when the attempt was made (then the caller must refuse it
 * whatever the password), and the counter after it.
 */
Datum
um_record_login(PG_FUNCTION_ARGS)
{
	UmJob	   *job;
	LoginAttempt *attempt;
	LoginResult login_result;
	bool		has_user;
	const char *result;
	const char *action;
	TupleDesc	tupdesc;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};

	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
		elog(ERROR, "um_internal.record_login: action and result are required");
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	has_user = !PG_ARGISNULL(0);
	result = text_to_cstring(PG_GETARG_TEXT_PP(2));
	if (strcmp(result, "unknown_email") == 0)
		login_result = LOGIN_UNKNOWN_EMAIL;
	else if (strcmp(result, "wrong") == 0)
		login_result = LOGIN_WRONG;
	else if (strcmp(result, "refused") == 0)
		login_result = LOGIN_REFUSED;
	else if (strcmp(result, "success") == 0)
		login_result = LOGIN_SUCCESS;
	else
		elog(ERROR, "um_internal.record_login: unknown result \"%s\"", result);
	if (!has_user && login_result != LOGIN_UNKNOWN_EMAIL)
		elog(ERROR, "um_internal.record_login: a known user's attempt needs the user id");

	action = text_to_cstring(PG_GETARG_TEXT_PP(1));
	job = um_job_new(UM_JOB_LOGIN, action, "user",
					 has_user, has_user ? PG_GETARG_INT64(0) : 0);
	attempt = (LoginAttempt *) um_job_data(job);
	attempt->result = login_result;
	attempt->reset_code = strcmp(action, "user.reset_password") == 0;
	attempt->second_factor = strcmp(action, "user.login_second_factor") == 0 ||
		strcmp(action, "user.confirm_factor") == 0 || strcmp(action, "user.remove_factor") == 0 ||
		strcmp(action, "user.regenerate_recovery_codes") == 0 || strcmp(action, "user.reauthenticate_factor") == 0;
	um_job_copy_text(PG_ARGISNULL(3) ? "" : text_to_cstring(PG_GETARG_TEXT_PP(3)),
					 attempt->reason, sizeof(attempt->reason));
	attempt->max_failures = login_max_failures;
	attempt->lockout_seconds = login_lockout_seconds;
	um_job_run(job);

	tupdesc = BlessTupleDesc(tupdesc);
	values[0] = BoolGetDatum(attempt->was_locked);
	values[1] = Int32GetDatum(attempt->failed_count);
	values[2] = BoolGetDatum(attempt->locked);
	um_job_free(job);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * um_internal.password_reset_settings(): the password reset settings, for
 * the SQL functions (through C for the reason login_settings() gives).
 */
Datum
um_password_reset_settings(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[2];
	bool		nulls[2] = {false, false};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);
	values[0] = Int32GetDatum(password_reset_lifetime_seconds);
	values[1] = Int32GetDatum(password_reset_interval_seconds);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* ---- in the audit writer: the decision, in a transaction of its own */

static const char *const lock_sql =
"SELECT failed_login_count,"
"       COALESCE(locked_until OPERATOR(pg_catalog.>) pg_catalog.now(), false)"
"  FROM um.users WHERE id OPERATOR(pg_catalog.=) $1 FOR NO KEY UPDATE";

static const char *const mfa_lock_sql =
"SELECT mfa_failed_count,"
"       COALESCE(mfa_locked_until OPERATOR(pg_catalog.>) pg_catalog.now(), false)"
"  FROM um.users WHERE id OPERATOR(pg_catalog.=) $1 FOR NO KEY UPDATE";

static const char *const mfa_count_sql =
"UPDATE um.users SET mfa_failed_count = $2,"
"       mfa_locked_until = CASE WHEN $3 THEN pg_catalog.now() OPERATOR(pg_catalog.+) pg_catalog.make_interval(secs => $4)"
"                               WHEN $2 OPERATOR(pg_catalog.=) 0 THEN NULL ELSE mfa_locked_until END"
" WHERE id OPERATOR(pg_catalog.=) $1";

static const char *const code_attempt_sql =
"UPDATE um.password_resets SET code_attempts = code_attempts OPERATOR(pg_catalog.+) 1"
" WHERE user_id OPERATOR(pg_catalog.=) $1";

static const char *const count_sql =
"UPDATE um.users SET failed_login_count = $2,"
"       locked_until = CASE WHEN $3 THEN pg_catalog.now() OPERATOR(pg_catalog.+) pg_catalog.make_interval(secs => $4)"
"                           WHEN $2 OPERATOR(pg_catalog.=) 0 THEN NULL ELSE locked_until END"
" WHERE id OPERATOR(pg_catalog.=) $1";

/* json_reason: the details of a login's audit event */
static char *
json_reason(const char *reason, int failed, bool locked, bool with_count)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"reason\": ");
	escape_json(&buf, reason);
	if (with_count)
		appendStringInfo(&buf, ", \"failed_logins\": %d, \"locked\": %s", failed, locked ? "true" : "false");
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

/*
 * um_login_execute: in the audit writer's transaction, the login attempt,
 * under a lock on the user's row, so that concurrent guesses are counted
 * one after another.
 * (FOR NO KEY UPDATE: the caller's own foreign-key checks, e.g. of a
 * session row inserted earlier in its transaction, take KEY SHARE locks,
 * which must not block the worker its caller waits for.)
 */
void
um_login_execute(UmJob *job)
{
	LoginAttempt *attempt = (LoginAttempt *) um_job_data(job);
	int64		user_id = um_job_target(job);
	int			failed = 0;
	bool		was_locked = false;
	bool		lock_now = false;
	bool		isnull;
	int			rc;

	if (attempt->result == LOGIN_UNKNOWN_EMAIL)
	{
		um_job_write_audit(job, "denied", json_reason("unknown email", 0, false, false));
		return;
	}
	{
		Oid			types[1] = {INT8OID};
		Datum		vals[1] = {Int64GetDatum(user_id)};

		rc = SPI_execute_with_args(attempt->second_factor ? mfa_lock_sql : lock_sql, 1, types, vals, NULL, false, 1);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "um audit writer: user lookup failed: %s", SPI_result_code_string(rc));
		if (SPI_processed == 0)
		{
			/* deleted meanwhile: nothing to count */
			um_job_write_audit(job, "denied", json_reason("unknown user", 0, false, false));
			return;
		}
		failed = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		was_locked = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
		/*
		 * A wrong reset code also counts against its request, locked or not:
		 * the victim's own logins reset the account's counter, not this one.
		 */
		if (attempt->result == LOGIN_WRONG && attempt->reset_code)
		{
			rc = SPI_execute_with_args(code_attempt_sql, 1, types, vals, NULL, false, 0);
			if (rc != SPI_OK_UPDATE)
				elog(ERROR, "um audit writer: reset code count failed: %s", SPI_result_code_string(rc));
		}
	}
	attempt->was_locked = was_locked;
	if (was_locked)
	{
		/* refused whatever the password; not counted again */
		attempt->locked = true;
		attempt->failed_count = failed;
		um_job_write_audit(job, "denied", json_reason("locked", failed, true, true));
		return;
	}
	if (attempt->result == LOGIN_WRONG)
	{
		failed++;
		if (failed >= attempt->max_failures)
		{
			lock_now = true;
			failed = 0;			/* the lock starts a new count */
		}
	}
	else if (failed == 0)
	{
		/* right password, nothing to reset */
		if (attempt->result == LOGIN_REFUSED)
			um_job_write_audit(job, "denied", json_reason(attempt->reason, 0, false, false));
		return;
	}
	else
		failed = 0;
	{
		Oid			types[4] = {INT8OID, INT4OID, BOOLOID, FLOAT8OID};
		Datum		vals[4];

		vals[0] = Int64GetDatum(user_id);
		vals[1] = Int32GetDatum(failed);
		vals[2] = BoolGetDatum(lock_now);
		vals[3] = Float8GetDatum((double) attempt->lockout_seconds);
		rc = SPI_execute_with_args(attempt->second_factor ? mfa_count_sql : count_sql, 4, types, vals, NULL, false, 0);
		if (rc != SPI_OK_UPDATE)
			elog(ERROR, "um audit writer: counter update failed: %s", SPI_result_code_string(rc));
	}
	attempt->failed_count = failed;
	attempt->locked = lock_now;
	if (attempt->result == LOGIN_WRONG)
		um_job_write_audit(job, "denied", json_reason(attempt->reason, lock_now ? attempt->max_failures : failed,
													  lock_now, true));
	else if (attempt->result == LOGIN_REFUSED)
		um_job_write_audit(job, "denied", json_reason(attempt->reason, 0, false, false));
}
