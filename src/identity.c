/*-------------------------------------------------------------------------
 *
 * src/identity.c
 *	  Who is acting: the acting user of the current transaction, and the
 *	  impersonator behind them, if any.
 *
 * The acting user is held in the setting um.acting_identity, which only
 * this module can write: its check hook refuses SET, SET LOCAL,
 * set_config(), ALTER ROLE/DATABASE ... SET, a function's SET clause, the
 * configuration files and a placeholder set before the module is loaded.
 * The module writes it as SET LOCAL would, so PostgreSQL itself forgets it
 * when the transaction ends (COMMIT, ROLLBACK, PREPARE TRANSACTION), undoes
 * it with a rolled-back subtransaction, and with any other command that
 * rolls its settings back; a pooled connection never hands one client's
 * identity to the next (DISCARD ALL, outside any transaction block, always
 * finds none).  Being a setting, it is also copied into every parallel
 * worker of a query, which is what lets the checks be PARALLEL SAFE; and
 * since the setting is the only record, a backend and its workers can never
 * disagree about who is acting.  (A superuser's RESET only clears it.)
 *
 * Three ways in, each a function whose EXECUTE privilege says who may use it:
 *	- um_begin(token) (session.c), for everyone: a valid session token;
 *	- um_act_as(user_id), revoked from PUBLIC: the DBA grants it to the
 *	  roles of backends that authenticate users themselves;
 *	- um_internal.start_impersonation(target, orgs), revoked from PUBLIC: called only
 *	  by um_impersonate(), which checks the impersonator's rights first.
 *
 * While impersonating, checks answer as the target, and only in the
 * organizations the impersonation was allowed for; um_real_user_id() names
 * the impersonator, and audit events record both.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/parallel.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "um.h"

PG_FUNCTION_INFO_V1(um_act_as);
PG_FUNCTION_INFO_V1(um_current_user_id);
PG_FUNCTION_INFO_V1(um_current_user_id_in);
PG_FUNCTION_INFO_V1(um_real_user_id);
PG_FUNCTION_INFO_V1(um_start_impersonation);
PG_FUNCTION_INFO_V1(um_end_impersonation);
PG_FUNCTION_INFO_V1(um_impersonated_orgs);
PG_FUNCTION_INFO_V1(um_invoker_role);

typedef struct Identity
{
	bool		set;			/* is anybody acting? */
	int64		user_id;		/* who checks answer for */
	bool		impersonating;
	int64		real_user_id;	/* the impersonator, when impersonating */
	int			norgs;			/* impersonation: where it applies, sorted */
	int64	   *orgs;			/* in TopMemoryContext */
} Identity;

/* um.acting_identity, and whether this module is the one writing it */
static char *identity_setting = NULL;
static bool writing_setting = false;

/*
 * The setting parsed: redone whenever the setting changes (the assign hook
 * counts changes, so a reverted value is parsed again even if its string
 * happens to sit where an earlier one did).
 */
static uint64 setting_changes = 1;
static uint64 parsed_changes = 0;
static Identity parsed;

/*
 * check_identity_setting: only this module, and a parallel worker restoring
 * its leader's settings, may set um.acting_identity.
 */
static bool
check_identity_setting(char **newval, void **extra, GucSource source)
{
	(void) extra;
	(void) newval;
	if (writing_setting || InitializingParallelWorker || source == PGC_S_DEFAULT)
		return true;
	GUC_check_errcode(ERRCODE_INSUFFICIENT_PRIVILEGE);
	GUC_check_errmsg("um.acting_identity cannot be set");
	GUC_check_errdetail("It holds the acting user and is written only by um.");
	GUC_check_errhint("Use um_begin(token), or um_act_as(user_id) where the DBA allows it.");
	return false;
}

static void
assign_identity_setting(const char *newval, void *extra)
{
	(void) newval;
	(void) extra;
	setting_changes++;
}

/*
 * parse: "" (nobody), "<user>", or "<user>/<real user>/<org>,<org>,..."
 * while impersonating (orgs sorted).
 */
static void
parse_identity_setting(const char *p, Identity *id)
{
	char	   *end;

	if (id->orgs != NULL)
		pfree(id->orgs);
	memset(id, 0, sizeof(Identity));
	if (p == NULL || *p == '\0')
		return;
	id->user_id = strtoi64(p, &end, 10);
	id->set = true;
	if (*end != '/')
		return;
	id->impersonating = true;
	id->real_user_id = strtoi64(end + 1, &end, 10);
	if (*end != '/')
		return;
	p = end + 1;
	{
		int			n = 1;
		const char *q;

		for (q = p; *q; q++)
			if (*q == ',')
				n++;
		id->orgs = MemoryContextAlloc(TopMemoryContext, sizeof(int64) * n);
		while (*p)
		{
			id->orgs[id->norgs++] = strtoi64(p, &end, 10);
			if (*end != ',')
				break;
			p = end + 1;
		}
	}
}

/* the identity checks answer for */
static inline const Identity *
current(void)
{
	if (unlikely(parsed_changes != setting_changes))
	{
		parse_identity_setting(identity_setting, &parsed);
		parsed_changes = setting_changes;
	}
	return &parsed;
}

/*
 * publish: write a new identity into um.acting_identity, until the end of
 * the transaction (or of the subtransaction or command that rolls it back).
 */
static void
publish(const Identity *id, const char *fname)
{
	StringInfoData buf;

	if (!IsTransactionBlock())
		ereport(WARNING,
				(errcode(ERRCODE_NO_ACTIVE_SQL_TRANSACTION),
				 errmsg("%s outside a transaction block lasts only for this statement", fname),
				 errhint("Call it after BEGIN; the acting user is forgotten at COMMIT or ROLLBACK.")));
	initStringInfo(&buf);
	if (id->set)
	{
		appendStringInfo(&buf, INT64_FORMAT, id->user_id);
		if (id->impersonating)
		{
			int			i;

			appendStringInfo(&buf, "/" INT64_FORMAT "/", id->real_user_id);
			for (i = 0; i < id->norgs; i++)
				appendStringInfo(&buf, "%s" INT64_FORMAT, i ? "," : "", id->orgs[i]);
		}
	}
	writing_setting = true;
	PG_TRY();
	{
		(void) set_config_option("um.acting_identity", buf.data, PGC_SUSET, PGC_S_SESSION,
								 GUC_ACTION_LOCAL, true, 0, false);
	}
	PG_FINALLY();
	{
		writing_setting = false;
	}
	PG_END_TRY();
	pfree(buf.data);
}

/*
 * um_identity_init: called from _PG_init.
 */
void
um_identity_init(void)
{
	DefineCustomStringVariable("um.acting_identity",
							   "The acting user of the transaction (written only by um).",
							   NULL,
							   &identity_setting,
							   "",
							   PGC_SUSET,
							   GUC_NO_SHOW_ALL | GUC_NO_RESET_ALL | GUC_NOT_IN_SAMPLE |
							   GUC_DISALLOW_IN_FILE | GUC_DISALLOW_IN_AUTO_FILE | GUC_SUPERUSER_ONLY
#ifdef GUC_NO_RESET
							   | GUC_NO_RESET
#endif
							   ,
							   check_identity_setting, assign_identity_setting, NULL);
}

uint64
um_identity_version(void)
{
	return setting_changes;
}

bool
um_identity_get(int64 *user_id)
{
	const Identity *id = current();

	if (!id->set)
		return false;
	*user_id = id->user_id;
	return true;
}

bool
um_identity_real(int64 *user_id)
{
	const Identity *id = current();

	if (!id->set)
		return false;
	*user_id = id->impersonating ? id->real_user_id : id->user_id;
	return true;
}

bool
um_identity_org_allowed(int64 org_id)
{
	const Identity *id = current();
	int			lo,
				hi;

	if (!id->impersonating)
		return true;
	lo = 0;
	hi = id->norgs - 1;
	while (lo <= hi)
	{
		int			mid = lo + (hi - lo) / 2;

		if (id->orgs[mid] == org_id)
			return true;
		if (id->orgs[mid] < org_id)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return false;
}

bool
um_identity_get_in(bool has_org, int64 org_id, int64 *user_id)
{
	if (!um_identity_get(user_id))
		return false;
	/* NULL organization: the caller denies anyway; no impersonation check needed */
	return !has_org || um_identity_org_allowed(org_id);
}

void
um_identity_set(int64 user_id, const char *fname)
{
	Identity	id;

	memset(&id, 0, sizeof(id));
	id.set = true;
	id.user_id = user_id;
	publish(&id, fname);
}

/*
 * um_act_as(user_id bigint): make user_id the acting user until the end of
 * the current transaction.  Whether the user may do anything is for the
 * evaluator to say: an unknown or suspended user holds no permission.
 */
Datum
um_act_as(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_UM_UNKNOWN_USER),
				 errmsg("the acting user cannot be NULL"),
				 errhint("Pass the id of a user in um.users.")));
	um_identity_set(PG_GETARG_INT64(0), "um_act_as()");
	PG_RETURN_VOID();
}

/*
 * um_current_user_id(): the acting user (the target, when impersonating),
 * or NULL when nobody is acting.
 */
Datum
um_current_user_id(PG_FUNCTION_ARGS)
{
	int64		user_id;

	if (!um_identity_get(&user_id))
		PG_RETURN_NULL();
	PG_RETURN_INT64(user_id);
}

/*
 * um_current_user_id(org_id bigint): the acting user, if checks for them
 * reach this organization: while impersonating, NULL outside the
 * organizations the impersonation is for.  For policies that compare an
 * owner column with the acting user.
 */
Datum
um_current_user_id_in(PG_FUNCTION_ARGS)
{
	int64		user_id;

	if (PG_ARGISNULL(0) || !um_identity_get_in(true, PG_GETARG_INT64(0), &user_id))
		PG_RETURN_NULL();
	/* an organization that requires a second factor has nobody acting for a level-1 session */
	if (um_session_blocks_org(user_id, PG_GETARG_INT64(0)))
		PG_RETURN_NULL();
	PG_RETURN_INT64(user_id);
}

/*
 * um_real_user_id(): the person really acting: the impersonator when
 * impersonating, else the acting user; NULL when nobody is acting.
 */
Datum
um_real_user_id(PG_FUNCTION_ARGS)
{
	int64		user_id;

	if (!um_identity_real(&user_id))
		PG_RETURN_NULL();
	PG_RETURN_INT64(user_id);
}

static int
cmp_int64(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return (x > y) - (x < y);
}

/*
 * um_internal.start_impersonation(target bigint, orgs bigint[]): internal, called
 * by um_impersonate() after its checks; EXECUTE is revoked from PUBLIC.
 * The acting user becomes the impersonator; checks answer as the target in
 * the given organizations only.
 */
Datum
um_start_impersonation(PG_FUNCTION_ARGS)
{
	const Identity *now = current();
	Identity	id;
	ArrayType  *arr;
	Datum	   *elems;
	bool	   *nulls;
	int			n,
				i;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		elog(ERROR, "um_internal.start_impersonation: NULL argument");
	if (!now->set || now->impersonating)
		elog(ERROR, "um_internal.start_impersonation: needs an acting user who is not impersonating");
	arr = PG_GETARG_ARRAYTYPE_P(1);
	deconstruct_array(arr, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &elems, &nulls, &n);
	memset(&id, 0, sizeof(id));
	id.orgs = palloc(sizeof(int64) * Max(n, 1));
	for (i = 0; i < n; i++)
		if (!nulls[i])
			id.orgs[id.norgs++] = DatumGetInt64(elems[i]);
	qsort(id.orgs, id.norgs, sizeof(int64), cmp_int64);
	id.set = true;
	id.impersonating = true;
	id.real_user_id = now->user_id;
	id.user_id = PG_GETARG_INT64(0);
	publish(&id, "um_impersonate()");
	PG_RETURN_VOID();
}

/*
 * um_end_impersonation(): act as oneself again.  Returns whether an
 * impersonation ended.  Anyone may call it: it only gives rights up.
 */
Datum
um_end_impersonation(PG_FUNCTION_ARGS)
{
	const Identity *now = current();
	Identity	id;

	if (!now->impersonating)
		PG_RETURN_BOOL(false);
	memset(&id, 0, sizeof(id));
	id.set = true;
	id.user_id = now->real_user_id;
	publish(&id, "um_end_impersonation()");
	PG_RETURN_BOOL(true);
}

/*
 * um_impersonated_orgs(): the organizations the current impersonation
 * applies to (NULL when not impersonating).
 */
Datum
um_impersonated_orgs(PG_FUNCTION_ARGS)
{
	const Identity *id = current();
	Datum	   *d;
	int			i;

	if (!id->impersonating)
		PG_RETURN_NULL();
	d = palloc(sizeof(Datum) * Max(id->norgs, 1));
	for (i = 0; i < id->norgs; i++)
		d[i] = Int64GetDatum(id->orgs[i]);
	PG_RETURN_ARRAYTYPE_P(construct_array(d, id->norgs, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

/*
 * (Since 0.3 no SQL function is declared over this: every privileged entry
 * is src/lifecycle.c's, which passes its caller to the body.  The symbol
 * stays for the 0.1 and 0.2 install scripts, whose CREATE FUNCTION looks it
 * up, which upgrades run before 0.2--0.3 drops the function.)
 *
 * um.invoker_role(): the role that called in, seen from inside a SECURITY
 * DEFINER function (current_user there is the function's owner; this is
 * the current_user outside it, after any SET ROLE).  Refused inside a
 * security-restricted operation (an index expression or materialized view
 * run by VACUUM, ANALYZE, REFRESH ...): there the outer role is whoever
 * started the maintenance, not the code that is running.
 */
Datum
um_invoker_role(PG_FUNCTION_ARGS)
{
	if (InSecurityRestrictedOperation())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("um administration cannot run inside a security-restricted operation"),
				 errhint("Call it directly, not from an index expression, a materialized view or similar maintenance code.")));
	PG_RETURN_OID(GetOuterUserId());
}
