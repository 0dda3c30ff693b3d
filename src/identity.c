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
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
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
 * um_identity_init: called from _PG_init.
 */
void
um_identity_init(void)
{
	RegisterXactCallback(identity_xact_callback, NULL);
	RegisterSubXactCallback(identity_subxact_callback, NULL);
}

bool
um_identity_get(int64 *user_id)
{
	if (!cur.set)
		return false;
	*user_id = cur.user_id;
	return true;
}

bool
um_identity_real(int64 *user_id)
{
	if (!cur.set)
		return false;
	*user_id = cur.impersonating ? cur.real_user_id : cur.user_id;
	return true;
}

bool
um_identity_org_allowed(int64 org_id)
{
	int			lo,
				hi;

	if (!cur.impersonating)
		return true;
	lo = 0;
	hi = cur.norgs - 1;
	while (lo <= hi)
	{
		int			mid = lo + (hi - lo) / 2;

		if (cur.orgs[mid] == org_id)
			return true;
		if (cur.orgs[mid] < org_id)
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
	if (!cur.set)
		PG_RETURN_NULL();
	PG_RETURN_INT64(cur.user_id);
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
	if (!cur.set || PG_ARGISNULL(0) || !um_identity_org_allowed(PG_GETARG_INT64(0)))
		PG_RETURN_NULL();
	PG_RETURN_INT64(cur.user_id);
}

/*
 * um_real_user_id(): the person really acting: the impersonator when
 * impersonating, else the acting user; NULL when nobody is acting.
 */
Datum
um_real_user_id(PG_FUNCTION_ARGS)
{
	if (!cur.set)
		PG_RETURN_NULL();
	PG_RETURN_INT64(cur.impersonating ? cur.real_user_id : cur.user_id);
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
	PG_RETURN_BOOL(true);
}

/*
 * um_impersonated_orgs(): the organizations the current impersonation
 * applies to (NULL when not impersonating).
 */
Datum
um_impersonated_orgs(PG_FUNCTION_ARGS)
{
	Datum	   *d;
	int			i;

	if (!cur.impersonating)
		PG_RETURN_NULL();
	d = palloc(sizeof(Datum) * Max(cur.norgs, 1));
	for (i = 0; i < cur.norgs; i++)
		d[i] = Int64GetDatum(cur.orgs[i]);
	PG_RETURN_ARRAYTYPE_P(construct_array(d, cur.norgs, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
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
