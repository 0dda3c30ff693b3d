/*-------------------------------------------------------------------------
 *
 * src/reference.c
 *	  Application columns that reference um's users, without a foreign key.
 *
 * A foreign key into um's tables would make PostgreSQL run its check of
 * every inserted row, and the validation of existing rows, as the owner of
 * um's tables, with whatever cast the referencing column's type brings:
 * the application's code with um's owner's rights.  So nobody but um's
 * owner holds REFERENCES on um's tables, and an application registers a
 * column that holds user ids with um_add_user_reference() instead, which
 * gives it this trigger:
 *
 * um_internal.user_reference_check(column) is an AFTER INSERT OR UPDATE trigger on
 * the application table.  It reads the column straight from the new tuple
 * (it must be bigint: no cast, no operator of the application's is ever
 * called) and looks the user up as um's owner with a fixed query that
 * locks the user's row FOR KEY SHARE, exactly as a foreign-key check does:
 * a concurrent deletion of the user waits for the inserting transaction,
 * then finds the row (below), and an insert waiting for a deletion finds
 * the user gone.
 *
 * um_internal.user_reference_probe(user_id) says which registered column (or legacy
 * foreign key) still holds the user: for account deletion, which must name
 * the table.  It reads each table as the table's own owner, inside a
 * security-restricted operation (as VACUUM and REFRESH run table owners'
 * code) that also ignores the table's forced row-level security: whatever
 * code of the application's the scan runs (a cast, an operator, a foreign
 * table's handler) runs with the application's rights, never um's.
 *
 * The triggers themselves are the registry: pg_dump keeps them with the
 * table.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "parser/parse_relation.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "mb/pg_wchar.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "um.h"

PG_FUNCTION_INFO_V1(um_user_reference_check);
PG_FUNCTION_INFO_V1(um_user_reference_probe);
PG_FUNCTION_INFO_V1(um_add_user_reference);
PG_FUNCTION_INFO_V1(um_drop_user_reference);

/* the bigint column named colname of rel, or an error naming what is wrong */
static AttrNumber
user_column(Relation rel, const char *colname)
{
	AttrNumber	attno = attnameAttNum(rel, colname, false);

	if (attno == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("table %s has no column \"%s\" for um's user reference",
						RelationGetRelationName(rel), colname),
				 errhint("Register the column again with um_add_user_reference().")));
	if (TupleDescAttr(RelationGetDescr(rel), attno - 1)->atttypid != INT8OID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("column \"%s\" of table %s must be bigint to reference um's users",
						colname, RelationGetRelationName(rel)),
				 errhint("ALTER TABLE %s ALTER COLUMN %s TYPE bigint;",
						 RelationGetRelationName(rel), quote_identifier(colname))));
	return attno;
}

static const char *const user_lock_sql =
"SELECT 1 FROM um.users WHERE id OPERATOR(pg_catalog.=) $1 FOR KEY SHARE";

/* the lookup, planned once per backend (it names um's table by schema) */
static SPIPlanPtr user_lock_plan = NULL;

/*
 * um_internal.user_reference_check(): the trigger.  Its one argument names the
 * column; a NULL is no reference.
 */
Datum
um_user_reference_check(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	HeapTuple	tuple;
	AttrNumber	attno;
	bool		isnull;
	Datum		value;
	UmRunAs		ra;
	uint64		found;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) || trigdata->tg_trigger->tgnargs != 1)
		elog(ERROR, "um_internal.user_reference_check must be an AFTER ROW trigger with the column's name as argument");
	tuple = TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ? trigdata->tg_newtuple : trigdata->tg_trigtuple;
	attno = user_column(trigdata->tg_relation, trigdata->tg_trigger->tgargs[0]);
	value = heap_getattr(tuple, attno, RelationGetDescr(trigdata->tg_relation), &isnull);
	if (isnull)
		return PointerGetDatum(NULL);

	um_run_as_begin(&ra, um_owner(), false);
	{
		Datum		vals[1] = {value};

		if (user_lock_plan == NULL)
		{
			Oid			types[1] = {INT8OID};
			SPIPlanPtr	plan = SPI_prepare(user_lock_sql, 1, types);

			if (plan == NULL || SPI_keepplan(plan) != 0)
				elog(ERROR, "um_internal.user_reference_check: could not prepare the lookup");
			user_lock_plan = plan;
		}
		if (SPI_execute_plan(user_lock_plan, vals, NULL, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "um_internal.user_reference_check: lookup failed");
		found = SPI_processed;
	}
	um_run_as_end(&ra);

	if (found == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FOREIGN_KEY_VIOLATION),
				 errmsg("user " INT64_FORMAT " does not exist", DatumGetInt64(value)),
				 errdetail("Column \"%s\" of table %s references um's users.",
						   trigdata->tg_trigger->tgargs[0], RelationGetRelationName(trigdata->tg_relation)),
				 errhint("Store the id of an existing user (um.users), or NULL.")));
	return PointerGetDatum(NULL);
}

/*
 * probe_as_owner: does table relid hold user_id in column colname?  Read as
 * the table's owner, in a security-restricted operation that ignores its
 * forced row-level security.
 */
static bool
probe_as_owner(Oid relid, const char *colname, int64 user_id)
{
	Oid			owner;
	UmRunAs		ra;
	char	   *sql;
	bool		found;
	HeapTuple	tup;

	AttrNumber	attno;

	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tup))
		return false;			/* dropped meanwhile */
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	/* a renamed, dropped or retyped column holds no user id um can compare
	 * without the table's code: skip it (its trigger refuses new rows) */
	attno = get_attnum(relid, colname);
	if (attno == InvalidAttrNumber || get_atttype(relid, attno) != INT8OID)
		return false;

	sql = psprintf("SELECT 1 FROM ONLY %s WHERE %s OPERATOR(pg_catalog.=) $1 LIMIT 1",
				   quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
											  get_rel_name(relid)),
				   quote_identifier(colname));

	um_run_as_begin(&ra, owner, true);
	/* a table held locked does not hang deletions for long */
	(void) set_config_option("lock_timeout", "5s", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	{
		Oid			types[1] = {INT8OID};
		Datum		vals[1] = {Int64GetDatum(user_id)};

		if (SPI_execute_with_args(sql, 1, types, vals, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "um_internal.user_reference_probe: probe failed");
		found = SPI_processed > 0;
	}
	um_run_as_end(&ra);
	return found;
}

static Datum
probe_row(TupleDesc tupdesc, Oid relid, const char *col, bool unsafe)
{
	Datum		values[3];
	bool		nulls[3] = {false, false, false};
	NameData	colname;

	namestrcpy(&colname, col);
	values[0] = ObjectIdGetDatum(relid);
	values[1] = NameGetDatum(&colname);
	values[2] = BoolGetDatum(unsafe);
	tupdesc = BlessTupleDesc(tupdesc);
	return HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls));
}

/*
 * um_internal.user_reference_probe(user_id bigint, OUT tbl regclass, OUT col name,
 *     OUT unsafe boolean)
 *
 * The first table found whose registered column, or whose single-column
 * foreign key to um.users (made before 0.2), still holds the user; no row
 * when none does.  unsafe: a foreign key into um.users whose column is not
 * bigint, which refuses every deletion.  Internal: account deletion calls
 * it.
 */
Datum
um_user_reference_probe(PG_FUNCTION_ARGS)
{
	int64		user_id = PG_GETARG_INT64(0);
	Oid			check_fn;
	Oid			users_relid;
	List	   *tables = NIL;
	List	   *columns = NIL;
	Relation	catalog;
	SysScanDesc scan;
	HeapTuple	tup;
	ListCell   *lt,
			   *lc;
	TupleDesc	tupdesc;
	Oid			unsafe_rel = InvalidOid;
	char	   *unsafe_col = NULL;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	check_fn = LookupFuncName(list_make2(makeString(UM_INTERNAL_SCHEMA), makeString("user_reference_check")),
							  0, NULL, false);
	users_relid = RangeVarGetRelid(makeRangeVar("um", "users", -1), NoLock, false);

	/* registered columns: um's triggers on tables (not partitioned parents) */
	catalog = table_open(TriggerRelationId, AccessShareLock);
	scan = systable_beginscan(catalog, InvalidOid, false, NULL, 0, NULL);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_trigger trg = (Form_pg_trigger) GETSTRUCT(tup);
		bool		isnull;
		Datum		args;
		bytea	   *raw;

		if (trg->tgfoid != check_fn || trg->tgnargs != 1 ||
			get_rel_relkind(trg->tgrelid) != RELKIND_RELATION)
			continue;
		args = heap_getattr(tup, Anum_pg_trigger_tgargs, RelationGetDescr(catalog), &isnull);
		if (isnull)
			continue;
		raw = DatumGetByteaPP(args);
		tables = lappend_oid(tables, trg->tgrelid);
		columns = lappend(columns, pnstrdup(VARDATA_ANY(raw), VARSIZE_ANY_EXHDR(raw)));
	}
	systable_endscan(scan);
	table_close(catalog, AccessShareLock);

	/* foreign keys of other schemas' tables into um.users, one column */
	catalog = table_open(ConstraintRelationId, AccessShareLock);
	scan = systable_beginscan(catalog, InvalidOid, false, NULL, 0, NULL);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_constraint con = (Form_pg_constraint) GETSTRUCT(tup);
		bool		isnull;
		Datum		keys;
		ArrayType  *arr;

		if (con->contype != CONSTRAINT_FOREIGN || con->confrelid != users_relid ||
			get_rel_relkind(con->conrelid) != RELKIND_RELATION ||
			get_rel_namespace(con->conrelid) == get_rel_namespace(users_relid))
			continue;
		keys = heap_getattr(tup, Anum_pg_constraint_conkey, RelationGetDescr(catalog), &isnull);
		if (isnull)
			continue;
		arr = DatumGetArrayTypeP(keys);
		if (ARR_NDIM(arr) != 1 || ARR_DIMS(arr)[0] != 1)
			continue;
		if (get_atttype(con->conrelid, ((int16 *) ARR_DATA_PTR(arr))[0]) != INT8OID)
		{
			/*
			 * Not bigint: PostgreSQL's own check of the deletion would run
			 * the column's cast, the table's code, in the deleting user's
			 * transaction.  Refuse the deletion instead (um_lint: critical).
			 */
			unsafe_rel = con->conrelid;
			unsafe_col = get_attname(con->conrelid, ((int16 *) ARR_DATA_PTR(arr))[0], false);
			break;
		}
		tables = lappend_oid(tables, con->conrelid);
		columns = lappend(columns, get_attname(con->conrelid, ((int16 *) ARR_DATA_PTR(arr))[0], false));
	}
	systable_endscan(scan);
	table_close(catalog, AccessShareLock);

	if (OidIsValid(unsafe_rel))
		PG_RETURN_DATUM(probe_row(tupdesc, unsafe_rel, unsafe_col, true));
	forboth(lt, tables, lc, columns)
	{
		Oid			relid = lfirst_oid(lt);
		const char *col = lfirst(lc);

		if (probe_as_owner(relid, col, user_id))
			PG_RETURN_DATUM(probe_row(tupdesc, relid, col, false));
	}
	PG_RETURN_NULL();
}

/* must the caller own relid (or be a member of its owner)? */
static void
require_owner(Oid relid)
{
#if PG_VERSION_NUM >= 160000
	if (!object_ownercheck(RelationRelationId, relid, GetUserId()))
#else
	if (!pg_class_ownercheck(relid, GetUserId()))
#endif
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be the owner of table %s to register its references",
						get_rel_name(relid) ? get_rel_name(relid) : "?"),
				 errhint("Run it as the table's owner (or a member of the owning role).")));
}

static char *
trigger_name(const char *colname)
{
	char	   *name = psprintf("um_user_ref_%s", colname);

	if (strlen(name) >= NAMEDATALEN)
		name[pg_mbcliplen(name, strlen(name), NAMEDATALEN - 1)] = '\0';
	return name;
}

/*
 * validate_existing: every value already in the column of table relid (a
 * leaf) is a user's id, or an error naming one that is not.  The values are
 * read as the table's owner (restricted, as in probe_as_owner), then looked
 * up as um's owner, so neither learns what the other may not see.
 */
static void
validate_existing(Oid relid, const char *colname)
{
	Relation	rel;
	Oid			owner;
	UmRunAs		ra;
	Datum		ids;
	bool		ids_null;
	bool		missing = false;
	int64		missing_id = 0;
	char	   *sql;

	rel = table_open(relid, AccessShareLock);
	(void) user_column(rel, colname);
	owner = rel->rd_rel->relowner;
	sql = psprintf("SELECT pg_catalog.array_agg(DISTINCT %s) FROM ONLY %s WHERE %s IS NOT NULL",
				   quote_identifier(colname),
				   quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
											  RelationGetRelationName(rel)),
				   quote_identifier(colname));
	table_close(rel, NoLock);

	um_run_as_begin(&ra, owner, true);
	if (SPI_execute(sql, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "um_add_user_reference: reading the column failed");
	ids = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &ids_null);
	um_run_as_switch(&ra, um_owner(), false);
	if (!ids_null)
	{
		Oid			types[1] = {INT8ARRAYOID};
		Datum		vals[1] = {ids};

		if (SPI_execute_with_args("SELECT x FROM pg_catalog.unnest($1) x"
								  " WHERE NOT EXISTS (SELECT 1 FROM um.users u WHERE u.id OPERATOR(pg_catalog.=) x)"
								  " ORDER BY x LIMIT 1",
								  1, types, vals, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "um_add_user_reference: lookup failed");
		if (SPI_processed > 0)
		{
			bool		isnull;

			missing = true;
			missing_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		}
	}
	um_run_as_end(&ra);
	if (missing)
		ereport(ERROR,
				(errcode(ERRCODE_FOREIGN_KEY_VIOLATION),
				 errmsg("column \"%s\" of table %s holds " INT64_FORMAT ", which is no user's id",
						colname, get_rel_name(relid), missing_id),
				 errhint("Set such values to NULL or to an existing user's id first.")));
}

/* run one DDL statement as um's owner (who may create triggers on any table) */
static void
ddl_as_um_owner(const char *sql)
{
	UmRunAs		ra;

	um_run_as_begin(&ra, um_owner(), false);
	if (SPI_execute(sql, false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "um: \"%s\" failed", sql);
	um_run_as_end(&ra);
}

static bool
has_reference_trigger(Oid relid, const char *tgname)
{
	Oid			check_fn = LookupFuncName(list_make2(makeString(UM_INTERNAL_SCHEMA), makeString("user_reference_check")),
										  0, NULL, false);
	Relation	catalog = table_open(TriggerRelationId, AccessShareLock);
	SysScanDesc scan;
	HeapTuple	tup;
	bool		found = false;

	scan = systable_beginscan(catalog, InvalidOid, false, NULL, 0, NULL);
	while (!found && HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_trigger trg = (Form_pg_trigger) GETSTRUCT(tup);

		found = trg->tgrelid == relid && trg->tgfoid == check_fn && strcmp(NameStr(trg->tgname), tgname) == 0;
	}
	systable_endscan(scan);
	table_close(catalog, AccessShareLock);
	return found;
}

/*
 * um_add_user_reference(tbl regclass, user_column name): register a bigint
 * column of user ids (and the same column of every table inheriting from
 * tbl, partitions included).  Run by the table's owner, and only by roles
 * granted EXECUTE: a registered table takes part in every account deletion.
 * The rows already there are checked; the trigger is created by um's owner,
 * since nobody else may use um_internal.user_reference_check.  Idempotent.
 */
Datum
um_add_user_reference(PG_FUNCTION_ARGS)
{
	Oid			relid;
	char	   *colname;
	Relation	rel;
	char		relkind;
	char	   *qualified;
	char	   *tgname;
	List	   *tree;
	ListCell   *lc;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(MAKE_SQLSTATE('U', 'M', '0', '8', '0')),
				 errmsg("um_add_user_reference needs a table and its column of user ids"),
				 errhint("For example: SELECT um_add_user_reference('invoices', 'created_by');")));
	relid = PG_GETARG_OID(0);
	colname = NameStr(*PG_GETARG_NAME(1));
	if (InSecurityRestrictedOperation())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("cannot register a user reference inside a security-restricted operation"),
				 errhint("Call it directly.")));
	require_owner(relid);
	rel = table_open(relid, ShareRowExclusiveLock);
	relkind = rel->rd_rel->relkind;
	if ((relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE) ||
		rel->rd_rel->relpersistence == RELPERSISTENCE_TEMP)
		ereport(ERROR,
				(errcode(MAKE_SQLSTATE('U', 'M', '0', '8', '0')),
				 errmsg("%s is not a permanent table", RelationGetRelationName(rel)),
				 errhint("Register the column of a regular or partitioned table.")));
	if (attnameAttNum(rel, colname, false) == InvalidAttrNumber ||
		TupleDescAttr(RelationGetDescr(rel), attnameAttNum(rel, colname, false) - 1)->atttypid != INT8OID)
		ereport(ERROR,
				(errcode(MAKE_SQLSTATE('U', 'M', '0', '8', '0')),
				 errmsg("table %s has no bigint column \"%s\"", RelationGetRelationName(rel), colname),
				 errhint("User ids are bigint: pass the name of such a column (names are case-sensitive, as in the catalog).")));
	qualified = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
										   RelationGetRelationName(rel));
	table_close(rel, NoLock);

	tree = find_all_inheritors(relid, ShareRowExclusiveLock, NULL);
	foreach(lc, tree)
	{
		Oid			child = lfirst_oid(lc);

		if (get_rel_relkind(child) == RELKIND_RELATION)
			validate_existing(child, colname);
	}
	tgname = trigger_name(colname);
	if (has_reference_trigger(relid, tgname))
		PG_RETURN_VOID();
	ddl_as_um_owner(psprintf("CREATE TRIGGER %s AFTER INSERT OR UPDATE OF %s ON %s FOR EACH ROW"
							 " EXECUTE FUNCTION um_internal.user_reference_check(%s)",
							 quote_identifier(tgname), quote_identifier(colname), qualified,
							 quote_literal_cstr(colname)));
	PG_RETURN_VOID();
}

/*
 * um_drop_user_reference(tbl regclass, user_column name): stop treating the
 * column as one of user ids; returns whether it was registered.
 */
Datum
um_drop_user_reference(PG_FUNCTION_ARGS)
{
	Oid			relid;
	char	   *tgname;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_BOOL(false);
	relid = PG_GETARG_OID(0);
	require_owner(relid);
	tgname = trigger_name(NameStr(*PG_GETARG_NAME(1)));
	if (!has_reference_trigger(relid, tgname))
		PG_RETURN_BOOL(false);
	ddl_as_um_owner(psprintf("DROP TRIGGER %s ON %s", quote_identifier(tgname),
							 quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
														get_rel_name(relid))));
	PG_RETURN_BOOL(true);
}
