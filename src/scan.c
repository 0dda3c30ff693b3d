/*-------------------------------------------------------------------------
 *
 * src/scan.c
 *	  Direct index scans of um's tables: the cache's user and organization
 *	  loads, and um_begin's session lookup.
 *
 * These reads are the hot ones, and each used to be an SPI query: a plan's
 * executor start and a tuple store, most of a cold check.  Here a read is
 * an index descent and a tuple read, in the manner of PostgreSQL's catalog
 * caches (systable_beginscan), index-only where the index holds every
 * column read (visiting the table only for pages not all-visible, as an
 * Index Only Scan does).  No code but PostgreSQL's runs: no operator,
 * function or policy is resolved or called, so nobody else's code can take
 * part, and no privilege is checked (as for a catalog read: um decides
 * what is read).  The caller gives the snapshot and gets the lock a query
 * would take, kept to the end of the transaction.
 *
 * Tables, columns and indexes are found by name.  Columns are looked up
 * again after a relcache invalidation of their table; an index at each
 * scan, so a REINDEX CONCURRENTLY (a new index under the old name) is
 * followed.  An index that is missing (a schema older than the library),
 * not valid and ready (a failed CREATE INDEX CONCURRENTLY), or not a btree
 * led by the key with at most "key IS NOT NULL" as predicate, is not used:
 * the table is scanned with the same key.  Names are resolved under the
 * table's lock, after the invalidations its acquisition processed.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relscan.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/visibilitymap.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "nodes/primnodes.h"
#include "storage/bufmgr.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/relcache.h"

#include "um.h"

#define NTABLES UM_NTABLES

/*
 * The tables read; the first column named is the key (in the enum's order).
 * A name starting with '?' is a column an older version's table lacks: until
 * ALTER EXTENSION um UPDATE adds it, it reads as NULL (um_scan_has_col);
 * a table name starting with '?' is a table an older version lacks: until
 * then its scans find nothing.
 */
#define LOADER_MAX_COLUMNS 16

typedef struct LoaderTable
{
	const char *table;
	const char *index;
	bool		index_only;		/* the index holds every column named */
	const char *columns[LOADER_MAX_COLUMNS];
	Oid			types[LOADER_MAX_COLUMNS];
} LoaderTable;

static const LoaderTable loader_tables[NTABLES] = {
	{"users", "users_pkey", false, {"id", "status", "allow_login", "password_changed_at", "?suspended_until"},
	{INT8OID, TEXTOID, BOOLOID, TIMESTAMPTZOID, TIMESTAMPTZOID}},
	{"memberships", "memberships_user_id_idx", false, {"user_id", "org_id", "role_id", "status", "?suspended_until"},
	{INT8OID, INT8OID, INT8OID, TEXTOID, TIMESTAMPTZOID}},
	{"grants", "grants_user_id_idx", false, {"user_id", "org_id"}, {INT8OID, INT8OID}},
	{"team_members", "team_members_user_id_idx", false, {"user_id", "org_id"}, {INT8OID, INT8OID}},
	{"role_permissions", "role_permissions_pkey", true, {"org_id", "role_id", "permission"},
	{INT8OID, INT8OID, TEXTOID}},
	{"role_inclusions", "role_inclusions_pkey", true, {"org_id", "role_id", "included_role_id"},
	{INT8OID, INT8OID, INT8OID}},
	{"sessions", "sessions_token_hash_key", false,
		{"token_hash", "user_id", "revoked_at", "revoked_reason", "expires_at", "method", "?password_changed_at",
		"?idle_timeout", "created_at", "id", "?assurance_level"},
	{BYTEAOID, INT8OID, TIMESTAMPTZOID, TEXTOID, TIMESTAMPTZOID, TEXTOID, TIMESTAMPTZOID,
	INT4OID, TIMESTAMPTZOID, INT8OID, INT2OID}},
	{"organizations", "organizations_pkey", false, {"id", "password_login_disabled", "?require_mfa"},
	{INT8OID, BOOLOID, BOOLOID}},
	{"?session_activity", "session_activity_pkey", false, {"session_id", "last_seen_at"},
	{INT8OID, TIMESTAMPTZOID}},
};

static bool layout_known = false;
static Oid	um_nsp = InvalidOid;
static Oid	table_relid[NTABLES];
static AttrNumber table_att[NTABLES][LOADER_MAX_COLUMNS];

/*
 * Each table's index as last checked: whether it is a btree led by the
 * key (else the table is scanned), and index-only where it can be; the
 * positions of the columns in it.  Checked again when the name resolves to
 * another index.
 */
static Oid	checked_index[NTABLES];
static bool index_usable[NTABLES];
static bool index_only_ok[NTABLES];
static AttrNumber index_col[NTABLES][LOADER_MAX_COLUMNS];

/*
 * A direct scan in progress: through the table (systable_beginscan), or
 * index-only where the index holds every column we read, visiting the
 * table only for pages not all-visible (as an Index Only Scan does).
 */
struct UmScan
{
	Relation	rel;
	int			table;
	bool		empty;			/* an optional table that is not there */
	bool		index_only;
	/* through the table */
	SysScanDesc scan;
	HeapTuple	tuple;
	/* index-only */
	Relation	irel;
	IndexScanDesc iscan;
	TupleTableSlot *slot;
	Buffer		vmbuffer;
	AttrNumber	icol[LOADER_MAX_COLUMNS];	/* each column's place in the index */
};


/*
 * lookup_layout: find the loader's tables and their columns; an ALTER of
 * one of them (a relcache invalidation of it) makes us look again.  The
 * indexes are looked up by name at each scan, so a REINDEX CONCURRENTLY
 * (a new index under the old name) is followed.
 */
static void
lookup_layout(void)
{
	int			t,
				c;

	if (layout_known)
		return;
	um_nsp = get_namespace_oid("um", false);	/* raises when um is not installed */
	for (t = 0; t < NTABLES; t++)
	{
		const LoaderTable *lt = &loader_tables[t];

		const char *tname = lt->table[0] == '?' ? lt->table + 1 : lt->table;

		checked_index[t] = InvalidOid;
		table_relid[t] = get_relname_relid(tname, um_nsp);
		if (!OidIsValid(table_relid[t]) && lt->table[0] == '?')
			continue;			/* an older version's schema: nothing to read */
		if (!OidIsValid(table_relid[t]))
			elog(ERROR, "um: table um.%s is missing", lt->table);
		for (c = 0; c < LOADER_MAX_COLUMNS && lt->columns[c] != NULL; c++)
		{
			const char *name = lt->columns[c];
			bool		optional = name[0] == '?';
			AttrNumber	att;

			if (optional)
				name++;
			att = get_attnum(table_relid[t], name);
			if (att == InvalidAttrNumber && optional)
			{
				/* an older version's table, before ALTER EXTENSION um UPDATE: NULL */
				table_att[t][c] = InvalidAttrNumber;
				continue;
			}
			if (att == InvalidAttrNumber || get_atttype(table_relid[t], att) != lt->types[c])
				elog(ERROR, "um: column um.%s.%s is missing or of another type",
					 lt->table, name);
			table_att[t][c] = att;
		}
	}
	layout_known = true;
}

/* is relid one of the tables read? */
static bool
is_loader_table(Oid relid)
{
	int			t;

	for (t = 0; t < NTABLES; t++)
		if (table_relid[t] == relid)
			return true;
	return false;
}

/*
 * predicate_holds_for_key: does every row with a non-null key satisfy the
 * index's predicate?  True without one, or with "key IS NOT NULL" alone.
 */
static bool
predicate_holds_for_key(Relation irel, AttrNumber key)
{
	List	   *pred = RelationGetIndexPredicate(irel);
	NullTest   *nt;

	if (pred == NIL)
		return true;
	if (list_length(pred) != 1 || !IsA(linitial(pred), NullTest))
		return false;
	nt = (NullTest *) linitial(pred);
	return nt->nulltesttype == IS_NOT_NULL && IsA(nt->arg, Var) &&
		((Var *) nt->arg)->varattno == key;
}

/*
 * check_index: is the index a btree led by table t's key, and does it hold
 * every column we read (index_only_ok)?
 */
static void
check_index(int t, Oid index)
{
	const LoaderTable *lt = &loader_tables[t];
	Relation	irel = index_open(index, AccessShareLock);

	index_usable[t] = false;
	index_only_ok[t] = false;
	if (irel->rd_index->indrelid == table_relid[t] &&
		irel->rd_index->indisvalid && irel->rd_index->indisready &&
		irel->rd_index->indislive &&
		irel->rd_rel->relam == BTREE_AM_OID &&
		IndexRelationGetNumberOfKeyAttributes(irel) >= 1 &&
		irel->rd_index->indkey.values[0] == table_att[t][0] &&
		predicate_holds_for_key(irel, table_att[t][0]))
	{
		bool		all = true;

		index_usable[t] = true;
		for (int c = 0; c < LOADER_MAX_COLUMNS && lt->columns[c] != NULL; c++)
		{
			index_col[t][c] = InvalidAttrNumber;
			for (int j = 0; table_att[t][c] != InvalidAttrNumber && j < IndexRelationGetNumberOfKeyAttributes(irel); j++)
				if (irel->rd_index->indkey.values[j] == table_att[t][c])
					index_col[t][c] = j + 1;
			if (index_col[t][c] == InvalidAttrNumber)
				all = false;
		}
		index_only_ok[t] = lt->index_only && all;
	}
	index_close(irel, NoLock);
	checked_index[t] = index;
}

/*
 * um_scan_begin: the rows of table t whose key (its first column) equals
 * key, visible to snapshot.
 */
UmScan *
um_scan_begin(UmTable t, Snapshot snapshot, Datum key)
{
	UmScan	   *ts = palloc0(sizeof(UmScan));
	ScanKeyData sk;
	Oid			index;
	RegProcedure eq = loader_tables[t].types[0] == BYTEAOID ? F_BYTEAEQ : F_INT8EQ;

	lookup_layout();
	ts->table = t;
	if (!OidIsValid(table_relid[t]))
	{
		ts->empty = true;		/* an optional table this schema lacks */
		return ts;
	}
	ts->rel = table_open(table_relid[t], AccessShareLock);
	if (!layout_known)
	{
		/* taking the lock processed an ALTER of a table read: look again */
		table_close(ts->rel, NoLock);
		lookup_layout();
		ts->rel = table_open(table_relid[t], AccessShareLock);
	}
	index = get_relname_relid(loader_tables[t].index, um_nsp);	/* under the lock */
	if (OidIsValid(index) && index != checked_index[t])
		check_index(t, index);
	if (OidIsValid(index) && !index_usable[t])
		index = InvalidOid;		/* not one we can use: read the table */
	if (OidIsValid(index) && index_only_ok[t])
	{
		ts->irel = index_open(index, AccessShareLock);
		memcpy(ts->icol, index_col[t], sizeof(ts->icol));
		ScanKeyInit(&sk, 1, BTEqualStrategyNumber, eq, key);
#if PG_VERSION_NUM >= 180000
		ts->iscan = index_beginscan(ts->rel, ts->irel, snapshot, NULL, 1, 0);
#else
		ts->iscan = index_beginscan(ts->rel, ts->irel, snapshot, 1, 0);
#endif
		ts->iscan->xs_want_itup = true;
		index_rescan(ts->iscan, &sk, 1, NULL, 0);
		ts->slot = table_slot_create(ts->rel, NULL);
		ts->vmbuffer = InvalidBuffer;
		ts->index_only = true;
		return ts;
	}
	ScanKeyInit(&sk, table_att[t][0], BTEqualStrategyNumber, eq, key);
	ts->scan = systable_beginscan(ts->rel, index, OidIsValid(index), snapshot, 1, &sk);
	return ts;
}

/* um_scan_next: move to the next row; false when there is none */
bool
um_scan_next(UmScan *ts)
{
	ItemPointer tid;

	if (ts->empty)
		return false;
	if (!ts->index_only)
	{
		ts->tuple = systable_getnext(ts->scan);
		return HeapTupleIsValid(ts->tuple);
	}
	while ((tid = index_getnext_tid(ts->iscan, ForwardScanDirection)) != NULL)
	{
		/* a page not all-visible: is this entry's row visible to us? */
		if (!VM_ALL_VISIBLE(ts->rel, ItemPointerGetBlockNumber(tid), &ts->vmbuffer))
		{
			bool		visible = index_fetch_heap(ts->iscan, ts->slot);

			ExecClearTuple(ts->slot);
			if (!visible)
				continue;
		}
		if (ts->iscan->xs_itup == NULL)
			elog(ERROR, "um: index-only scan of um.%s returned no index tuple",
				 loader_tables[ts->table].table);
		return true;
	}
	return false;
}

void
um_scan_end(UmScan *ts)
{
	if (ts->empty)
	{
		pfree(ts);
		return;
	}
	if (ts->index_only)
	{
		if (BufferIsValid(ts->vmbuffer))
			ReleaseBuffer(ts->vmbuffer);
		ExecDropSingleTupleTableSlot(ts->slot);
		index_endscan(ts->iscan);
		index_close(ts->irel, NoLock);
	}
	else
		systable_endscan(ts->scan);
	table_close(ts->rel, NoLock);	/* the lock is kept, as a query's is */
	pfree(ts);
}

/* um_scan_col: column c (in loader_tables' order) of the current row */
Datum
um_scan_col(UmScan *ts, int c, bool *isnull)
{
	Assert(c >= 0 && c < LOADER_MAX_COLUMNS && loader_tables[ts->table].columns[c] != NULL);
	if (table_att[ts->table][c] == InvalidAttrNumber)
	{
		*isnull = true;			/* an optional column the table lacks */
		return (Datum) 0;
	}
	if (ts->index_only)
		return index_getattr(ts->iscan->xs_itup, ts->icol[c], ts->iscan->xs_itupdesc, isnull);
	return heap_getattr(ts->tuple, table_att[ts->table][c], RelationGetDescr(ts->rel), isnull);
}

/* um_scan_has_col: does the table have column c (an optional one may be missing)? */
bool
um_scan_has_col(UmScan *ts, int c)
{
	return table_att[ts->table][c] != InvalidAttrNumber;
}

/*
 * um_scan_suspended: is the row's suspension (its status column, and the
 * timestamptz column of when it ends, NULL for never) in effect at the
 * start of this statement, as um_internal.suspended() decides in SQL?
 * When it is and ends by itself, *until is when (else 0): an answer built on
 * it holds only until then.
 */
bool
um_scan_suspended(UmScan *ts, int status_col, int until_col, TimestampTz *until)
{
	bool		isnull;
	Datum		d;

	*until = 0;
	if (!um_scan_text_is(ts, status_col, "suspended"))
		return false;
	d = um_scan_col(ts, until_col, &isnull);
	if (isnull)
		return true;
	if (DatumGetTimestampTz(d) <= GetCurrentStatementStartTimestamp())
		return false;			/* it ended */
	*until = DatumGetTimestampTz(d);
	return true;
}

/* um_scan_int8: a bigint column, 0 when NULL */
int64
um_scan_int8(UmScan *ts, int c)
{
	bool		isnull;
	Datum		d = um_scan_col(ts, c, &isnull);

	return isnull ? 0 : DatumGetInt64(d);
}

/* um_scan_text_is: is a text column equal to value (false when NULL)? */
bool
um_scan_text_is(UmScan *ts, int c, const char *value)
{
	bool		isnull;
	Datum		d = um_scan_col(ts, c, &isnull);
	text	   *t;
	size_t		len = strlen(value);

	if (isnull)
		return false;
	t = DatumGetTextPP(d);
	return VARSIZE_ANY_EXHDR(t) == len && memcmp(VARDATA_ANY(t), value, len) == 0;
}

/* um_scan_bool: a boolean column, false when NULL */
bool
um_scan_bool(UmScan *ts, int c)
{
	bool		isnull;
	Datum		d = um_scan_col(ts, c, &isnull);

	return !isnull && DatumGetBool(d);
}

/* an ALTER of a table read (or of everything): look its columns up again */
static void
scan_relcache_callback(Datum arg, Oid relid)
{
	(void) arg;
	if (relid == InvalidOid || (layout_known && is_loader_table(relid)))
		layout_known = false;
}

void
um_scan_init(void)
{
	CacheRegisterRelcacheCallback(scan_relcache_callback, (Datum) 0);
}
