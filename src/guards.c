/*-------------------------------------------------------------------------
 *
 * src/guards.c
 *	  The escalation and impersonation decisions, over the cache's bitmaps.
 *
 * Nobody hands out a permission they lack, and nobody impersonates someone
 * who holds more than they do.  Both questions compare permission sets,
 * which the cache already holds as bitmaps (cache.c): what a role grants,
 * closed over inclusions and wildcards, and what a member holds at the
 * organization or at a scope node.  So each is one pass of AND-NOT over
 * those bitmaps, answered with the same entries, rules and snapshot as
 * um_has_permission, instead of one check per catalog permission.
 *
 *	um.role_grants(role)                          what a role grants
 *	um.lacking_permissions(actor, org, scope, p)  which of p the actor lacks
 *	um.impersonation_escalates(imp, target, org)  does the target hold more?
 *
 * Like every check, each call retries from an emptied cache when the cache
 * generation moves while it reads (a change was processed meanwhile).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/tuplestore.h"

#include "um.h"

PG_FUNCTION_INFO_V1(um_role_grants);
PG_FUNCTION_INFO_V1(um_lacking_permissions);
PG_FUNCTION_INFO_V1(um_impersonation_escalates);

/* the organization of a role, read as um's owner; false when there is none */
static bool
role_org(int64 role_id, int64 *org_id)
{
	UmRunAs		ra;
	Oid			argtypes[1] = {INT8OID};
	Datum		args[1];
	bool		found = false;

	args[0] = Int64GetDatum(role_id);
	um_run_as_begin(&ra, um_owner(), false);
	if (SPI_execute_with_args("SELECT r.org_id FROM um.roles r WHERE r.id = $1",
							  1, argtypes, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "um: role lookup failed");
	if (SPI_processed > 0)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
		{
			*org_id = DatumGetInt64(d);
			found = true;
		}
	}
	um_run_as_end(&ra);
	return found;
}

/*
 * um.role_grants(role_id bigint) RETURNS SETOF text: every catalog
 * permission the role grants, its own and those of the roles it includes,
 * patterns expanded; in the byte order of the names.  Nothing for an
 * unknown role.
 */
Datum
um_role_grants(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int64		org_id;
	Datum	   *names = NULL;
	int			n = 0;
	int			i;

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	if (PG_ARGISNULL(0) || !role_org(PG_GETARG_INT64(0), &org_id))
		return (Datum) 0;
	for (int attempt = 1;; attempt++)
	{
		uint64		gen = um_cache_begin();
		const uint64 *bits = um_cache_role_bits(org_id, PG_GETARG_INT64(0));
		int			nperms = um_cache_perm_count();

		names = palloc(sizeof(Datum) * Max(nperms, 1));
		n = 0;
		if (bits != NULL)
			for (i = 0; i < nperms; i++)
				if (um_bit(bits, i))
					names[n++] = CStringGetTextDatum(um_cache_perm_name(i));
		if (um_cache_attempt_done(gen, attempt))
			break;
	}
	for (i = 0; i < n; i++)
	{
		bool		isnull = false;

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &names[i], &isnull);
	}
	return (Datum) 0;
}

/* what a user holds in an organization (at a scope node when has_scope);
 * NULL when nothing: not an active member, or a node of another organization */
static const uint64 *
held_bits(int64 user_id, int64 org_id, bool has_scope, int64 scope_id)
{
	const UmMember *m = um_cache_active_member(user_id, org_id);

	if (m == NULL)
		return NULL;
	return has_scope ? um_cache_scope_bits(m, scope_id) : um_cache_member_baseline(m);
}

/*
 * um.lacking_permissions(actor bigint, org_id bigint, scope_id bigint,
 * permissions text[]) RETURNS text[]: those of the permissions the actor
 * does not hold in the organization (at the scope node when one is given),
 * in the order given; exactly those for which um_has_permission(actor, p,
 * org[, scope]) is false.  A name that is invalid or not in the catalog
 * raises UM010 / UM011, as a check would.
 */
Datum
um_lacking_permissions(PG_FUNCTION_ARGS)
{
	bool		known = !PG_ARGISNULL(0) && !PG_ARGISNULL(1);
	int64		actor = known ? PG_GETARG_INT64(0) : 0;
	int64		org_id = known ? PG_GETARG_INT64(1) : 0;
	bool		has_scope = !PG_ARGISNULL(2);
	int64		scope_id = has_scope ? PG_GETARG_INT64(2) : 0;
	Datum	   *elems;
	bool	   *nulls;
	int			nelems;
	Datum	   *lacking;
	int			n = 0;

	if (PG_ARGISNULL(3))
		PG_RETURN_NULL();
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(3), TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &nelems);
	lacking = palloc(sizeof(Datum) * Max(nelems, 1));
	for (int attempt = 1;; attempt++)
	{
		uint64		gen = um_cache_begin();
		const uint64 *bits = known ? held_bits(actor, org_id, has_scope, scope_id) : NULL;

		n = 0;
		for (int i = 0; i < nelems; i++)
		{
			text	   *name;
			int			id;

			if (nulls[i])
				continue;
			name = DatumGetTextPP(elems[i]);
			id = um_cache_perm_id(VARDATA_ANY(name), VARSIZE_ANY_EXHDR(name));
			if (bits == NULL || !um_bit(bits, id))
				lacking[n++] = elems[i];
		}
		if (um_cache_attempt_done(gen, attempt))
			break;
	}
	PG_RETURN_ARRAYTYPE_P(construct_array(lacking, n, TEXTOID, -1, false, TYPALIGN_INT));
}

/* does a hold anything b does not (b NULL: nothing)? */
static bool
holds_more(const uint64 *a, const uint64 *b, int nwords)
{
	if (a == NULL)
		return false;
	for (int w = 0; w < nwords; w++)
		if ((a[w] & ~(b != NULL ? b[w] : 0)) != 0)
			return true;
	return false;
}

/*
 * um.impersonation_escalates(impersonator bigint, target bigint, org_id
 * bigint) RETURNS boolean: does the target hold, in the organization or at
 * any of its scope nodes, a permission the impersonator does not hold
 * there?  Acting as such a target would lend the impersonator more than
 * they have.  True (refuse) when an argument is NULL.
 */
Datum
um_impersonation_escalates(PG_FUNCTION_ARGS)
{
	int64		imp,
				target,
				org_id;
	bool		result;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		PG_RETURN_BOOL(true);	/* nothing to compare with: refuse */
	imp = PG_GETARG_INT64(0);
	target = PG_GETARG_INT64(1);
	org_id = PG_GETARG_INT64(2);

	for (int attempt = 1;; attempt++)
	{
		uint64		gen = um_cache_begin();
		int			nwords = Max(1, (um_cache_perm_count() + 63) / 64);
		const UmMember *t = um_cache_active_member(target, org_id);
		const UmMember *i = um_cache_active_member(imp, org_id);

		result = false;
		if (t != NULL)
		{
			result = holds_more(um_cache_member_baseline(t), i != NULL ? um_cache_member_baseline(i) : NULL, nwords);
			if (!result)
			{
				const int64 *scope_ids;
				int			nscopes = um_cache_org_scope_ids(org_id, &scope_ids);

				for (int s = 0; s < nscopes && !result; s++)
					result = holds_more(um_cache_scope_bits(t, scope_ids[s]),
										i != NULL ? um_cache_scope_bits(i, scope_ids[s]) : NULL, nwords);
			}
		}
		if (um_cache_attempt_done(gen, attempt))
			break;
	}
	PG_RETURN_BOOL(result);
}
