/*-------------------------------------------------------------------------
 *
 * src/protect.c
 *	  The privileged part of um_protect_table() and um_unprotect_table().
 *
 * Those two run with their caller's rights (SECURITY INVOKER), so that
 * PostgreSQL's own checks decide who may enable row-level security on a
 * table and create or drop its policies: its owner.  What they may not do
 * with the caller's rights is write um's tables: register the resource's
 * permissions and the audit event.  um_internal.protection_note() does that as the
 * owner of um's tables, after checking that the role running it (the
 * current user, not whoever started the session or the maintenance
 * command) owns the table, and never inside a security-restricted
 * operation.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_policy.h"
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
#include "utils/memutils.h"
#include "utils/syscache.h"

#include "um.h"

PG_FUNCTION_INFO_V1(um_protection_note);

/*
 * The notes written in this transaction, as "relid action" strings in
 * TopTransactionContext: a table's protection is audited once per
 * transaction however often the note is called.
 */
static List *noted = NIL;
static bool callback_registered = false;

static void
noted_xact_callback(XactEvent event, void *arg)
{
	(void) arg;
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_PREPARE)
		noted = NIL;
}

/* already noted in this transaction?  (and remember it) */
static bool
noted_before(Oid relid, const char *action)
{
	char	   *key = psprintf("%u %s", relid, action);
	ListCell   *lc;
	MemoryContext old;

	foreach(lc, noted)
		if (strcmp((char *) lfirst(lc), key) == 0)
			return true;
	if (!callback_registered)
	{
		RegisterXactCallback(noted_xact_callback, NULL);
		callback_registered = true;
	}
	old = MemoryContextSwitchTo(TopTransactionContext);
	noted = lappend(noted, pstrdup(key));
	MemoryContextSwitchTo(old);
	return false;
}

/*
 * um_policies_state: does relid have um's policies, and was one of them
 * made in this transaction?
 */
static void
um_policies_state(Oid relid, bool *has, bool *made_now)
{
	Relation	catalog = table_open(PolicyRelationId, AccessShareLock);
	SysScanDesc scan;
	HeapTuple	tup;

	*has = false;
	*made_now = false;
	scan = systable_beginscan(catalog, InvalidOid, false, NULL, 0, NULL);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_policy pol = (Form_pg_policy) GETSTRUCT(tup);
		const char *name = NameStr(pol->polname);

		if (pol->polrelid != relid ||
			(strcmp(name, "um_read") != 0 && strcmp(name, "um_create") != 0 &&
			 strcmp(name, "um_update") != 0 && strcmp(name, "um_delete") != 0))
			continue;
		*has = true;
		if (TransactionIdIsCurrentTransactionId(HeapTupleHeaderGetXmin(tup->t_data)))
			*made_now = true;
	}
	systable_endscan(scan);
	table_close(catalog, AccessShareLock);
}

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
 * um_internal.protection_note(tbl regclass, action text, resource text)
 *
 * action is 'table.protect' (with the table's resource) or
 * 'table.unprotect'.  Writes the audit event, whose details it builds
 * itself, and for table.protect adds the resource's read/create/update/
 * delete permissions to the global catalog when they are missing, which
 * only a um administrator may cause: a table owner with no um rights must
 * not grow what every backend loads.  A temporary table is refused (it
 * protects nothing another session could read).  Callable by anyone: it
 * does nothing a table's owner could not already ask for.
 */
Datum
um_protection_note(PG_FUNCTION_ARGS)
{
	Oid			relid;
	const char *action;
	UmRunAs		ra;
	Oid			caller = GetUserId();
	int			rc;
	bool		isnull;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		elog(ERROR, "um_internal.protection_note: table and action are required");
	relid = PG_GETARG_OID(0);
	action = text_to_cstring(PG_GETARG_TEXT_PP(1));
	if (strcmp(action, "table.protect") != 0 && strcmp(action, "table.unprotect") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid protection action \"%s\"", action),
				 errhint("um_protect_table and um_unprotect_table call this; call them instead.")));
	if (strcmp(action, "table.protect") == 0 && PG_ARGISNULL(2))
		elog(ERROR, "um_internal.protection_note: table.protect needs the resource");
	if (InSecurityRestrictedOperation())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("cannot protect or unprotect a table inside a security-restricted operation"),
				 errhint("Call it directly, not from an index expression, a materialized view or similar maintenance code.")));
	if (!owns_relation(relid, caller))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be the owner of table %s", get_rel_name(relid) ? get_rel_name(relid) : "?"),
				 errhint("Run it as the table's owner (or a member of the owning role).")));
	if (get_rel_persistence(relid) == RELPERSISTENCE_TEMP)
		ereport(ERROR,
				(errcode(MAKE_SQLSTATE('U', 'M', '0', '8', '0')),
				 errmsg("cannot protect temporary table %s", get_rel_name(relid)),
				 errhint("Protect permanent tables: a temporary one is its session's alone.")));
	{
		bool		has,
					made_now;

		/*
		 * The note must describe what this transaction did: protecting made
		 * the policies now, unprotecting left none.  Anything else (a call
		 * of its own, a repeat) writes nothing.
		 */
		um_policies_state(relid, &has, &made_now);
		if (strcmp(action, "table.protect") == 0 ? !made_now : has)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("table %s was not just %s", get_rel_name(relid),
							strcmp(action, "table.protect") == 0 ? "protected" : "unprotected"),
					 errhint("um_protect_table and um_unprotect_table call this; call them instead.")));
	}

	um_run_as_begin(&ra, um_owner(), false);
	if (!PG_ARGISNULL(2))
	{
		Oid			types[2] = {TEXTOID, OIDOID};
		Datum		vals[2] = {PG_GETARG_DATUM(2), ObjectIdGetDatum(caller)};
		int64		missing;

		rc = SPI_execute_with_args("SELECT pg_catalog.count(*) FROM pg_catalog.unnest(ARRAY['read', 'create', 'update', 'delete']) a"
								   " WHERE NOT EXISTS (SELECT 1 FROM um.permissions p"
								   "  WHERE p.name OPERATOR(pg_catalog.=) ($1 OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) a))",
								   1, types, vals, NULL, true, 1);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "um_internal.protection_note: catalog lookup failed: %s", SPI_result_code_string(rc));
		missing = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		if (missing > 0)
		{
			rc = SPI_execute_with_args("SELECT um_internal.role_administers_um($2)", 2, types, vals, NULL, true, 1);
			if (rc != SPI_OK_SELECT)
				elog(ERROR, "um_internal.protection_note: role lookup failed: %s", SPI_result_code_string(rc));
			if (!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
				ereport(ERROR,
						(errcode(ERRCODE_UM_UNKNOWN_PERMISSION),
						 errmsg("permissions of resource \"%s\" are not in the catalog", TextDatumGetCString(vals[0])),
						 errdetail("Protecting a table with a new resource registers its read, create, update and delete permissions for every organization, which only a um administrator may do."),
						 errhint("Ask a um administrator to register them (um_register_permission('%s:read'), ...) or to protect the table.",
								 TextDatumGetCString(vals[0]))));
			rc = SPI_execute_with_args(
									   "INSERT INTO um.permissions (name, description)"
									   " SELECT $1 OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) a,"
									   "        pg_catalog.format('%s %s rows (um_protect_table)', pg_catalog.initcap(a), $1)"
									   "   FROM pg_catalog.unnest(ARRAY['read', 'create', 'update', 'delete']) a"
									   "  WHERE NOT EXISTS (SELECT 1 FROM um.permissions p"
									   "   WHERE p.name OPERATOR(pg_catalog.=) ($1 OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) a))"
									   " ON CONFLICT (name) DO NOTHING",
									   1, types, vals, NULL, false, 0);
			if (rc != SPI_OK_INSERT)
				elog(ERROR, "um_internal.protection_note: registering permissions failed: %s", SPI_result_code_string(rc));
		}
	}
	if (!noted_before(relid, action))
	{
		Oid			types[4] = {TEXTOID, TEXTOID, TEXTOID, NAMEOID};
		Datum		vals[4];
		char		nulls[4] = {' ', ' ', ' ', ' '};
		NameData	role;
		char	   *rolename = GetUserNameFromId(caller, true);

		namestrcpy(&role, rolename ? rolename : "?");
		vals[3] = NameGetDatum(&role);
		vals[0] = PG_GETARG_DATUM(1);
		vals[1] = CStringGetTextDatum(quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)), get_rel_name(relid)));
		vals[2] = PG_ARGISNULL(2) ? (Datum) 0 : PG_GETARG_DATUM(2);
		if (PG_ARGISNULL(2))
			nulls[2] = 'n';
		/* recorded under the role that called, not um's owner */
		rc = SPI_execute_with_args("INSERT INTO um.audit_events (action, outcome, target_type, details, db_role)"
								   " VALUES ($1, 'ok', 'table',"
								   " pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object('table', $2, 'resource', $3)), $4)",
								   4, types, vals, nulls, false, 0);
		if (rc != SPI_OK_INSERT)
			elog(ERROR, "um_internal.protection_note: audit failed: %s", SPI_result_code_string(rc));
	}
	um_run_as_end(&ra);
	PG_RETURN_VOID();
}
