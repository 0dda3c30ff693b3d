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
 *	um_internal.role_grants(role)                          what a role grants
 *	um_internal.lacking_permissions(actor, org, scope, p)  which of p the actor lacks
 *	um_internal.impersonation_escalates(imp, target, org)  does the target hold more?
 *
 * And one guard that is not about permissions, kept here with the others
 * every lifecycle call passes:
 *
 *	um_internal.assert_no_app_cascades()   no application foreign key cascades from
 *	                              um's tables (UM057)
 *
 * Its answer depends only on the catalogs, so a backend asks them again
 * only after a relcache invalidation that could have changed it (any but
 * the cache's own carriers): adding or dropping a foreign key invalidates
 * both tables.
 *
 * Like every check, each call retries from an emptied cache when the cache
 * generation moves while it reads (a change was processed meanwhile).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/inval.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/tuplestore.h"

#include "um.h"

PG_FUNCTION_INFO_V1(um_role_grants);
PG_FUNCTION_INFO_V1(um_lacking_permissions);
PG_FUNCTION_INFO_V1(um_impersonation_escalates);
PG_FUNCTION_INFO_V1(um_assert_no_app_cascades);

/* the catalogs were found without a cascading application foreign key */
static bool no_app_cascades = false;

/* moves at every invalidation that could change that answer */
static uint64 cascades_generation = 0;

static void
guards_relcache_callback(Datum arg, Oid relid)
{
	(void) arg;
	if (relid == InvalidOid || !um_cache_relid_is_sentinel(relid))
	{
		no_app_cascades = false;
		cascades_generation++;
	}
}

void
um_guards_init(void)
{
	CacheRegisterRelcacheCallback(guards_relcache_callback, (Datum) 0);
}

/*
 * um_internal.assert_no_app_cascades(): refuses (UM057) while a table outside um has
 * a foreign key into one of um's tables with a cascading action (CASCADE,
 * SET NULL, SET DEFAULT on delete or update).  A lifecycle call that
 * deletes or updates um's rows would otherwise make PostgreSQL's
 * referential triggers change application rows as um's owner, running the
 * application's triggers with those rights.
 */
Datum
um_assert_no_app_cascades(PG_FUNCTION_ARGS)
{
	uint64		gen = cascades_generation;
	int			ret;

	if (no_app_cascades)
		PG_RETURN_VOID();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "um: SPI_connect failed");
	ret = SPI_execute("SELECT c.conname::text, c.conrelid::pg_catalog.regclass::text, c.confrelid::pg_catalog.regclass::text"
					  "  FROM pg_catalog.pg_constraint c"
					  "  JOIN pg_catalog.pg_class t ON t.oid OPERATOR(pg_catalog.=) c.confrelid"
					  "  JOIN pg_catalog.pg_class r ON r.oid OPERATOR(pg_catalog.=) c.conrelid"
					  "  JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) t.relnamespace"
					  " WHERE c.contype OPERATOR(pg_catalog.=) 'f' AND n.nspname OPERATOR(pg_catalog.=) 'um'"
					  "   AND r.relnamespace OPERATOR(pg_catalog.<>) t.relnamespace"
					  "   AND (c.confdeltype OPERATOR(pg_catalog.<>) ALL ('{a,r}'::pg_catalog.\"char\"[])"
					  "        OR c.confupdtype OPERATOR(pg_catalog.<>) ALL ('{a,r}'::pg_catalog.\"char\"[]))"
					  " ORDER BY 2, 1 LIMIT 1", true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "um: the foreign key lookup failed");
	if (SPI_processed > 0)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		char	   *conname = SPI_getvalue(tup, desc, 1);
		char	   *tbl = SPI_getvalue(tup, desc, 2);
		char	   *target = SPI_getvalue(tup, desc, 3);

		ereport(ERROR,
				(errcode(ERRCODE_UM_APP_CASCADE),
				 errmsg("foreign key \"%s\" of table %s would let um change application rows", conname, tbl),
				 errdetail("It references %s with a cascading action (CASCADE, SET NULL or SET DEFAULT).", target),
				 errhint("Declare it ON DELETE RESTRICT (or NO ACTION) and ON UPDATE RESTRICT; the application removes its own rows first.")));
	}
	SPI_finish();
	/* an invalidation processed while we read may have been about a new key */
	if (gen == cascades_generation)
		no_app_cascades = true;
	PG_RETURN_VOID();
}

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
 * um_internal.role_grants(role_id bigint) RETURNS SETOF text: every catalog
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
 * um_internal.lacking_permissions(actor bigint, org_id bigint, scope_id bigint,
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
 * um_internal.impersonation_escalates(impersonator bigint, target bigint, org_id
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
