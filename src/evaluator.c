/*-------------------------------------------------------------------------
 *
 * src/evaluator.c
 *	  um_has_permission() and its companions for RLS and listing.
 *
 * A check validates the permission name first (an unknown name is an
 * error, never a silent false), then denies for: no user, an unknown,
 * suspended or notification-only user, no organization, and anyone who is
 * not an active member of it.  Otherwise it grants when the permission is in
 * the union of: the member's organization role, organization-wide grants to
 * them or their teams, and, for a scope node, grants on that node or on its
 * ancestors up to the nearest node that breaks inheritance (by node, by
 * kind, or through a team whose space it is), all closed over role
 * inclusions and wildcards.  The bitmaps come from the cache (cache.c).
 *
 * Markings, chosen deliberately (see also sql/install/70_evaluator.sql):
 *	- STABLE: no writes, and within a statement the same arguments give the
 *	  same answer unless a concurrent change commits, as for PostgreSQL's
 *	  own has_*_privilege() functions, which read the catalog caches.  Not
 *	  IMMUTABLE: answers change when the tables do.
 *	- not STRICT: a NULL user or organization is a deny (false), not NULL,
 *	  so that NOT um_has_permission(...) can never turn a NULL into access.
 *	- PARALLEL SAFE: every process (a parallel worker too) keeps its own
 *	  cache, loaded with the query's snapshot in parallel mode, and the
 *	  acting user reaches workers through um.acting_identity (identity.c).
 *	- not LEAKPROOF: the error for an invalid permission quotes the name.
 *
 * While impersonating, the acting-user forms answer as the target but
 * deny in every organization the impersonation was not allowed for.
 *
 * A per-call-site memo (fn_extra) keeps the last permission id and member
 * entry (with its organization-wide bitmap), valid for one cache
 * generation, so a warm check is a generation compare and a bit test.  The
 * entries themselves are cache.c's; this file reaches them only through
 * the functions um.h declares.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "um.h"

PG_FUNCTION_INFO_V1(um_has_permission_acting);
PG_FUNCTION_INFO_V1(um_has_permission_user);
PG_FUNCTION_INFO_V1(um_permitted_orgs_acting);
PG_FUNCTION_INFO_V1(um_permitted_orgs_user);
PG_FUNCTION_INFO_V1(um_permitted_scopes_acting);
PG_FUNCTION_INFO_V1(um_permitted_scopes_user);

typedef struct CallMemo
{
	uint64		generation;
	int			perm_len;		/* -1: no permission remembered */
	char		perm[UM_PERMNAME_MAX];
	int			perm_id;
	bool		have_member;
	int64		user_id;
	int64		org_id;
	const UmMember *member;		/* NULL: denied (user or membership not active) */
	const uint64 *baseline;		/* the member's organization-wide permissions */
	/* um_permitted_orgs: the last answer, for a policy that calls it per row */
	bool		have_orgs;
	uint64		orgs_generation;
	uint64		orgs_identity;
	bool		orgs_has_user;
	int64		orgs_user_id;
	int			orgs_perm_id;
	ArrayType  *orgs;			/* in fn_mcxt */
} CallMemo;

static CallMemo *
get_memo(FunctionCallInfo fcinfo)
{
	CallMemo   *memo = (CallMemo *) fcinfo->flinfo->fn_extra;

	if (memo == NULL)
	{
		memo = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(CallMemo));
		memo->perm_len = -1;
		fcinfo->flinfo->fn_extra = memo;
	}
	return memo;
}

/* begin one attempt: the memo is only good for the generation it was made in */
static uint64
attempt_begin(CallMemo *memo)
{
	uint64		gen = um_cache_begin();

	if (memo->generation != gen)
	{
		memo->generation = gen;
		memo->perm_len = -1;
		memo->have_member = false;
	}
	return gen;
}

static int
memo_perm(CallMemo *memo, text *perm)
{
	const char *p = VARDATA_ANY(perm);
	size_t		len = VARSIZE_ANY_EXHDR(perm);
	int			id;

	if (memo->perm_len == (int) len && memcmp(memo->perm, p, len) == 0)
		return memo->perm_id;
	id = um_cache_perm_id(p, len);	/* validates: len <= UM_PERMNAME_MAX */
	memcpy(memo->perm, p, len);
	memo->perm_len = (int) len;
	memo->perm_id = id;
	return id;
}

/*
 * the member entry, or NULL when the user may not act in the organization;
 * memo->baseline is then its organization-wide bitmap
 */
static const UmMember *
memo_member(CallMemo *memo, int64 user_id, int64 org_id)
{
	const UmMember *m;

	if (memo->have_member && memo->user_id == user_id && memo->org_id == org_id)
		return memo->member;
	m = um_cache_active_member(user_id, org_id);
	memo->have_member = true;
	memo->user_id = user_id;
	memo->org_id = org_id;
	memo->member = m;
	memo->baseline = m != NULL ? um_cache_member_baseline(m) : NULL;
	return m;
}

/*
 * check: the answer for one (user, permission, organization[, scope]).
 */
static bool
check(FunctionCallInfo fcinfo, bool has_user, int64 user_id, text *perm,
	  bool has_org, int64 org_id, bool has_scope, int64 scope_id)
{
	CallMemo   *memo = get_memo(fcinfo);
	int			attempt;

	for (attempt = 1;; attempt++)
	{
		uint64		gen = attempt_begin(memo);
		int			perm_id = memo_perm(memo, perm);
		bool		result = false;

		if (has_user && has_org)
		{
			const UmMember *m = memo_member(memo, user_id, org_id);

			if (m != NULL)
			{
				if (has_scope)
				{
					const uint64 *bits = um_cache_scope_bits(m, scope_id);

					result = bits != NULL && um_bit(bits, perm_id);
				}
				else
					result = um_bit(memo->baseline, perm_id);
			}
		}
		if (um_cache_attempt_done(gen, attempt))
			return result;
	}
}

/*
 * um_has_permission(permission text, org_id bigint [, scope_id bigint]):
 * for the acting user.
 */
Datum
um_has_permission_acting(PG_FUNCTION_ARGS)
{
	int64		user_id = 0;
	bool		has_user;
	bool		has_scope = PG_NARGS() > 2 && !PG_ARGISNULL(2);

	if (PG_ARGISNULL(0))
		PG_RETURN_BOOL(false);
	has_user = um_identity_get_in(!PG_ARGISNULL(1), PG_ARGISNULL(1) ? 0 : PG_GETARG_INT64(1), &user_id);
	if (has_user && !PG_ARGISNULL(1))
		um_session_check_assurance(user_id, PG_GETARG_INT64(1));
	if (PG_NARGS() > 2 && PG_ARGISNULL(2))
	{
		/* a NULL scope node is a deny, after the name is validated */
		(void) check(fcinfo, false, 0, PG_GETARG_TEXT_PP(0), false, 0, false, 0);
		PG_RETURN_BOOL(false);
	}
	PG_RETURN_BOOL(check(fcinfo, has_user, user_id, PG_GETARG_TEXT_PP(0),
						 !PG_ARGISNULL(1), PG_ARGISNULL(1) ? 0 : PG_GETARG_INT64(1),
						 has_scope, has_scope ? PG_GETARG_INT64(2) : 0));
}

/*
 * um_has_permission(user_id bigint, permission text, org_id bigint
 * [, scope_id bigint]): for any user, for administrators and reports.
 */
Datum
um_has_permission_user(PG_FUNCTION_ARGS)
{
	bool		has_scope = PG_NARGS() > 3 && !PG_ARGISNULL(3);

	if (PG_ARGISNULL(1))
		PG_RETURN_BOOL(false);
	if (PG_NARGS() > 3 && PG_ARGISNULL(3))
	{
		(void) check(fcinfo, false, 0, PG_GETARG_TEXT_PP(1), false, 0, false, 0);
		PG_RETURN_BOOL(false);
	}
	PG_RETURN_BOOL(check(fcinfo, !PG_ARGISNULL(0), PG_ARGISNULL(0) ? 0 : PG_GETARG_INT64(0),
						 PG_GETARG_TEXT_PP(1),
						 !PG_ARGISNULL(2), PG_ARGISNULL(2) ? 0 : PG_GETARG_INT64(2),
						 has_scope, has_scope ? PG_GETARG_INT64(3) : 0));
}

static int
cmp_int64(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return (x > y) - (x < y);
}

static Datum
int8_array(int64 *ids, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * Max(n, 1));
	int			i;

	if (n > 1)
		qsort(ids, n, sizeof(int64), cmp_int64);
	for (i = 0; i < n; i++)
		d[i] = Int64GetDatum(ids[i]);
	return PointerGetDatum(construct_array(d, n, INT8OID, sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

/*
 * orgs_holding: the organizations where the user holds perm_id
 * organization-wide (for the acting forms, only those the identity
 * reaches), unsorted, in *ids (NULL when none); returns how many
 */
static int
orgs_holding(int64 user_id, int perm_id, bool acting, int64 **ids)
{
	const int64 *orgs;
	int			norgs = um_cache_user_orgs(user_id, &orgs);
	int			n = 0;
	int			i;

	*ids = norgs > 0 ? palloc(sizeof(int64) * norgs) : NULL;
	for (i = 0; i < norgs; i++)
	{
		const uint64 *bits = um_cache_member_bits(user_id, orgs[i]);

		if (bits != NULL && um_bit(bits, perm_id) &&
			(!acting || (um_identity_org_allowed(orgs[i]) && !um_session_blocks_org(user_id, orgs[i]))))
			(*ids)[n++] = orgs[i];
	}
	return n;
}

/*
 * permitted_orgs: the organizations where the user holds the permission
 * organization-wide, sorted: for policies written org_id = ANY (...).
 */
static Datum
permitted_orgs(FunctionCallInfo fcinfo, bool has_user, int64 user_id, text *perm,
			   bool acting)
{
	CallMemo   *memo = get_memo(fcinfo);
	int			attempt;

	for (attempt = 1;; attempt++)
	{
		uint64		gen = attempt_begin(memo);
		int			perm_id = memo_perm(memo, perm);
		int64	   *ids = NULL;
		int			n = 0;
		Datum		result;

		/* the same question as last time at this call site: the same answer */
		if (memo->have_orgs && memo->orgs_generation == gen && memo->orgs_perm_id == perm_id &&
			memo->orgs_has_user == has_user && memo->orgs_user_id == user_id &&
			memo->orgs_identity == (acting ? um_identity_version() : 0))
			return PointerGetDatum(DatumGetArrayTypePCopy(PointerGetDatum(memo->orgs)));

		if (has_user)
			n = orgs_holding(user_id, perm_id, acting, &ids);
		if (um_cache_attempt_done(gen, attempt))
		{
			MemoryContext old;

			result = int8_array(ids, n);
			old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
			if (memo->orgs != NULL)
				pfree(memo->orgs);
			memo->orgs = DatumGetArrayTypePCopy(result);
			MemoryContextSwitchTo(old);
			memo->have_orgs = true;
			memo->orgs_generation = gen;
			memo->orgs_perm_id = perm_id;
			memo->orgs_has_user = has_user;
			memo->orgs_user_id = user_id;
			memo->orgs_identity = acting ? um_identity_version() : 0;
			return result;
		}
	}
}

/*
 * um_evaluator_orgs_now: what um_permitted_orgs([user,] perm) would list
 * now, for the planner's estimates (planner.c); false when it could not
 * tell without an error (an invalid or unknown permission).  acting: the
 * acting user's form (user_id is then ignored).
 */
bool
um_evaluator_orgs_now(bool acting, int64 user_id, const char *perm, size_t len,
					  int64 **ids_out, int *n_out)
{
	bool		has_user = true;
	int			attempt;

	if (acting)
		has_user = um_identity_get(&user_id);
	for (attempt = 1;; attempt++)
	{
		uint64		gen = um_cache_begin();
		int			perm_id = um_cache_perm_id_known(perm, len);
		int64	   *ids = NULL;
		int			n = 0;

		if (perm_id < 0)
			return false;
		if (has_user)
			n = orgs_holding(user_id, perm_id, acting, &ids);
		if (um_cache_attempt_done(gen, attempt))
		{
			if (n > 1)
				qsort(ids, n, sizeof(int64), cmp_int64);
			*ids_out = ids;
			*n_out = n;
			return true;
		}
	}
}

/*
 * um_evaluator_function: which of the evaluator's functions funcid calls
 * (by the C function it runs, so in whatever schema um is installed)
 */
UmEvalFunction
um_evaluator_function(Oid funcid)
{
	FmgrInfo	fi;

	fmgr_info(funcid, &fi);
	if (fi.fn_addr == um_permitted_orgs_acting)
		return UM_EVAL_PERMITTED_ORGS_ACTING;
	if (fi.fn_addr == um_permitted_orgs_user)
		return UM_EVAL_PERMITTED_ORGS_USER;
	if (fi.fn_addr == um_has_permission_acting)
		return UM_EVAL_HAS_PERMISSION_ACTING;
	if (fi.fn_addr == um_has_permission_user)
		return UM_EVAL_HAS_PERMISSION_USER;
	return UM_EVAL_OTHER;
}

/*
 * permitted_scopes: the scope nodes of an organization where the user holds
 * the permission (all of them when it is held organization-wide), sorted.
 */
static Datum
permitted_scopes(FunctionCallInfo fcinfo, bool has_user, int64 user_id, text *perm,
				 bool has_org, int64 org_id)
{
	CallMemo   *memo = get_memo(fcinfo);
	int			attempt;

	for (attempt = 1;; attempt++)
	{
		uint64		gen = attempt_begin(memo);
		int			perm_id = memo_perm(memo, perm);
		int64	   *ids = NULL;
		int			n = 0;

		if (has_user && has_org)
		{
			const UmMember *m = memo_member(memo, user_id, org_id);

			if (m != NULL)
			{
				const int64 *scope_ids;
				int			nscopes = um_cache_org_scope_ids(org_id, &scope_ids);
				int			i;

				ids = palloc(sizeof(int64) * Max(nscopes, 1));
				for (i = 0; i < nscopes; i++)
				{
					const uint64 *bits = um_cache_scope_bits(m, scope_ids[i]);

					if (bits != NULL && um_bit(bits, perm_id))
						ids[n++] = scope_ids[i];
				}
			}
		}
		if (um_cache_attempt_done(gen, attempt))
			return int8_array(ids, n);
	}
}

/* um_permitted_orgs(permission text) for the acting user */
Datum
um_permitted_orgs_acting(PG_FUNCTION_ARGS)
{
	int64		user_id = 0;
	bool		has_user = um_identity_get(&user_id);

	if (PG_ARGISNULL(0))
		PG_RETURN_DATUM(int8_array(NULL, 0));
	PG_RETURN_DATUM(permitted_orgs(fcinfo, has_user, user_id, PG_GETARG_TEXT_PP(0), true));
}

/* um_permitted_orgs(user_id bigint, permission text) */
Datum
um_permitted_orgs_user(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(1))
		PG_RETURN_DATUM(int8_array(NULL, 0));
	PG_RETURN_DATUM(permitted_orgs(fcinfo, !PG_ARGISNULL(0),
								   PG_ARGISNULL(0) ? 0 : PG_GETARG_INT64(0),
								   PG_GETARG_TEXT_PP(1), false));
}

/* um_permitted_scopes(permission text, org_id bigint) for the acting user */
Datum
um_permitted_scopes_acting(PG_FUNCTION_ARGS)
{
	int64		user_id = 0;
	bool		has_user = um_identity_get_in(!PG_ARGISNULL(1), PG_ARGISNULL(1) ? 0 : PG_GETARG_INT64(1), &user_id);

	if (PG_ARGISNULL(0))
		PG_RETURN_DATUM(int8_array(NULL, 0));
	if (has_user && !PG_ARGISNULL(1))
		um_session_check_assurance(user_id, PG_GETARG_INT64(1));
	PG_RETURN_DATUM(permitted_scopes(fcinfo, has_user, user_id, PG_GETARG_TEXT_PP(0),
									 !PG_ARGISNULL(1), PG_ARGISNULL(1) ? 0 : PG_GETARG_INT64(1)));
}

/* um_permitted_scopes(user_id bigint, permission text, org_id bigint) */
Datum
um_permitted_scopes_user(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(1))
		PG_RETURN_DATUM(int8_array(NULL, 0));
	PG_RETURN_DATUM(permitted_scopes(fcinfo, !PG_ARGISNULL(0),
									 PG_ARGISNULL(0) ? 0 : PG_GETARG_INT64(0),
									 PG_GETARG_TEXT_PP(1),
									 !PG_ARGISNULL(2), PG_ARGISNULL(2) ? 0 : PG_GETARG_INT64(2)));
}
