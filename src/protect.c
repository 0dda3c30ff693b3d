/*-------------------------------------------------------------------------
 *
 * src/protect.c
 *	  The privileged part of um_protect_table() and um_unprotect_table().
 *
 * Those two run with their caller's rights (SECURITY INVOKER), so that
 * PostgreSQL's own checks decide who may enable row-level security on a
 * table and create or drop its policies: its owner.  What they may not do
 * with the caller's rights is write um's tables: register the resource's
 * permissions and the audit event.  um.protection_note() does that as the
 * owner of um's tables, after checking that the role running it (the
 * current user, not whoever started the session or the maintenance
 * command) owns the table, and never inside a security-restricted
 * operation.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "um.h"

PG_FUNCTION_INFO_V1(um_protection_note);

static bool
owns_relation(Oid relid, Oid roleid)
{
#if PG_VERSION_NUM >= 160000
	return object_ownercheck(RelationRelationId, relid, roleid);
#else
	return pg_class_ownercheck(relid, roleid);
#endif
}

/*
 * um.protection_note(tbl regclass, action text, resource text, details jsonb)
 *
 * action is 'table.protect' or 'table.unprotect'; with a resource, its
 * read/create/update/delete permissions are added to the catalog if missing.
 */
Datum
um_protection_note(PG_FUNCTION_ARGS)
{
	Oid			relid;
	Oid			um_owner;
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;
	HeapTuple	tup;
	Oid			catalog;
	int			rc;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		elog(ERROR, "um.protection_note: table and action are required");
	relid = PG_GETARG_OID(0);
	if (InSecurityRestrictedOperation())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("cannot protect or unprotect a table inside a security-restricted operation"),
				 errhint("Call it directly, not from an index expression, a materialized view or similar maintenance code.")));
	if (!owns_relation(relid, GetUserId()))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be the owner of table %s", get_rel_name(relid) ? get_rel_name(relid) : "?"),
				 errhint("Run it as the table's owner (or a member of the owning role).")));

	catalog = RangeVarGetRelid(makeRangeVar("um", "permissions", -1), NoLock, false);
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(catalog));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", catalog);
	um_owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(um_owner, save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	save_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (!PG_ARGISNULL(2))
	{
		Oid			types[1] = {TEXTOID};
		Datum		vals[1] = {PG_GETARG_DATUM(2)};

		rc = SPI_execute_with_args(
								   "INSERT INTO um.permissions (name, description)"
								   " SELECT $1 OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) a,"
								   "        pg_catalog.format('%s %s rows (um_protect_table)', pg_catalog.initcap(a), $1)"
								   "   FROM pg_catalog.unnest(ARRAY['read', 'create', 'update', 'delete']) a"
								   " ON CONFLICT (name) DO NOTHING",
								   1, types, vals, NULL, false, 0);
		if (rc != SPI_OK_INSERT)
			elog(ERROR, "um.protection_note: registering permissions failed: %s", SPI_result_code_string(rc));
	}
	{
		Oid			types[2] = {TEXTOID, JSONBOID};
		Datum		vals[2];
		char		nulls[2] = {' ', ' '};

		vals[0] = PG_GETARG_DATUM(1);
		vals[1] = PG_ARGISNULL(3) ? (Datum) 0 : PG_GETARG_DATUM(3);
		if (PG_ARGISNULL(3))
			nulls[1] = 'n';
		rc = SPI_execute_with_args("SELECT um.audit($1, NULL, 'table', NULL, $2)",
								   2, types, vals, nulls, false, 0);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "um.protection_note: audit failed: %s", SPI_result_code_string(rc));
	}
	SPI_finish();
	AtEOXact_GUC(true, save_nestlevel);
	SetUserIdAndSecContext(save_userid, save_sec_context);
	PG_RETURN_VOID();
}
