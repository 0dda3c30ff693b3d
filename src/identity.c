/*-------------------------------------------------------------------------
 *
 * src/identity.c
 *	  Who is acting: the acting user of the current transaction, and the
 *	  impersonator behind them, if any.
 *
 * The acting user lives in this backend's memory, never in a setting that
 * SQL could SET, and is forgotten when the transaction ends (COMMIT,
 * ROLLBACK, PREPARE TRANSACTION), so a pooled connection never hands one
 * client's identity to the next (DISCARD ALL, which runs outside any
 * transaction block, therefore always finds none).  It is transactional
 * within the transaction too: a change made in a subtransaction that rolls
 * back is undone, like any other change made there.
 *
 * Three ways in, each a function whose EXECUTE privilege says who may use it:
 *	- um_begin(token) (session.c), for everyone: a valid session token;
 *	- um_act_as(user_id), revoked from PUBLIC: the DBA grants it to the
 *	  roles of backends that authenticate users themselves;
 *	- um.start_impersonation(target, orgs), revoked from PUBLIC: called only
 *	  by um_impersonate(), which checks the impersonator's rights first.
 *
 * While impersonating, checks answer as the target, and only in the
 * organizations the impersonation was allowed for; um_real_user_id() names
 * the impersonator, and audit events record both.
 *
 * Parallel workers: the identity also travels, as text, in the setting
 * um.acting_identity, which PostgreSQL copies into every parallel worker of
 * a query; that is what lets the checks be PARALLEL SAFE.  The C variable
 * stays the source of truth in the backend; the setting is written only by
 * this module (SET LOCAL-like, so it is undone with the transaction or a
 * rolled-back subtransaction, exactly as the variable is), its check hook
 * refuses every other attempt to set it (SET, set_config(), ALTER ROLE,
 * a function's SET clause, the configuration files), and only a parallel
 * worker, while it restores its leader's settings, reads it back.
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
	int64	   *orgs;			/* in TopTransactionContext */
} Identity;

static Identity cur;

/*
 * What to restore if a subtransaction that changed the identity aborts:
 * one entry per nesting level that changed it, innermost first, in
 * TopTransactionContext (gone with the transaction).
 */
typedef struct SavedIdentity
{
	int			nest_level;
	Identity	prev;
	struct SavedIdentity *next;
} SavedIdentity;

static SavedIdentity *saved = NULL;

/* um.acting_identity: the identity for parallel workers (see above) */
static char *identity_setting = NULL;
static bool writing_setting = false;

static void
identity_clear(void)
{
	memset(&cur, 0, sizeof(cur));
	saved = NULL;				/* its memory goes with the transaction */
}

/*
 * identity_xact_callback: forget the acting user when the transaction ends,
 * however it ends.
 */
static void
identity_xact_callback(XactEvent event, void *arg)
{
	(void) arg;

	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			identity_clear();
			break;
		default:
			break;
	}
}

/*
 * identity_subxact_callback: undo a change of an aborted subtransaction;
 * hand a committed one's undo record to its parent.
 */
static void
identity_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						  SubTransactionId parentSubid, void *arg)
{
	int			level = GetCurrentTransactionNestLevel();

	(void) mySubid;
	(void) parentSubid;
	(void) arg;
	if (saved == NULL || saved->nest_level < level)
		return;
	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		cur = saved->prev;
		saved = saved->next;
	}
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		if (saved->next != NULL && saved->next->nest_level == level - 1)
			saved = saved->next;	/* the parent already knows what to restore */
		else
			saved->nest_level = level - 1;
	}
}

/*
 * identity_will_change: remember the current identity so that an abort of
 * the current subtransaction restores it.  Call before every change.
 */
static void
identity_will_change(void)
{
	int			level = GetCurrentTransactionNestLevel();

	if (level > 1 && (saved == NULL || saved->nest_level < level))
	{
		SavedIdentity *s = MemoryContextAlloc(TopTransactionContext, sizeof(SavedIdentity));

		s->nest_level = level;
		s->prev = cur;
		s->next = saved;
		saved = s;
	}
}

static void
warn_outside_block(const char *fname)
{
	if (!IsTransactionBlock())
		ereport(WARNING,
				(errcode(ERRCODE_NO_ACTIVE_SQL_TRANSACTION),
				 errmsg("%s outside a transaction block lasts only for this statement", fname),
				 errhint("Call it after BEGIN; the acting user is forgotten at COMMIT or ROLLBACK.")));
}

/*
 * check_identity_setting: only this module, and a parallel worker restoring
 * its leader's settings, may set um.acting_identity.
 */
static bool
check_identity_setting(char **newval, void **extra, GucSource source)
{
	(void) extra;
	if (writing_setting || InitializingParallelWorker || source == PGC_S_DEFAULT)
		return true;
	GUC_check_errcode(ERRCODE_INSUFFICIENT_PRIVILEGE);
	GUC_check_errmsg("um.acting_identity cannot be set");
	GUC_check_errdetail("It carries the acting user to parallel workers and is written only by um.");
	GUC_check_errhint("Use um_begin(token), or um_act_as(user_id) where the DBA allows it.");
	(void) newval;
	return false;
}

/*
 * In a parallel worker the identity is read from um.acting_identity, parsed
 * once per value.  (Not in an assign hook: a worker restores its settings
 * inside a transaction of its own, whose commit would clear the variable.)
 * Format: "" (nobody), "<user>", or "<user>/<real user>/<org>,<org>,..."
 * while impersonating.
 */
static Identity worker_identity;
static const char *worker_parsed_from = NULL;

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

/* the identity checks answer for: the backend's own, or a worker's leader's */
static inline const Identity *
current(void)
{
	if (likely(!IsParallelWorker()))
		return &cur;
	if (identity_setting != worker_parsed_from)
	{
		parse_identity_setting(identity_setting, &worker_identity);
		worker_parsed_from = identity_setting;
	}
	return &worker_identity;
}

/*
 * publish_identity: write the current identity into um.acting_identity,
 * for the rest of the transaction (or until a rolled-back subtransaction).
 */
static void
publish_identity(void)
{
	StringInfoData buf;

	initStringInfo(&buf);
	if (cur.set)
	{
		appendStringInfo(&buf, INT64_FORMAT, cur.user_id);
		if (cur.impersonating)
		{
			int			i;

			appendStringInfo(&buf, "/" INT64_FORMAT "/", cur.real_user_id);
			for (i = 0; i < cur.norgs; i++)
				appendStringInfo(&buf, "%s" INT64_FORMAT, i ? "," : "", cur.orgs[i]);
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
	RegisterXactCallback(identity_xact_callback, NULL);
	RegisterSubXactCallback(identity_subxact_callback, NULL);
	DefineCustomStringVariable("um.acting_identity",
							   "The acting user, as carried to parallel workers (set only by um).",
							   NULL,
							   &identity_setting,
							   "",
							   PGC_SUSET,
							   GUC_NO_SHOW_ALL | GUC_NO_RESET_ALL | GUC_NOT_IN_SAMPLE |
							   GUC_DISALLOW_IN_FILE | GUC_DISALLOW_IN_AUTO_FILE | GUC_SUPERUSER_ONLY,
							   check_identity_setting, NULL, NULL);
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

void
um_identity_set(int64 user_id, const char *fname)
{
	warn_outside_block(fname);
	identity_will_change();
	memset(&cur, 0, sizeof(cur));
	cur.set = true;
	cur.user_id = user_id;
	publish_identity();
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

	if (!um_identity_get(&user_id) || PG_ARGISNULL(0) || !um_identity_org_allowed(PG_GETARG_INT64(0)))
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
 * um.start_impersonation(target bigint, orgs bigint[]): internal, called
 * by um_impersonate() after its checks; EXECUTE is revoked from PUBLIC.
 * The acting user becomes the impersonator; checks answer as the target in
 * the given organizations only.
 */
Datum
um_start_impersonation(PG_FUNCTION_ARGS)
{
	ArrayType  *arr;
	Datum	   *elems;
	bool	   *nulls;
	int			n,
				i,
				k;
	int64	   *orgs;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		elog(ERROR, "um.start_impersonation: NULL argument");
	if (!cur.set || cur.impersonating)
		elog(ERROR, "um.start_impersonation: needs an acting user who is not impersonating");
	arr = PG_GETARG_ARRAYTYPE_P(1);
	deconstruct_array(arr, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &elems, &nulls, &n);
	orgs = MemoryContextAlloc(TopTransactionContext, sizeof(int64) * Max(n, 1));
	for (i = 0, k = 0; i < n; i++)
		if (!nulls[i])
			orgs[k++] = DatumGetInt64(elems[i]);
	qsort(orgs, k, sizeof(int64), cmp_int64);

	warn_outside_block("um_impersonate()");
	identity_will_change();
	cur.real_user_id = cur.user_id;
	cur.user_id = PG_GETARG_INT64(0);
	cur.impersonating = true;
	cur.norgs = k;
	cur.orgs = orgs;
	publish_identity();
	PG_RETURN_VOID();
}

/*
 * um_end_impersonation(): act as oneself again.  Returns whether an
 * impersonation ended.  Anyone may call it: it only gives rights up.
 */
Datum
um_end_impersonation(PG_FUNCTION_ARGS)
{
	if (!cur.impersonating)
		PG_RETURN_BOOL(false);
	identity_will_change();
	cur.user_id = cur.real_user_id;
	cur.real_user_id = 0;
	cur.impersonating = false;
	cur.norgs = 0;
	cur.orgs = NULL;
	publish_identity();
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
 * um.invoker_role(): the role that called in, seen from inside a SECURITY
 * DEFINER function (current_user there is the function's owner; this is
 * the current_user outside it, after any SET ROLE).
 */
Datum
um_invoker_role(PG_FUNCTION_ARGS)
{
	PG_RETURN_OID(GetOuterUserId());
}
