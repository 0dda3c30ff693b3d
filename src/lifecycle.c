/*-------------------------------------------------------------------------
 *
 * src/lifecycle.c
 *	  The entry point of every lifecycle function: who is calling.
 *
 * A lifecycle function (um_invite, um_suspend_user, um_login, ...: every
 * public function of um that needs its owner's rights) must write um's
 * tables, which nobody but um's owner may write, so its body runs as that
 * owner (SECURITY DEFINER).  Yet with nobody acting it must decide by the
 * database role that called it: is that role a um administrator?  Inside a
 * SECURITY DEFINER function the current user is the owner, and the session
 * user (GetOuterUserId) is not the caller either when the call comes from
 * another role's SECURITY DEFINER function: a um administrator running
 * mallory's function would lend mallory their rights.
 *
 * So each public function is this C function, running with the caller's
 * rights (SECURITY INVOKER).  It notes the current user, the role really
 * calling, and calls the body, um_internal.do_<name>(the same arguments...), a
 * SECURITY DEFINER function whose EXECUTE nobody holds: fmgr calls it
 * directly.  While the body runs, um_internal.caller_role() names the role noted
 * here: that is the only way the caller reaches a body (its authorization,
 * the audit trail's database role column, the log line of a refusal), and
 * nothing the caller can set changes it.
 *
 * The library also serves a database whose SQL is still 0.2 until
 * ALTER EXTENSION um UPDATE runs: 0.2's bodies take the caller as a
 * trailing oid argument, and get it that way.
 *
 * Set-returning bodies return their rows in materialize mode through the
 * caller's ReturnSetInfo, which is handed on unchanged.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "utils/builtins.h"
#include "utils/syscache.h"

#include "um.h"

PG_FUNCTION_INFO_V1(um_lifecycle_entry);
PG_FUNCTION_INFO_V1(um_caller_role);

/* what a public function's call site remembers: its body */
typedef struct LifecycleBody
{
	FmgrInfo	flinfo;
	int			nargs;			/* of the public function */
	bool		secret;			/* takes a password or a token */
	bool		caller_arg;		/* a 0.2 body: the caller as a last oid */
} LifecycleBody;

/* the caller of the innermost body running, InvalidOid outside bodies */
static Oid	current_caller = InvalidOid;

/* the bodies that take a password or a token (kept out of the log) */
static const char *const secret_bodies[] = {
	"do_sign_up", "do_accept_invitation", "do_accept_invitation_and_login",
	"do_verify_email", "do_verify_email_and_login",
	"do_login", "do_change_password", "do_set_password", "do_logout",
	"do_reset_password", "do_reset_password_and_login",
	"do_confirm_email_change", "do_cancel_email_change", "do_refresh_session",
	"do_confirm_totp", "do_remove_factor", "do_regenerate_recovery_codes",
	"do_complete_login", "do_reauthenticate", NULL
};

static bool
is_secret_body(const char *body_name)
{
	int			i;

	for (i = 0; secret_bodies[i] != NULL; i++)
		if (strcmp(body_name, secret_bodies[i]) == 0)
			return true;
	return false;
}

static LifecycleBody *
lookup_body(FunctionCallInfo fcinfo)
{
	Oid			public_oid = fcinfo->flinfo->fn_oid;
	HeapTuple	tup;
	Form_pg_proc proc;
	const char *public_name;
	char	   *body_name;
	Oid			argtypes[FUNC_MAX_ARGS];
	int			nargs;
	Oid			body_oid;
	bool		caller_arg = false;
	LifecycleBody *body;

	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(public_oid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for function %u", public_oid);
	proc = (Form_pg_proc) GETSTRUCT(tup);
	public_name = pstrdup(NameStr(proc->proname));
	nargs = proc->pronargs;
	if (strncmp(public_name, "um_", 3) != 0 || nargs + 1 > FUNC_MAX_ARGS)
		elog(ERROR, "function \"%s\" is not a um lifecycle function", public_name);
	memcpy(argtypes, proc->proargtypes.values, nargs * sizeof(Oid));
	argtypes[nargs] = OIDOID;
	body_name = psprintf("do_%s", public_name + 3);
	ReleaseSysCache(tup);

	/*
	 * The bodies live in um_internal; the SQL of releases before 0.3 kept
	 * them in um (with the caller as a last argument before 0.2), and this
	 * library serves that SQL until ALTER EXTENSION um UPDATE.
	 */
	body_oid = LookupFuncName(list_make2(makeString(UM_INTERNAL_SCHEMA), makeString(body_name)),
							  nargs, argtypes, true);
	if (!OidIsValid(body_oid))
		body_oid = LookupFuncName(list_make2(makeString("um"), makeString(body_name)),
								  nargs, argtypes, true);
	if (!OidIsValid(body_oid))
	{
		body_oid = LookupFuncName(list_make2(makeString("um"), makeString(body_name)),
								  nargs + 1, argtypes, true);
		caller_arg = OidIsValid(body_oid);
	}
	if (!OidIsValid(body_oid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("the body of um function \"%s\" is missing", public_name),
				 errdetail("%s.%s is not in the database.", UM_INTERNAL_SCHEMA, body_name),
				 errhint("Run ALTER EXTENSION um UPDATE so that the SQL matches the installed library.")));

	body = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(LifecycleBody));
	fmgr_info_cxt(body_oid, &body->flinfo, fcinfo->flinfo->fn_mcxt);
	body->flinfo.fn_expr = fcinfo->flinfo->fn_expr;
	body->nargs = nargs;
	body->caller_arg = caller_arg;
	body->secret = is_secret_body(body_name);
	return body;
}

Datum
um_lifecycle_entry(PG_FUNCTION_ARGS)
{
	LifecycleBody *body = (LifecycleBody *) fcinfo->flinfo->fn_extra;
	LOCAL_FCINFO(inner, FUNC_MAX_ARGS);
	Oid			save_caller = current_caller;
	Datum		result;
	int			i;

	if (InSecurityRestrictedOperation())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("cannot change users or organizations within a security-restricted operation"),
				 errdetail("Maintenance commands (ANALYZE, CREATE INDEX, REFRESH MATERIALIZED VIEW, ...) run table owners' code with restricted rights."),
				 errhint("Call um's lifecycle functions from a plain statement.")));

	if (body == NULL)
	{
		body = lookup_body(fcinfo);
		fcinfo->flinfo->fn_extra = body;
	}

	if (body->secret)
		um_session_note_secret();

	InitFunctionCallInfoData(*inner, &body->flinfo, body->nargs + (body->caller_arg ? 1 : 0),
							 fcinfo->fncollation, fcinfo->context, fcinfo->resultinfo);
	for (i = 0; i < body->nargs; i++)
		inner->args[i] = fcinfo->args[i];
	if (body->caller_arg)
	{
		inner->args[body->nargs].value = ObjectIdGetDatum(GetUserId());
		inner->args[body->nargs].isnull = false;
	}

	current_caller = GetUserId();
	PG_TRY();
	{
		result = FunctionCallInvoke(inner);
	}
	PG_FINALLY();
	{
		current_caller = save_caller;
	}
	PG_END_TRY();

	fcinfo->isnull = inner->isnull;
	return result;
}

/*
 * um_internal.caller_role(): the role that called the innermost lifecycle function
 * running, NULL outside them.
 */
Datum
um_caller_role(PG_FUNCTION_ARGS)
{
	if (!OidIsValid(current_caller))
		PG_RETURN_NULL();
	PG_RETURN_OID(current_caller);
}
