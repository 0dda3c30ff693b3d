/*-------------------------------------------------------------------------
 *
 * src/cache.c
 *	  The backend-local grant cache: what it holds, how it is filled, and
 *	  why its answers always equal the tables.
 *
 * What it holds (all in one memory context, reset as a whole):
 *	- the permission catalog, each name with a dense id, so a set of
 *	  permissions is a bitmap;
 *	- per user: may they act at all (active, allow_login), and the
 *	  organizations where they are an active member;
 *	- per organization: the permission bitmap of each role, closed over
 *	  role inclusions (in C, by iterating to a fixpoint) and wildcards; the
 *	  scope tree, when a scoped check needs it;
 *	- per (user, organization): the membership, the organization-wide
 *	  bitmap (organization role plus organization-wide grants), the
 *	  scoped grants, and a memo of the bitmap at each scope node checked.
 *
 * Invalidation.  A statement-level trigger on every table the answers depend
 * on calls um_cache_invalidate_trigger(), which queues a relcache
 * invalidation of the sentinel relation um.cache_sentinel.  PostgreSQL
 * delivers it transactionally: to the writing backend at the end of the
 * statement (CommandCounterIncrement), to every other backend of the
 * database after commit, never for a rolled-back change (an abort replays
 * the writer's own messages locally, undoing what it cached), and, being
 * WAL-logged with the commit record, to hot standby backends when replay
 * reaches the commit.  Our relcache callback only marks the cache stale;
 * the reset happens at the next check, when nobody holds a pointer into it.
 * The whole cache is dropped on any change: writes to um's tables are rare
 * next to checks, and a coarse flush cannot miss a dependency.
 *
 * Which snapshot fills the cache, and why it cannot go stale.  Every check
 * first calls AcceptInvalidationMessages(), so messages already sent are
 * processed.  Entries are then loaded with a snapshot taken afterwards
 * (GetLatestSnapshot(), as catalog caches do with their catalog snapshot),
 * so they include every change whose message has been processed: a change
 * is visible to new snapshots before its committer sends the message.  A
 * message processed while loading (lock acquisition processes messages)
 * bumps the generation; the check notices that the generation moved and
 * starts over from an emptied cache, in the manner of sepgsql's uavc.c, so
 * no entry is built across a flush.  A change committed after the snapshot
 * was taken sends its message after that; it flushes the entry whenever it
 * is processed, at the latest at the next check or transaction start.
 * Hence no stale grant survives the processing of a revocation's message.
 *
 * The price of reading the latest state is the one PostgreSQL pays for its
 * own privilege checks: within a REPEATABLE READ transaction a committed
 * revocation takes effect at the next check, not at the next transaction.
 *
 * In parallel mode (a check in the leader of a parallel query) no new
 * snapshot may be taken; entries are then loaded with the query's snapshot
 * and are good only under that snapshot: the first check under another one
 * (or outside parallel mode) drops the cache, and so does the end of the
 * transaction.  A load that an error interrupts may leave half-built
 * entries; the next check drops the cache.
 *
 * The loader runs its queries as the owner of um's tables (as RI triggers
 * run as the table owner), with a search_path of pg_catalog only, so
 * neither the caller's privileges nor its search_path can change an answer.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "um.h"

PG_FUNCTION_INFO_V1(um_cache_invalidate_trigger);

/* Settings */
static int	cache_memory_limit_kb = 65536;

/* ---- state ---------------------------------------------------------- */

static MemoryContext cache_cxt = NULL;
static bool cache_stale = true;		/* reset before next use */
static bool load_in_progress = false;	/* an error escaped a load: entries may be half-built */

/*
 * Entries read in parallel mode hold the data of that query's snapshot:
 * they are good for checks under the same snapshot only.  These fields say
 * which one; snapshot_bound is false when every entry was read fresh.
 */
static bool snapshot_bound = false;
static Snapshot bound_snapshot = NULL;
static TransactionId bound_xmin = InvalidTransactionId;
static TransactionId bound_xmax = InvalidTransactionId;
static CommandId bound_curcid = InvalidCommandId;
static uint64 cache_generation = 1;
static uint64 loads_since_size_check = 0;
static Oid	sentinel_relid = InvalidOid;
static UmCacheStats stats;

/* deepest scope tree a check walks up */
#define UM_MAX_SCOPE_DEPTH		64

/*
 * The entries.  Every table is one flat dynahash in cache_cxt (a dynahash
 * per organization or member would cost a memory context each).  None of
 * them leaves this file: the evaluator reaches them through the functions
 * of um.h (UmMember only as an opaque pointer).
 */
typedef struct UmUser
{
	int64		user_id;		/* key */
	bool		exists;
	bool		active;			/* status active and allow_login */
	int			norgs;			/* organizations with an active membership */
	int64	   *orgs;
} UmUser;

typedef struct UmOrg
{
	int64		org_id;			/* key */
	bool		scopes_loaded;
	int			nscopes;
	int64	   *scope_ids;		/* every scope node of the organization */
} UmOrg;

typedef struct UmScope
{
	int64		scope_id;		/* key */
	int64		org_id;
	int64		parent_id;		/* 0 for a top-level node */
	int			kind;			/* interned kind */
	bool		inherit;
} UmScope;

typedef struct UmMemberKey
{
	int64		user_id;
	int64		org_id;
} UmMemberKey;

typedef struct UmGrant
{
	int64		role_id;
	int64		scope_id;		/* 0 when granted on a kind */
	char	   *kind;			/* NULL when granted on a node */
} UmGrant;

struct UmMember
{
	UmMemberKey key;
	bool		active;			/* an active membership */
	int64		role_id;		/* the organization role */
	uint64	   *baseline;		/* organization-wide permission bitmap */
	int			ngrants;		/* grants on scope nodes or kinds */
	UmGrant    *grants;
};

typedef struct PermEntry
{
	char		name[UM_PERMNAME_MAX + 1];	/* key */
	int			id;
} PermEntry;

typedef struct RoleEntry
{
	int64		role_id;		/* key */
	uint64	   *bits;			/* closed over inclusions and wildcards */
} RoleEntry;

typedef struct KindEntry
{
	char		name[64];		/* key: scope kinds are identifiers of <= 63 bytes */
	int			id;
} KindEntry;

typedef struct MemoKey
{
	int64		user_id;
	int64		org_id;
	int64		scope_id;
} MemoKey;

typedef struct ScopeMemo
{
	MemoKey		key;
	uint64	   *bits;
} ScopeMemo;

static HTAB *perm_hash = NULL;
static int	nperms = 0;
static int	nwords = 0;			/* 64-bit words per permission bitmap */
static char **perm_names = NULL;
static UmPermName *perm_parsed = NULL;

static HTAB *user_hash = NULL;
static HTAB *org_hash = NULL;
static HTAB *role_hash = NULL;
static HTAB *member_hash = NULL;
static HTAB *scope_hash = NULL;
static HTAB *kind_hash = NULL;
static HTAB *memo_hash = NULL;
static int	nkinds = 0;

/* Saved plans of the loader */
enum
{
	Q_CATALOG, Q_USER, Q_ORG_ROLES, Q_MEMBER, Q_MEMBER_GRANTS, Q_SCOPES, NQUERIES
};
static SPIPlanPtr plans[NQUERIES];

static const char *const query_text[NQUERIES] = {
	/* Q_CATALOG */
	"SELECT name FROM um.permissions",
	/* Q_USER: may the user act, and where are they an active member */
	"SELECT u.status = 'active' AND u.allow_login,"
	"       ARRAY(SELECT m.org_id FROM um.memberships m"
	"              WHERE m.user_id = u.id AND m.status = 'active' ORDER BY 1)"
	"  FROM um.users u WHERE u.id = $1",
	/*
	 * Q_ORG_ROLES: what each role of the organization grants directly, and
	 * which roles it includes; the closure is computed in C.  (A recursive
	 * CTE here got a generic plan that hashed all of role_permissions.)
	 */
	"SELECT r.id, rp.permission, NULL::bigint"
	"  FROM um.roles r JOIN um.role_permissions rp ON rp.role_id = r.id WHERE r.org_id = $1"
	" UNION ALL "
	"SELECT r.id, NULL::text, ri.included_role_id"
	"  FROM um.roles r JOIN um.role_inclusions ri ON ri.role_id = r.id WHERE r.org_id = $1",
	/* Q_MEMBER */
	"SELECT m.status = 'active', m.role_id FROM um.memberships m"
	" WHERE m.org_id = $1 AND m.user_id = $2",
	/* Q_MEMBER_GRANTS: (role, node, kind) given to the user, to their teams, and within their teams */
	"SELECT g.role_id, g.scope_id, g.scope_kind FROM um.grants g"
	" WHERE g.org_id = $1 AND g.user_id = $2"
	" UNION ALL "
	"SELECT g.role_id, g.scope_id, g.scope_kind"
	"  FROM um.team_members tm JOIN um.grants g ON g.team_id = tm.team_id"
	" WHERE tm.org_id = $1 AND tm.user_id = $2"
	" UNION ALL "
	"SELECT r.role_id, t.scope_id, NULL::text"
	"  FROM um.team_member_roles r JOIN um.teams t ON t.id = r.team_id"
	" WHERE r.org_id = $1 AND r.user_id = $2",
	/* Q_SCOPES */
	"SELECT s.id, s.parent_id, s.kind, s.inherit FROM um.scopes s WHERE s.org_id = $1"
};

static const int query_nargs[NQUERIES] = {0, 1, 1, 2, 2, 1};

/* ---- invalidation ---------------------------------------------------- */

/*
 * cache_relcache_callback: a relcache invalidation arrived.  Ours name the
 * sentinel; InvalidOid means "everything" (e.g. after sinval overflow).
 * Only mark: the reset waits until no check is using the entries.
 */
static void
cache_relcache_callback(Datum arg, Oid relid)
{
	(void) arg;

	if (relid == InvalidOid || (OidIsValid(sentinel_relid) && relid == sentinel_relid))
	{
		cache_stale = true;
		cache_generation++;
		stats.invalidations++;
		sentinel_relid = InvalidOid;	/* look it up again: it may be gone */
	}
}

/*
 * cache_xact_callback: entries read with a query's snapshot never outlive
 * the transaction (um_cache_begin drops them sooner, when the snapshot
 * changes).
 */
static void
cache_xact_callback(XactEvent event, void *arg)
{
	(void) arg;

	if (snapshot_bound &&
		(event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		 event == XACT_EVENT_PREPARE))
	{
		snapshot_bound = false;
		cache_stale = true;
		cache_generation++;
	}
}

/* is the snapshot the parallel-mode entries were read with still the one in use? */
static bool
bound_snapshot_current(void)
{
	Snapshot	snap;

	if (!IsInParallelMode() || !ActiveSnapshotSet())
		return false;
	snap = GetActiveSnapshot();
	return snap == bound_snapshot && snap->xmin == bound_xmin &&
		snap->xmax == bound_xmax && snap->curcid == bound_curcid;
}

/*
 * lookup_sentinel: the OID of um.cache_sentinel, or InvalidOid when um is
 * not installed in this database.
 */
static Oid
lookup_sentinel(void)
{
	Oid			nsp = get_namespace_oid("um", true);

	if (!OidIsValid(nsp))
		return InvalidOid;
	return get_relname_relid("cache_sentinel", nsp);
}

/*
 * um_cache_invalidate_trigger: statement-level trigger on um's tables.
 */
Datum
um_cache_invalidate_trigger(PG_FUNCTION_ARGS)
{
	Oid			relid;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "um_cache_invalidate_trigger: not called by trigger manager");
	relid = lookup_sentinel();
	if (OidIsValid(relid))
		CacheInvalidateRelcacheByRelid(relid);
	return PointerGetDatum(NULL);
}

/*
 * um_cache_reset_all: drop everything now (um_cache_reset() and tests).
 */
void
um_cache_reset_all(void)
{
	cache_stale = true;
	cache_generation++;
}

/* ---- setup ----------------------------------------------------------- */

void
um_cache_init(void)
{
	DefineCustomIntVariable("um.cache_memory_limit",
							"Memory a backend may use for um's permission cache.",
							"When the cache grows past this, it is emptied and refilled on demand.",
							&cache_memory_limit_kb,
							65536, 64, MAX_KILOBYTES,
							PGC_SUSET,
							GUC_UNIT_KB,
							NULL, NULL, NULL);
	CacheRegisterRelcacheCallback(cache_relcache_callback, (Datum) 0);
	RegisterXactCallback(cache_xact_callback, NULL);
	memset(&stats, 0, sizeof(stats));
}

static HTAB *
make_hash(const char *name, Size keysize, Size entrysize, int flags)
{
	HASHCTL		ctl;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = keysize;
	ctl.entrysize = entrysize;
	ctl.hcxt = cache_cxt;
	return hash_create(name, 256, &ctl, HASH_ELEM | HASH_CONTEXT | flags);
}

/*
 * cache_reset: empty the cache.  Callers hold no pointers into it.
 */
static void
cache_reset(void)
{
	if (cache_cxt == NULL)
		cache_cxt = AllocSetContextCreate(CacheMemoryContext, "um permission cache",
										  ALLOCSET_DEFAULT_SIZES);
	else
		MemoryContextReset(cache_cxt);
	perm_hash = NULL;
	perm_names = NULL;
	perm_parsed = NULL;
	nperms = nwords = nkinds = 0;
	user_hash = make_hash("um users", sizeof(int64), sizeof(UmUser), HASH_BLOBS);
	org_hash = make_hash("um organizations", sizeof(int64), sizeof(UmOrg), HASH_BLOBS);
	role_hash = make_hash("um roles", sizeof(int64), sizeof(RoleEntry), HASH_BLOBS);
	member_hash = make_hash("um members", sizeof(UmMemberKey), sizeof(UmMember), HASH_BLOBS);
	scope_hash = make_hash("um scopes", sizeof(int64), sizeof(UmScope), HASH_BLOBS);
	kind_hash = make_hash("um scope kinds", 64, sizeof(KindEntry), HASH_STRINGS);
	memo_hash = make_hash("um scope memo", sizeof(MemoKey), sizeof(ScopeMemo), HASH_BLOBS);
	cache_stale = false;
	snapshot_bound = false;
	loads_since_size_check = 0;
	stats.resets++;
}

/*
 * um_cache_begin: make the cache current for a check.  Returns the
 * generation the caller must see unchanged at the end of its check.
 */
uint64
um_cache_begin(void)
{
	AcceptInvalidationMessages();
	/* half-built entries of a load that an error interrupted */
	if (load_in_progress)
	{
		load_in_progress = false;
		cache_stale = true;
		cache_generation++;
	}
	/* entries read with a query snapshot that is no longer the one in use */
	if (snapshot_bound && !cache_stale && !bound_snapshot_current())
	{
		cache_stale = true;
		cache_generation++;
	}
	/* the bound on memory: checked after loads, not on every (warm) check */
	if (loads_since_size_check > 0 && !cache_stale && cache_cxt != NULL)
	{
		loads_since_size_check = 0;
		if (MemoryContextMemAllocated(cache_cxt, true) > (Size) cache_memory_limit_kb * 1024)
		{
			cache_stale = true;
			cache_generation++;
			stats.evictions++;
		}
	}
	if (cache_stale || cache_cxt == NULL)
		cache_reset();
	return cache_generation;
}

uint64
um_cache_generation(void)
{
	return cache_generation;
}

/* ---- loading ----------------------------------------------------------- */

typedef struct LoadState
{
	UmRunAs		run_as;
	Snapshot	snapshot;
} LoadState;

/*
 * load_begin: connect to SPI as um's owner (owner.c), with a pinned
 * search_path, and pick the snapshot the entries will be read with.
 */
static void
load_begin(LoadState *ls)
{
	/* entries loaded from now on are dropped by the sentinel's invalidation */
	if (!OidIsValid(sentinel_relid))
		sentinel_relid = lookup_sentinel();
	um_run_as_begin(&ls->run_as, um_owner(), false);

	if (IsInParallelMode())
	{
		Snapshot	snap;

		/*
		 * A parallel query can only load with the query's snapshot.  Under
		 * READ COMMITTED that is taken at the statement's start, which is
		 * what a check may rely on; under REPEATABLE READ it is the
		 * transaction's, older than revocations committed since, which the
		 * same check in a serial plan would honour.  Refuse rather than
		 * answer from the past.
		 */
		if (IsolationUsesXactSnapshot())
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("um cannot check permissions in a parallel query of a REPEATABLE READ or SERIALIZABLE transaction"),
					 errdetail("Parallel workers would see grants as of the transaction's snapshot, also those revoked since."),
					 errhint("Run reports in READ COMMITTED, or SET LOCAL max_parallel_workers_per_gather = 0 in the transaction.")));
		if (!ActiveSnapshotSet())
			elog(ERROR, "um: no active snapshot in parallel mode");
		snap = GetActiveSnapshot();
		if (snapshot_bound && !bound_snapshot_current())
			elog(ERROR, "um: permission cache bound to another snapshot");
		snapshot_bound = true;
		bound_snapshot = snap;
		bound_xmin = snap->xmin;
		bound_xmax = snap->xmax;
		bound_curcid = snap->curcid;
		ls->snapshot = RegisterSnapshot(snap);
	}
	else
		ls->snapshot = RegisterSnapshot(GetLatestSnapshot());
	load_in_progress = true;
}

static void
load_end(LoadState *ls)
{
	load_in_progress = false;
	UnregisterSnapshot(ls->snapshot);
	um_run_as_end(&ls->run_as);
}

/*
 * run_query: execute saved query q with up to two bigint arguments.
 */
static void
run_query(LoadState *ls, int q, int64 a1, int64 a2)
{
	Datum		values[2];
	int			rc;

	if (plans[q] == NULL)
	{
		Oid			argtypes[2] = {INT8OID, INT8OID};
		SPIPlanPtr	plan = SPI_prepare(query_text[q], query_nargs[q], argtypes);

		if (plan == NULL)
			elog(ERROR, "um: SPI_prepare failed for query %d: %s", q,
				 SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "um: SPI_keepplan failed");
		plans[q] = plan;
	}
	values[0] = Int64GetDatum(a1);
	values[1] = Int64GetDatum(a2);
	rc = SPI_execute_snapshot(plans[q], values, NULL, ls->snapshot,
							  InvalidSnapshot, true, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "um: loader query %d failed: %s", q, SPI_result_code_string(rc));
	stats.queries++;
	loads_since_size_check++;
}

static int64
get_int8(int row, int col, bool *isnull)
{
	Datum		d = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, isnull);

	return *isnull ? 0 : DatumGetInt64(d);
}

/* ---- the permission catalog ------------------------------------------------ */

static int
cmp_cstring(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

static void
ensure_catalog(void)
{
	LoadState	ls;
	MemoryContext old;
	HTAB	   *hash;
	int			i;

	if (perm_hash != NULL)
		return;
	load_begin(&ls);
	run_query(&ls, Q_CATALOG, 0, 0);
	old = MemoryContextSwitchTo(cache_cxt);
	nperms = (int) SPI_processed;
	nwords = Max(1, (nperms + 63) / 64);
	perm_names = palloc(sizeof(char *) * Max(nperms, 1));
	perm_parsed = palloc(sizeof(UmPermName) * Max(nperms, 1));
	for (i = 0; i < nperms; i++)
		perm_names[i] = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
	qsort(perm_names, nperms, sizeof(char *), cmp_cstring);
	hash = make_hash("um permissions", UM_PERMNAME_MAX + 1, sizeof(PermEntry), HASH_STRINGS);
	for (i = 0; i < nperms; i++)
	{
		PermEntry  *e;
		bool		found;
		size_t		len = strlen(perm_names[i]);

		if (len > UM_PERMNAME_MAX ||
			!um_permname_parse(perm_names[i], len, false, &perm_parsed[i], NULL))
			elog(ERROR, "um: invalid permission \"%s\" in um.permissions", perm_names[i]);
		e = hash_search(hash, perm_names[i], HASH_ENTER, &found);
		e->id = i;
	}
	perm_hash = hash;			/* visible only once complete */
	MemoryContextSwitchTo(old);
	load_end(&ls);
}

/*
 * um_cache_perm_id: the id of a permission name; raises the error for an
 * invalid name (UM010) or one missing from the catalog (UM011).
 */
int
um_cache_perm_id(const char *name, size_t len)
{
	char		key[UM_PERMNAME_MAX + 1];
	PermEntry  *e;

	um_permname_check(name, len, false, NULL);	/* also bounds len */
	ensure_catalog();
	memcpy(key, name, len);
	key[len] = '\0';
	e = hash_search(perm_hash, key, HASH_FIND, NULL);
	if (e != NULL)
		return e->id;
	ereport(ERROR,
			(errcode(ERRCODE_UM_UNKNOWN_PERMISSION),
			 errmsg("unknown permission \"%s\"", key),
			 errdetail("It is not in the permission catalog um.permissions."),
			 errhint("Check the spelling, or register it first with um_register_permission().")));
	return -1;					/* keep compiler quiet */
}

/* set the bits of every catalog permission the pattern covers */
static void
add_pattern(uint64 *bits, const char *pattern)
{
	UmPermName	p;
	int			i;

	if (!um_permname_parse(pattern, strlen(pattern), true, &p, NULL))
		return;					/* CHECK constraints keep these out */
	for (i = 0; i < nperms; i++)
		if (um_permname_matches(&p, &perm_parsed[i]))
			bits[i / 64] |= UINT64CONST(1) << (i % 64);
}

/* um_cache_perm_count: how many permissions the catalog holds (ids 0..n-1) */
int
um_cache_perm_count(void)
{
	ensure_catalog();
	return nperms;
}

/* um_cache_perm_name: the name of a permission id (ids follow the names' byte order) */
const char *
um_cache_perm_name(int id)
{
	ensure_catalog();
	Assert(id >= 0 && id < nperms);
	return perm_names[id];
}

/* ---- users -------------------------------------------------------------------- */

static const UmUser *
cache_user(int64 user_id)
{
	UmUser	   *u;
	bool		found;
	LoadState	ls;
	bool		exists,
				active = false;
	int			norgs = 0;
	int64	   *orgs = NULL;

	u = hash_search(user_hash, &user_id, HASH_FIND, NULL);
	if (u != NULL)
	{
		stats.hits++;
		return u;
	}
	stats.misses++;
	load_begin(&ls);
	run_query(&ls, Q_USER, user_id, 0);
	exists = SPI_processed > 0;
	if (exists)
	{
		bool		isnull;
		Datum		d;

		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		active = !isnull && DatumGetBool(d);
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
		if (!isnull)
		{
			ArrayType  *arr = DatumGetArrayTypeP(d);

			if (ARR_ELEMTYPE(arr) != INT8OID || ARR_HASNULL(arr) || ARR_NDIM(arr) > 1)
				elog(ERROR, "um: unexpected organization array");
			norgs = ArrayGetNItems(ARR_NDIM(arr), ARR_DIMS(arr));
			orgs = MemoryContextAlloc(cache_cxt, sizeof(int64) * Max(norgs, 1));
			if (norgs > 0)
				memcpy(orgs, ARR_DATA_PTR(arr), sizeof(int64) * norgs);
		}
	}
	u = hash_search(user_hash, &user_id, HASH_ENTER, &found);
	u->exists = exists;
	u->active = active;
	u->norgs = norgs;
	u->orgs = orgs;
	load_end(&ls);
	return u;
}

/* ---- organizations: roles and scopes ------------------------------------------- */

static RoleEntry *
role_entry(int64 role_id)
{
	RoleEntry  *r = hash_search(role_hash, &role_id, HASH_FIND, NULL);

	if (r == NULL)
	{
		uint64	   *bits = MemoryContextAllocZero(cache_cxt, sizeof(uint64) * nwords);
		bool		found;

		r = hash_search(role_hash, &role_id, HASH_ENTER, &found);
		r->bits = bits;
	}
	return r;
}

static UmOrg *
cache_org(int64 org_id)
{
	UmOrg	   *o;
	bool		found;
	LoadState	ls;
	uint64		i;
	int			nedges = 0;
	RoleEntry **edges;			/* pairs: including role, included role */
	bool		changed;

	o = hash_search(org_hash, &org_id, HASH_FIND, NULL);
	if (o != NULL)
		return o;
	ensure_catalog();
	load_begin(&ls);
	run_query(&ls, Q_ORG_ROLES, org_id, 0);
	edges = palloc(sizeof(RoleEntry *) * 2 * Max((int) SPI_processed, 1));
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		int64		role_id = get_int8((int) i, 1, &isnull);
		char	   *pattern = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);
		int64		included = get_int8((int) i, 3, &isnull);
		RoleEntry  *r = role_entry(role_id);

		if (pattern != NULL)
			add_pattern(r->bits, pattern);
		else if (!isnull)
		{
			edges[2 * nedges] = r;
			edges[2 * nedges + 1] = role_entry(included);
			nedges++;
		}
	}
	/* close over inclusions: a role grants what the roles it includes grant */
	do
	{
		int			e,
					w;

		changed = false;
		for (e = 0; e < nedges; e++)
		{
			uint64	   *to = edges[2 * e]->bits;
			const uint64 *from = edges[2 * e + 1]->bits;

			for (w = 0; w < nwords; w++)
			{
				if ((from[w] & ~to[w]) != 0)
				{
					to[w] |= from[w];
					changed = true;
				}
			}
		}
	} while (changed);
	pfree(edges);
	o = hash_search(org_hash, &org_id, HASH_ENTER, &found);
	o->scopes_loaded = false;
	o->nscopes = 0;
	o->scope_ids = NULL;
	load_end(&ls);
	return o;
}

/*
 * um_cache_role_bits: the permissions a role of the organization grants,
 * closed over its inclusions and wildcards; NULL when it grants none.  The
 * caller names a role of that organization (roles are keyed by id alone).
 */
const uint64 *
um_cache_role_bits(int64 org_id, int64 role_id)
{
	RoleEntry  *r;

	(void) cache_org(org_id);
	r = hash_search(role_hash, &role_id, HASH_FIND, NULL);
	return r != NULL ? r->bits : NULL;
}

/* or the role's permissions into bits (a role without permissions adds nothing) */
static void
or_role(uint64 *bits, int64 role_id)
{
	RoleEntry  *r = hash_search(role_hash, &role_id, HASH_FIND, NULL);
	int			w;

	if (r == NULL)
		return;
	for (w = 0; w < nwords; w++)
		bits[w] |= r->bits[w];
}

/* the id of a scope kind; -1 when unknown and not added */
static int
kind_id(const char *kind, bool add)
{
	char		key[64];
	KindEntry  *k;
	bool		found;

	strlcpy(key, kind, sizeof(key));
	k = hash_search(kind_hash, key, add ? HASH_ENTER : HASH_FIND, &found);
	if (k == NULL)
		return -1;
	if (!found)
		k->id = nkinds++;
	return k->id;
}

static void
ensure_scopes(UmOrg *o)
{
	LoadState	ls;
	uint64		i;

	if (o->scopes_loaded)
		return;
	load_begin(&ls);
	run_query(&ls, Q_SCOPES, o->org_id, 0);
	o->scope_ids = MemoryContextAlloc(cache_cxt, sizeof(int64) * Max((int) SPI_processed, 1));
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull,
					found;
		int64		id = get_int8((int) i, 1, &isnull);
		UmScope    *s = hash_search(scope_hash, &id, HASH_ENTER, &found);
		char	   *kind = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3);
		Datum		d;

		s->org_id = o->org_id;
		s->parent_id = get_int8((int) i, 2, &isnull);
		if (isnull)
			s->parent_id = 0;
		s->kind = kind_id(kind ? kind : "", true);
		d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 4, &isnull);
		s->inherit = isnull ? true : DatumGetBool(d);
		o->scope_ids[i] = id;
	}
	o->nscopes = (int) SPI_processed;
	o->scopes_loaded = true;
	load_end(&ls);
}

/* um_cache_org_scope_ids: every scope node of the organization */
int
um_cache_org_scope_ids(int64 org_id, const int64 **ids)
{
	UmOrg	   *o = cache_org(org_id);

	ensure_scopes(o);
	*ids = o->scope_ids;
	return o->nscopes;
}

/* ---- members ------------------------------------------------------------------ */

static const UmMember *
cache_member(int64 user_id, int64 org_id)
{
	UmMemberKey key;
	UmMember   *m;
	bool		found;
	LoadState	ls;
	uint64		i;
	int			n = 0;
	bool		active = false;
	int64		role_id = 0;
	uint64	   *baseline;
	UmGrant    *grants = NULL;

	key.user_id = user_id;
	key.org_id = org_id;
	m = hash_search(member_hash, &key, HASH_FIND, NULL);
	if (m != NULL)
	{
		stats.hits++;
		return m;
	}
	stats.misses++;
	(void) cache_org(org_id);

	load_begin(&ls);
	run_query(&ls, Q_MEMBER, org_id, user_id);
	baseline = MemoryContextAllocZero(cache_cxt, sizeof(uint64) * nwords);
	if (SPI_processed > 0)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		active = !isnull && DatumGetBool(d);
		role_id = get_int8(0, 2, &isnull);
	}
	if (active)
	{
		or_role(baseline, role_id);
		run_query(&ls, Q_MEMBER_GRANTS, org_id, user_id);
		grants = MemoryContextAlloc(cache_cxt, sizeof(UmGrant) * Max((int) SPI_processed, 1));
		for (i = 0; i < SPI_processed; i++)
		{
			bool		node_null,
						isnull;
			int64		grant_role = get_int8((int) i, 1, &isnull);
			int64		scope_id = get_int8((int) i, 2, &node_null);
			char	   *kind = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3);

			if (node_null && kind == NULL)
			{
				or_role(baseline, grant_role);	/* an organization-wide grant */
				continue;
			}
			grants[n].role_id = grant_role;
			grants[n].scope_id = node_null ? 0 : scope_id;
			grants[n].kind = kind ? MemoryContextStrdup(cache_cxt, kind) : NULL;
			n++;
		}
	}
	/* enter the entry only once it is complete */
	m = hash_search(member_hash, &key, HASH_ENTER, &found);
	m->active = active;
	m->role_id = role_id;
	m->baseline = baseline;
	m->grants = grants;
	m->ngrants = n;
	load_end(&ls);
	return m;
}

/*
 * um_cache_active_member: the member entry for a check, or NULL when the
 * user may not act (unknown, not active, not allowed to log in) or their
 * membership of the organization is not active.
 */
const UmMember *
um_cache_active_member(int64 user_id, int64 org_id)
{
	const UmMember *m;

	if (!cache_user(user_id)->active)
		return NULL;
	m = cache_member(user_id, org_id);
	return m->active ? m : NULL;
}

/* um_cache_member_baseline: an active member's organization-wide bitmap */
const uint64 *
um_cache_member_baseline(const UmMember *m)
{
	return m->baseline;
}

/*
 * um_cache_user_orgs: the organizations where the user is an active member,
 * sorted; 0 when the user may not act.
 */
int
um_cache_user_orgs(int64 user_id, const int64 **orgs)
{
	const UmUser *u = cache_user(user_id);

	if (!u->active || u->norgs <= 0)
		return 0;
	*orgs = u->orgs;
	return u->norgs;
}

/*
 * um_cache_member_bits: the organization-wide bitmap of the user's
 * membership of one of the organizations um_cache_user_orgs() listed;
 * NULL when the membership is not active.  (The user is not looked up
 * again: the caller has done so.)
 */
const uint64 *
um_cache_member_bits(int64 user_id, int64 org_id)
{
	const UmMember *m = cache_member(user_id, org_id);

	return m->active ? m->baseline : NULL;
}

/*
 * um_cache_scope_bits: the permissions of a member at one scope node: the
 * organization-wide ones, plus every grant made on the node or on an
 * ancestor up to and including the nearest node that breaks inheritance
 * (by node, by the node's kind, or by a team whose space it is).  NULL when
 * the node is not in the member's organization.
 */
const uint64 *
um_cache_scope_bits(const UmMember *m, int64 scope_id)
{
	MemoKey		key;
	ScopeMemo  *memo;
	bool		found;
	int64		chain_ids[UM_MAX_SCOPE_DEPTH];
	int			chain_kinds[UM_MAX_SCOPE_DEPTH];
	int			depth = 0;
	int64		cur = scope_id;
	bool		too_deep = false;
	uint64	   *bits;
	int			i,
				j;

	/* 0 is no node's id (top-level nodes have parent 0): never org-wide */
	if (scope_id == 0)
		return NULL;

	memset(&key, 0, sizeof(key));
	key.user_id = m->key.user_id;
	key.org_id = m->key.org_id;
	key.scope_id = scope_id;
	memo = hash_search(memo_hash, &key, HASH_FIND, NULL);
	if (memo != NULL)
	{
		stats.hits++;
		return memo->bits;
	}
	stats.misses++;
	ensure_scopes(cache_org(m->key.org_id));

	while (cur != 0)
	{
		UmScope    *s = hash_search(scope_hash, &cur, HASH_FIND, NULL);

		if (s == NULL || s->org_id != m->key.org_id)
		{
			if (depth == 0)
				return NULL;	/* not a node of this organization */
			break;
		}
		if (depth >= UM_MAX_SCOPE_DEPTH)
		{
			too_deep = true;
			break;
		}
		chain_ids[depth] = cur;
		chain_kinds[depth] = s->kind;
		depth++;
		if (!s->inherit)
			break;
		cur = s->parent_id;
	}
	if (too_deep)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("scope node " INT64_FORMAT " is nested deeper than %d levels",
						scope_id, UM_MAX_SCOPE_DEPTH),
				 errhint("Flatten the scope tree of the organization.")));

	bits = MemoryContextAlloc(cache_cxt, sizeof(uint64) * nwords);
	memcpy(bits, m->baseline, sizeof(uint64) * nwords);
	for (i = 0; i < m->ngrants; i++)
	{
		const UmGrant *g = &m->grants[i];
		int			kind = g->kind ? kind_id(g->kind, false) : -1;
		bool		applies = false;

		for (j = 0; j < depth && !applies; j++)
			applies = (g->scope_id != 0 && g->scope_id == chain_ids[j]) ||
				(kind >= 0 && kind == chain_kinds[j]);
		if (applies)
			or_role(bits, g->role_id);
	}
	memo = hash_search(memo_hash, &key, HASH_ENTER, &found);
	memo->bits = bits;
	return bits;
}

/* ---- statistics ------------------------------------------------------------ */

void
um_cache_get_stats(UmCacheStats *out)
{
	*out = stats;
	out->memory_bytes = cache_cxt ? (int64) MemoryContextMemAllocated(cache_cxt, true) : 0;
	out->users = user_hash ? hash_get_num_entries(user_hash) : 0;
	out->members = member_hash ? hash_get_num_entries(member_hash) : 0;
	out->organizations = org_hash ? hash_get_num_entries(org_hash) : 0;
	out->scope_memos = memo_hash ? hash_get_num_entries(memo_hash) : 0;
	out->permissions = nperms;
}

/* the memory bound of this backend's cache (um.cache_memory_limit), in bytes */
int64
um_cache_memory_limit(void)
{
	return (int64) cache_memory_limit_kb * 1024;
}

/* a number that grows whenever the cache is used or changed (for the monitor) */
uint64
um_cache_activity(void)
{
	return (uint64) (stats.hits + stats.misses + stats.invalidations + stats.resets + stats.evictions);
}

/*
 * um_cache_attempt_done: did an attempt (a check, a guard) that began at
 * generation gen see that generation throughout?  If not, it counts a
 * retry and the caller starts over from the emptied cache; a generation that
 * keeps moving gives up after UM_CACHE_MAX_ATTEMPTS.
 */
#define UM_CACHE_MAX_ATTEMPTS 100

bool
um_cache_attempt_done(uint64 gen, int attempt)
{
	if (cache_generation == gen)
		return true;
	stats.retries++;
	if (attempt >= UM_CACHE_MAX_ATTEMPTS)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("um's permission data kept changing during a check"),
				 errhint("Retry the statement.")));
	return false;
}
