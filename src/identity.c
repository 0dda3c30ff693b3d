/*-------------------------------------------------------------------------
 *
 * src/identity.c
 *	  Who is acting: the acting user of the current transaction.
 *
 * The acting user lives in this backend's memory, never in a setting that
 * SQL could SET, and is forgotten when the transaction ends (COMMIT,
 * ROLLBACK, PREPARE TRANSACTION), so a pooled connection never hands one
 * client's identity to the next.  It is transactional within the
 * transaction too: a um_act_as() in a subtransaction that rolls back is
 * undone, like any other change made there.  For now it is set only by um_act_as(),
 * whose EXECUTE privilege is revoked from PUBLIC: the DBA grants it to the
 * roles of backends that authenticate users themselves.  Sessions, login
 * tokens and impersonation build on this module.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "utils/memutils.h"

#include "um.h"

PG_FUNCTION_INFO_V1(um_act_as);
PG_FUNCTION_INFO_V1(um_current_user_id);

static bool acting_set = false;
static int64 acting_user_id = 0;

/*
 * What to restore if a subtransaction that changed the acting user aborts:
 * one entry per nesting level that called um_act_as(), innermost first, in
 * TopTransactionContext (gone with the transaction).
 */
typedef struct SavedIdentity
{
	int			nest_level;
	bool		prev_set;
	int64		prev_user_id;
	struct SavedIdentity *next;
} SavedIdentity;

static SavedIdentity *saved = NULL;

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
			acting_set = false;
			acting_user_id = 0;
			saved = NULL;		/* its memory goes with the transaction */
			break;
		default:
			break;
	}
}

/*
 * identity_subxact_callback: undo a um_act_as() of an aborted
 * subtransaction; hand a committed one's undo record to its parent.
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
		acting_set = saved->prev_set;
		acting_user_id = saved->prev_user_id;
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
 * um_identity_init: called from _PG_init.
 */
void
um_identity_init(void)
{
	RegisterXactCallback(identity_xact_callback, NULL);
	RegisterSubXactCallback(identity_subxact_callback, NULL);
}

/*
 * um_identity_get: the acting user of this transaction, if any.
 */
bool
um_identity_get(int64 *user_id)
{
	if (!acting_set)
		return false;
	*user_id = acting_user_id;
	return true;
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
	if (!IsTransactionBlock())
		ereport(WARNING,
				(errcode(ERRCODE_NO_ACTIVE_SQL_TRANSACTION),
				 errmsg("um_act_as() outside a transaction block lasts only for this statement"),
				 errhint("Call it after BEGIN; the acting user is forgotten at COMMIT or ROLLBACK.")));
	if (GetCurrentTransactionNestLevel() > 1 &&
		(saved == NULL || saved->nest_level < GetCurrentTransactionNestLevel()))
	{
		SavedIdentity *s = MemoryContextAlloc(TopTransactionContext, sizeof(SavedIdentity));

		s->nest_level = GetCurrentTransactionNestLevel();
		s->prev_set = acting_set;
		s->prev_user_id = acting_user_id;
		s->next = saved;
		saved = s;
	}
	acting_user_id = PG_GETARG_INT64(0);
	acting_set = true;
	PG_RETURN_VOID();
}

/*
 * um_current_user_id(): the acting user, or NULL when nobody is acting.
 */
Datum
um_current_user_id(PG_FUNCTION_ARGS)
{
	int64		user_id;

	if (!um_identity_get(&user_id))
		PG_RETURN_NULL();
	PG_RETURN_INT64(user_id);
}
