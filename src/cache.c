/*-------------------------------------------------------------------------
 *
 * src/cache.c
 *	  The backend-local grant cache: what it holds, how it is filled, and
 *	  why its answers always equal the tables.
 *
 * What it holds (all in one memory context):
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
 * Invalidation, with the grain of the data.  Every entry belongs to one of
 * UM_CACHE_BUCKETS buckets by a hash of its user (user entries) or of its
 * organization (organization entries); a member entry belongs to both its
 * user's and its organization's bucket.  Each bucket has an address: a
 * relation um.cache_bucket_<n> that stores nothing (a composite type).  A
 * row trigger on every table the answers depend on (um.state_tables says
 * which, and which column names the user or organization a row is about)
 * queues a relcache invalidation of the bucket of each user or
 * organization a change touches; a change to the permission catalog, a
 * TRUNCATE, or anything we cannot place queues one of um.cache_sentinel,
 * which empties the whole cache.  PostgreSQL delivers these messages
 * transactionally: to the writing backend at the end of the statement
 * (CommandCounterIncrement), to every other backend of the database after
 * commit, never for a rolled-back change (an abort replays the writer's own
 * messages locally, undoing what it cached), and, being WAL-logged with the
 * commit record, to hot standby backends when replay reaches the commit.
 * Our relcache callback only marks the bucket stale; its entries are
 * dropped at the next check, when nobody holds a pointer into the cache.
 * A change in one organization thus leaves the entries of organizations
 * and users of the other buckets warm.
 *
 * Which snapshot fills the cache, and why it cannot go stale.  Every check
 * first calls AcceptInvalidationMessages(), so messages already sent are
 * processed.  Entries are then loaded with a snapshot taken afterwards
 * (GetLatestSnapshot(), as catalog caches do with their catalog snapshot),
 * so they include every change whose message has been processed: a change
 * is visible to new snapshots before its committer sends the message.  A
 * message processed while loading (lock acquisition processes messages)
 * bumps the generation; the check notices that the generation moved and
 * starts over once the stale buckets are dropped, in the manner of
 * sepgsql's uavc.c.  An entry built while its bucket's message arrived is
 * entered after the bucket was marked, so that drop removes it too.  A
 * change committed after the snapshot was taken sends its message after
 * that; it drops the entry whenever it is processed, at the latest at the
 * next check or transaction start.  Hence no stale grant survives the
 * processing of a revocation's message.
 *
 * The price of reading the latest state is the one PostgreSQL pays for its
 * own privilege checks: within a REPEATABLE READ transaction a committed
 * revocation takes effect at the next check, not at the next transaction.
 *
 * In parallel mode (a check in the leader of a parallel query) no new
 * snapshot may be taken; entries are then loaded with the query's snapshot
 * and are good only under that snapshot: the first check under another one
 * (or outside parallel mode) empties the cache, and so does the end of the
 * transaction.  A load that an error interrupts may leave half-built
 * entries; the next check empties the cache.
 *
 * Memory.  Past um.cache_memory_limit the least recently used buckets are
 * dropped, one at a time, until the cache is back under nine tenths of
 * the limit; the cache is never emptied for size.
 *
 * The loader reads users and organizations by direct index scans (see
 * loader_tables) and runs its other queries as um's owner (owner.c), with a
 * search_path of pg_catalog only, so neither the caller's privileges nor
 * its search_path can change an answer.  One call of this module's
 * interface opens that context at most once, however many entries it loads.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/indexing.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/ilist.h"
#include "miscadmin.h"
#include "port/pg_bitutils.h"
#include "storage/lmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "um.h"

PG_FUNCTION_INFO_V1(um_cache_invalidate_trigger);

/* Settings */
static int	cache_memory_limit_kb = 65536;

/* ---- state ---------------------------------------------------------- */

static MemoryContext cache_cxt = NULL;
static bool cache_stale = true;		/* empty before next use */
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
static UmCacheStats stats;

/*
 * The addresses of the messages: the sentinel (everything) and one relation
 * per bucket, looked up together (InvalidOid: not yet, or um is gone); and
 * um's owner, whom the loader runs as.  The sentinel's own invalidation
 * (dropping or altering it, REASSIGN OWNED) makes us look all of it up
 * again.
 */
#define UM_CACHE_BUCKETS		1024
StaticAssertDecl(UM_CACHE_BUCKETS <= PG_UINT16_MAX + 1 && UM_CACHE_BUCKETS % 64 == 0,
				 "entries keep their bucket in a uint16; the stale set is whole words");
static Oid	sentinel_relid = InvalidOid;
static Oid	owner_oid = InvalidOid;
static Oid	bucket_relid[UM_CACHE_BUCKETS];
typedef struct BucketAddress
{
	Oid			relid;
	int			bucket;
} BucketAddress;
static BucketAddress bucket_by_relid[UM_CACHE_BUCKETS];	/* sorted by relid */
static bool addresses_known = false;

/* the buckets whose messages arrived since the last check */
static uint64 stale_buckets[UM_CACHE_BUCKETS / 64];
static bool any_stale_bucket = false;

/* the earliest holds_until of the user entries (0: none): when it passes, their buckets go stale */
static TimestampTz earliest_hold = 0;

/* deepest scope tree a check walks up */
#define UM_MAX_SCOPE_DEPTH		64

/*
 * The entries.  Every table is one flat dynahash in cache_cxt (a dynahash
 * per organization or member would cost a memory context each); dynahash
 * entries stay where they are until removed, so the buckets' lists can
 * link them.  None of them leaves this file: the evaluator reaches them
 * through the functions of um.h (UmMember only as an opaque pointer).
 */
typedef struct UmUser
{
	int64		user_id;		/* key */
	bool		exists;
	bool		active;			/* status active and allow_login */
	uint16		bucket;
	TimestampTz holds_until;	/* a timed suspension of the user or of a
								 * membership ends then: the entry (and its
								 * members) is made again; 0: none */
	int			norgs;			/* organizations with an active membership */
	int64	   *orgs;			/* sorted */
	int64	   *org_roles;		/* the membership's role in each */
	int			nextra;			/* organizations with grants or teams */
	int64	   *extra_orgs;		/* sorted */
	dlist_node	bucket_node;	/* in its bucket's users */
} UmUser;

typedef struct UmOrg
{
	int64		org_id;			/* key */
	uint16		bucket;
	bool		scopes_loaded;
	int			nscopes;
	int64	   *scope_ids;		/* every scope node of the organization */
	int			nroles;
	int64	   *role_ids;		/* its roles in role_hash */
	dlist_node	bucket_node;	/* in its bucket's orgs */
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
	uint16		user_bucket;
	uint16		org_bucket;
	int64		role_id;		/* the organization role */
	uint64	   *baseline;		/* organization-wide permission bitmap */
	int			ngrants;		/* grants on scope nodes or kinds */
	UmGrant    *grants;
	dlist_node	user_node;		/* in its user's bucket */
	dlist_node	org_node;		/* in its organization's bucket */
	dlist_head	memos;			/* its ScopeMemos */
};

typedef struct PermEntry
{
	char		name[UM_PERMNAME_MAX + 1];	/* key */
	int			id;
} PermEntry;

/* a permission pattern of role_permissions, and the catalog ids it covers */
typedef struct PatternEntry
{
	char		name[UM_PERMNAME_MAX + 1];	/* key */
	uint64	   *bits;
} PatternEntry;

/*
 * Patterns memoized at most: organizations mostly repeat the same few
 * dozen; past this many (a catalog of thousands, each granted by name)
 * the rest are matched against the catalog at each load.
 */
#define UM_MAX_PATTERNS		8192

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
	dlist_node	member_node;	/* in its member's memos */
} ScopeMemo;

/* what each bucket holds, and when it was last used (for the memory bound) */
typedef struct CacheBucket
{
	dlist_head	users;
	dlist_head	orgs;
	dlist_head	members_by_user;
	dlist_head	members_by_org;
	uint64		last_used;
} CacheBucket;

static CacheBucket buckets[UM_CACHE_BUCKETS];
static uint64 use_clock = 0;

/* bytes the entries take (chunks and hash entries), for the memory bound */
static Size cache_bytes = 0;

static HTAB *perm_hash = NULL;
static HTAB *pattern_hash = NULL;	/* part of the catalog: reset with it */
static long npatterns = 0;
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
	Q_CATALOG, Q_MEMBER, Q_SCOPES, NQUERIES
};
static SPIPlanPtr plans[NQUERIES];

static const char *const query_text[NQUERIES] = {
	/* Q_CATALOG */
	"SELECT name FROM um.permissions",
	/*
	 * Q_MEMBER: the membership (kind 0: its organization role), and
	 * (role, node, kind) given to the user, to their teams, and within
	 * their teams (kind 1); no rows when not a member.
	 */
	"SELECT 0, NULL::boolean, m.role_id, NULL::bigint, NULL::text FROM um.memberships m"
	" WHERE m.org_id = $1 AND m.user_id = $2"
	" UNION ALL "
	"SELECT 1, NULL, g.role_id, g.scope_id, g.scope_kind FROM um.grants g"
	" WHERE g.org_id = $1 AND g.user_id = $2"
	" UNION ALL "
	"SELECT 1, NULL, g.role_id, g.scope_id, g.scope_kind"
	"  FROM um.team_members tm JOIN um.grants g ON g.team_id = tm.team_id"
	" WHERE tm.org_id = $1 AND tm.user_id = $2"
	" UNION ALL "
	"SELECT 1, NULL, r.role_id, t.scope_id, NULL::text"
	"  FROM um.team_member_roles r JOIN um.teams t ON t.id = r.team_id"
	" WHERE r.org_id = $1 AND r.user_id = $2",
	/* Q_SCOPES */
	"SELECT s.id, s.parent_id, s.kind, s.inherit FROM um.scopes s WHERE s.org_id = $1"
};

static const int query_nargs[NQUERIES] = {0, 2, 1};


/* ---- buckets ------------------------------------------------------------ */

/*
 * The bucket of a user or an organization: a fixed mix of the id (the
 * splitmix64 finalizer), the same in every backend and on every standby
 * running this library.  Users and organizations are mixed apart, so that
 * user 7 and organization 7 need not share a bucket.
 */
static inline int
bucket_of(int64 id, bool is_org)
{
	uint64		x = (uint64) id ^ (is_org ? UINT64CONST(0x9e3779b97f4a7c15) : 0);

	x ^= x >> 30;
	x *= UINT64CONST(0xbf58476d1ce4e5b9);
	x ^= x >> 27;
	x *= UINT64CONST(0x94d049bb133111eb);
	x ^= x >> 31;
	return (int) (x % UM_CACHE_BUCKETS);
}

static inline void
touch_bucket(int b)
{
	buckets[b].last_used = ++use_clock;
}

static int
cmp_address(const void *a, const void *b)
{
	Oid			x = ((const BucketAddress *) a)->relid;
	Oid			y = ((const BucketAddress *) b)->relid;

	return x < y ? -1 : x > y ? 1 : 0;
}

/*
 * find_bucket_relations: the relations um.cache_bucket_<n>, by one range
 * scan of pg_class's (relname, relnamespace) index rather than a catalog
 * cache lookup per bucket (a thousand misses at a backend's first check).
 * A bucket not found keeps InvalidOid: its changes address the sentinel.
 */
static void
find_bucket_relations(Oid nsp)
{
	static const char prefix[] = "cache_bucket_";
	NameData	lo,
				hi;
	ScanKeyData key[3];
	Relation	rel;
	SysScanDesc scan;
	HeapTuple	tup;
	int			b;

	for (b = 0; b < UM_CACHE_BUCKETS; b++)
		bucket_relid[b] = InvalidOid;
	namestrcpy(&lo, prefix);
	namestrcpy(&hi, "cache_bucket`");	/* '`' follows '_' */
	ScanKeyInit(&key[0], Anum_pg_class_relname, BTGreaterEqualStrategyNumber, F_NAMEGE, NameGetDatum(&lo));
	ScanKeyInit(&key[1], Anum_pg_class_relname, BTLessStrategyNumber, F_NAMELT, NameGetDatum(&hi));
	ScanKeyInit(&key[2], Anum_pg_class_relnamespace, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(nsp));
	rel = table_open(RelationRelationId, AccessShareLock);
	scan = systable_beginscan(rel, ClassNameNspIndexId, true, NULL, 3, key);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_class form = (Form_pg_class) GETSTRUCT(tup);
		const char *digits = NameStr(form->relname) + sizeof(prefix) - 1;
		char		canonical[NAMEDATALEN];
		char	   *end;
		long		n;

		if (form->relnamespace != nsp || form->relkind != RELKIND_COMPOSITE_TYPE ||
			strncmp(NameStr(form->relname), prefix, sizeof(prefix) - 1) != 0)
			continue;
		errno = 0;
		n = strtol(digits, &end, 10);
		if (errno != 0 || *end != '\0' || n < 0 || n >= UM_CACHE_BUCKETS)
			continue;
		snprintf(canonical, sizeof(canonical), "%ld", n);
		if (strcmp(canonical, digits) != 0)
			continue;
		bucket_relid[n] = form->oid;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
}

/*
 * lookup_addresses: find the sentinel, the buckets' relations and um's
 * owner; false when um is not installed in this database.  (A schema of
 * 0.2 has no buckets: its triggers only ever address the sentinel.)
 */
static bool
lookup_addresses(void)
{
	Oid			nsp;
	int			b;

	if (addresses_known)
		return true;
	nsp = get_namespace_oid("um", true);
	if (!OidIsValid(nsp))
		return false;
	sentinel_relid = get_relname_relid("cache_sentinel", nsp);
	if (!OidIsValid(sentinel_relid))
		return false;
	find_bucket_relations(nsp);
	for (b = 0; b < UM_CACHE_BUCKETS; b++)
	{
		bucket_by_relid[b].relid = bucket_relid[b];
		bucket_by_relid[b].bucket = b;
	}
	qsort(bucket_by_relid, UM_CACHE_BUCKETS, sizeof(BucketAddress), cmp_address);
	owner_oid = um_owner();
	addresses_known = true;
	return true;
}

/* the bucket a relation addresses, or -1 */
static int
bucket_of_relid(Oid relid)
{
	int			lo = 0,
				hi = UM_CACHE_BUCKETS - 1;

	while (lo <= hi)
	{
		int			mid = (lo + hi) / 2;

		if (bucket_by_relid[mid].relid == relid)
			return bucket_by_relid[mid].bucket;
		if (bucket_by_relid[mid].relid < relid)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return -1;
}

/*
 * um_cache_relid_is_sentinel: is relid one of the relations whose
 * invalidations carry um's cache changes?  (false while their addresses are
 * not known: a caller then treats the invalidation as any other)
 */
bool
um_cache_relid_is_sentinel(Oid relid)
{
	return addresses_known && (relid == sentinel_relid || bucket_of_relid(relid) >= 0);
}

/* ---- invalidation ---------------------------------------------------- */

/* everything is stale: the next check empties the cache */
static void
mark_all_stale(void)
{
	cache_stale = true;
	cache_generation++;
}

/*
 * cache_relcache_callback: a relcache invalidation arrived.  Ours name the
 * sentinel (everything) or a bucket; InvalidOid means "every relation"
 * (e.g. after sinval overflow).  Only mark: the entries are dropped when no
 * check is using them.
 */
static void
cache_relcache_callback(Datum arg, Oid relid)
{
	int			b;

	(void) arg;

	if (relid == InvalidOid || (addresses_known && relid == sentinel_relid))
	{
		mark_all_stale();
		stats.invalidations++;
		addresses_known = false;	/* look them up again: they may be gone */
		return;
	}
	if (!addresses_known)
		return;
	b = bucket_of_relid(relid);
	if (b < 0)
		return;
	stale_buckets[b / 64] |= UINT64CONST(1) << (b % 64);
	any_stale_bucket = true;
	cache_generation++;
	stats.invalidations++;
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
		mark_all_stale();
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
 * invalidate_key: queue the message for the entries of the user or
 * organization that column names in the tuple.  spec is "user:col" or
 * "org:col", with alternatives after '|' (the first non-NULL column
 * decides).  Returns false when none applies (the caller then invalidates
 * everything).
 */
static bool
invalidate_key(const char *spec, HeapTuple tuple, TupleDesc desc)
{
	char	   *copy = pstrdup(spec);
	char	   *alt;
	char	   *save = NULL;

	for (alt = strtok_r(copy, "|", &save); alt != NULL; alt = strtok_r(NULL, "|", &save))
	{
		bool		is_org;
		const char *col;
		int			attno;
		bool		isnull;
		Datum		d;

		if (strncmp(alt, "user:", 5) == 0)
		{
			is_org = false;
			col = alt + 5;
		}
		else if (strncmp(alt, "org:", 4) == 0)
		{
			is_org = true;
			col = alt + 4;
		}
		else
			elog(ERROR, "um: invalid cache key \"%s\"", spec);
		attno = SPI_fnumber(desc, col);
		if (attno <= 0 || SPI_gettypeid(desc, attno) != INT8OID)
			elog(ERROR, "um: cache key column \"%s\" is not a bigint column", col);
		d = heap_getattr(tuple, attno, desc, &isnull);
		if (isnull)
			continue;
		if (!OidIsValid(bucket_relid[bucket_of(DatumGetInt64(d), is_org)]))
			break;
		CacheInvalidateRelcacheByRelid(bucket_relid[bucket_of(DatumGetInt64(d), is_org)]);
		pfree(copy);
		return true;
	}
	pfree(copy);
	return false;
}

/*
 * um_cache_invalidate_trigger: the trigger on um's tables.  As a row
 * trigger with arguments (the cache keys of the table), it invalidates the
 * buckets of the users and organizations the row names, before and after
 * an update; as a statement trigger (TRUNCATE), or without arguments (the
 * permission catalog), everything.
 */
Datum
um_cache_invalidate_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	bool		all = true;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "um_cache_invalidate_trigger: not called by trigger manager");
	if (!lookup_addresses())
		return PointerGetDatum(NULL);	/* um is being dropped */

	if (TRIGGER_FIRED_FOR_ROW(td->tg_event) && td->tg_trigger->tgnargs > 0)
	{
		TupleDesc	desc = RelationGetDescr(td->tg_relation);
		int			i;

		all = false;
		for (i = 0; i < td->tg_trigger->tgnargs && !all; i++)
		{
			const char *spec = td->tg_trigger->tgargs[i];

			if (!invalidate_key(spec, td->tg_trigtuple, desc))
				all = true;
			else if (TRIGGER_FIRED_BY_UPDATE(td->tg_event) &&
					 !invalidate_key(spec, td->tg_newtuple, desc))
				all = true;
		}
	}
	if (all)
		CacheInvalidateRelcacheByRelid(sentinel_relid);
	return PointerGetDatum(NULL);
}

/*
 * um_cache_reset_all: drop everything now (um_cache_reset() and tests).
 */
void
um_cache_reset_all(void)
{
	mark_all_stale();
}

/* ---- setup ----------------------------------------------------------- */

void
um_cache_init(void)
{
	DefineCustomIntVariable("um.cache_memory_limit",
							"Memory a backend may use for um's permission cache.",
							"Past this, the least recently used entries are dropped and reloaded on demand.",
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

/* memory of the entries, counted for the memory bound */
static void *
cache_alloc(Size size, bool zero)
{
	void	   *p = zero ? MemoryContextAllocZero(cache_cxt, size) : MemoryContextAlloc(cache_cxt, size);

	cache_bytes += GetMemoryChunkSpace(p);
	return p;
}

static void
cache_free(void *p)
{
	if (p == NULL)
		return;
	cache_bytes -= Min(cache_bytes, GetMemoryChunkSpace(p));
	pfree(p);
}

/* enter a new entry into a hash, counting it */
static void *
cache_enter(HTAB *hash, const void *key, Size entrysize)
{
	bool		found;
	void	   *e = hash_search(hash, key, HASH_ENTER, &found);

	if (!found)
		cache_bytes += entrysize;
	return e;
}

static void
cache_remove(HTAB *hash, const void *key, Size entrysize)
{
	if (hash_search(hash, key, HASH_REMOVE, NULL) != NULL)
		cache_bytes -= Min(cache_bytes, entrysize);
}

/*
 * cache_reset: empty the cache.  Callers hold no pointers into it.
 */
static void
cache_reset(void)
{
	int			b;

	if (cache_cxt == NULL)
		cache_cxt = AllocSetContextCreate(CacheMemoryContext, "um permission cache",
										  ALLOCSET_DEFAULT_SIZES);
	else
		MemoryContextReset(cache_cxt);
	perm_hash = NULL;
	pattern_hash = NULL;
	npatterns = 0;
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
	for (b = 0; b < UM_CACHE_BUCKETS; b++)
	{
		dlist_init(&buckets[b].users);
		dlist_init(&buckets[b].orgs);
		dlist_init(&buckets[b].members_by_user);
		dlist_init(&buckets[b].members_by_org);
		buckets[b].last_used = 0;
	}
	memset(stale_buckets, 0, sizeof(stale_buckets));
	any_stale_bucket = false;
	earliest_hold = 0;
	cache_bytes = 0;
	cache_stale = false;
	snapshot_bound = false;
	loads_since_size_check = 0;
	stats.resets++;
}

/* ---- dropping entries ---------------------------------------------------- */

static void
drop_member(UmMember *m)
{
	dlist_mutable_iter it;
	UmMemberKey key = m->key;
	int			i;

	dlist_foreach_modify(it, &m->memos)
	{
		ScopeMemo  *memo = dlist_container(ScopeMemo, member_node, it.cur);
		MemoKey		mkey = memo->key;

		cache_free(memo->bits);
		cache_remove(memo_hash, &mkey, sizeof(ScopeMemo));
	}
	dlist_delete(&m->user_node);
	dlist_delete(&m->org_node);
	for (i = 0; i < m->ngrants; i++)
		cache_free(m->grants[i].kind);
	cache_free(m->grants);
	cache_free(m->baseline);
	cache_remove(member_hash, &key, sizeof(UmMember));
}

static void
drop_user(UmUser *u)
{
	int64		key = u->user_id;

	dlist_delete(&u->bucket_node);
	cache_free(u->orgs);
	cache_free(u->org_roles);
	cache_free(u->extra_orgs);
	cache_remove(user_hash, &key, sizeof(UmUser));
}

static void
drop_org(UmOrg *o)
{
	int64		key = o->org_id;
	int			i;

	for (i = 0; i < o->nroles; i++)
	{
		RoleEntry  *r = hash_search(role_hash, &o->role_ids[i], HASH_FIND, NULL);

		if (r != NULL)
		{
			cache_free(r->bits);
			cache_remove(role_hash, &o->role_ids[i], sizeof(RoleEntry));
		}
	}
	for (i = 0; i < o->nscopes; i++)
		cache_remove(scope_hash, &o->scope_ids[i], sizeof(UmScope));
	cache_free(o->role_ids);
	cache_free(o->scope_ids);
	dlist_delete(&o->bucket_node);
	cache_remove(org_hash, &key, sizeof(UmOrg));
}

/*
 * drop_bucket: drop every entry of a bucket: its users, its organizations
 * (with their roles and scope trees) and the members of either (with their
 * scope memos).  Returns how many users, organizations and members went.
 */
static int64
drop_bucket(int b)
{
	CacheBucket *bk = &buckets[b];
	dlist_mutable_iter it;
	int64		n = 0;

	dlist_foreach_modify(it, &bk->members_by_user)
	{
		drop_member(dlist_container(UmMember, user_node, it.cur));
		n++;
	}
	dlist_foreach_modify(it, &bk->members_by_org)
	{
		drop_member(dlist_container(UmMember, org_node, it.cur));
		n++;
	}
	dlist_foreach_modify(it, &bk->users)
	{
		drop_user(dlist_container(UmUser, bucket_node, it.cur));
		n++;
	}
	dlist_foreach_modify(it, &bk->orgs)
	{
		drop_org(dlist_container(UmOrg, bucket_node, it.cur));
		n++;
	}
	bk->last_used = 0;
	return n;
}

static bool
bucket_empty(int b)
{
	return dlist_is_empty(&buckets[b].users) && dlist_is_empty(&buckets[b].orgs) &&
		dlist_is_empty(&buckets[b].members_by_user) && dlist_is_empty(&buckets[b].members_by_org);
}

/* drop the buckets whose messages arrived */
static void
drop_stale_buckets(void)
{
	int			w;

	for (w = 0; w < UM_CACHE_BUCKETS / 64; w++)
	{
		while (stale_buckets[w] != 0)
		{
			int			bit = pg_rightmost_one_pos64(stale_buckets[w]);

			stale_buckets[w] &= stale_buckets[w] - 1;
			(void) drop_bucket(w * 64 + bit);
		}
	}
	any_stale_bucket = false;
}

/*
 * shrink: past the memory bound, drop the least recently used buckets until
 * the entries take at most nine tenths of it (the catalog, which every
 * check needs, stays).
 */
static void
shrink(void)
{
	Size		limit = (Size) cache_memory_limit_kb * 1024;
	Size		target = limit / 10 * 9;

	if (cache_bytes <= limit)
		return;
	while (cache_bytes > target)
	{
		int			b,
					victim = -1;

		for (b = 0; b < UM_CACHE_BUCKETS; b++)
			if (!bucket_empty(b) && (victim < 0 || buckets[b].last_used < buckets[victim].last_used))
				victim = b;
		if (victim < 0)
			break;
		stats.evictions += drop_bucket(victim);
	}
	cache_generation++;
}

/*
 * expire_holds: a timed suspension has ended, which no message announces:
 * the buckets of the user entries built on it go stale, as if a message had
 * come (so the generation moves on and no caller keeps a pointer into them).
 */
static void
expire_holds(TimestampTz now)
{
	HASH_SEQ_STATUS it;
	UmUser	   *u;
	TimestampTz next = 0;

	hash_seq_init(&it, user_hash);
	while ((u = hash_seq_search(&it)) != NULL)
	{
		if (u->holds_until == 0)
			continue;
		if (u->holds_until <= now)
		{
			stale_buckets[u->bucket / 64] |= UINT64CONST(1) << (u->bucket % 64);
			any_stale_bucket = true;
		}
		else if (next == 0 || u->holds_until < next)
			next = u->holds_until;
	}
	earliest_hold = next;
	cache_generation++;
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
		mark_all_stale();
	}
	/* entries read with a query snapshot that is no longer the one in use */
	if (snapshot_bound && !cache_stale && !bound_snapshot_current())
		mark_all_stale();
	if (cache_stale || cache_cxt == NULL)
		cache_reset();
	else
	{
		if (earliest_hold != 0 && GetCurrentStatementStartTimestamp() >= earliest_hold)
			expire_holds(GetCurrentStatementStartTimestamp());
		if (any_stale_bucket)
			drop_stale_buckets();
		/* the bound on memory: checked after loads, not on every (warm) check */
		if (loads_since_size_check > 0)
		{
			loads_since_size_check = 0;
			shrink();
		}
	}
	return cache_generation;
}

uint64
um_cache_generation(void)
{
	return cache_generation;
}

/* ---- loading ----------------------------------------------------------- */

/*
 * A load: SPI as um's owner (owner.c) with a pinned search_path, and the
 * snapshot the entries are read with.  Opened by the first entry a call of
 * this module's interface must load, closed when that call returns.
 */
typedef struct LoadState
{
	bool		open;
	UmRunAs		run_as;
	Snapshot	snapshot;
} LoadState;

#define LOAD_INIT {false}

static void
load_open(LoadState *ls)
{
	if (ls->open)
		return;
	/* entries loaded from now on are dropped by the invalidations */
	if (!lookup_addresses())
		(void) um_owner();		/* raises: um is not installed here */
	um_run_as_begin(&ls->run_as, owner_oid, false);

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
	ls->open = true;
}

static void
load_close(LoadState *ls)
{
	if (!ls->open)
		return;
	load_in_progress = false;
	UnregisterSnapshot(ls->snapshot);
	um_run_as_end(&ls->run_as);
	ls->open = false;
}

/*
 * run_query: execute saved query q with up to two bigint arguments.
 */
static void
run_query(LoadState *ls, int q, int64 a1, int64 a2)
{
	Datum		values[2];
	int			rc;

	load_open(ls);
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

/* load_scan: a direct scan of table t by key, under the load's snapshot */
static UmScan *
load_scan(LoadState *ls, UmTable t, int64 key)
{
	load_open(ls);
	stats.queries++;
	loads_since_size_check++;
	return um_scan_begin(t, ls->snapshot, Int64GetDatum(key));
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
ensure_catalog(LoadState *ls)
{
	MemoryContext old;
	HTAB	   *hash;
	int			i;

	if (perm_hash != NULL)
		return;
	run_query(ls, Q_CATALOG, 0, 0);
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
	pattern_hash = make_hash("um permission patterns", UM_PERMNAME_MAX + 1,
							 sizeof(PatternEntry), HASH_STRINGS);
	npatterns = 0;
	perm_hash = hash;			/* visible only once complete */
	MemoryContextSwitchTo(old);
}

/* the catalog, loaded in a load of its own when an interface call needs it alone */
static void
ensure_catalog_alone(void)
{
	LoadState	ls = LOAD_INIT;

	if (perm_hash != NULL)
		return;
	ensure_catalog(&ls);
	load_close(&ls);
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
	ensure_catalog_alone();
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

/*
 * um_cache_perm_id_known: the same, but -1 for an invalid or unknown name
 * instead of an error (for the planner's estimates, which must not fail a
 * query its execution would answer)
 */
int
um_cache_perm_id_known(const char *name, size_t len)
{
	char		key[UM_PERMNAME_MAX + 1];
	PermEntry  *e;

	if (!um_permname_parse(name, len, false, NULL, NULL))
		return -1;
	ensure_catalog_alone();
	memcpy(key, name, len);
	key[len] = '\0';
	e = hash_search(perm_hash, key, HASH_FIND, NULL);
	return e != NULL ? e->id : -1;
}

/* set the bits of every catalog permission the pattern covers */
static void
match_pattern(uint64 *bits, const char *pattern, size_t len)
{
	UmPermName	p;
	int			i;

	if (!um_permname_parse(pattern, len, true, &p, NULL))
		return;					/* CHECK constraints keep these out */
	for (i = 0; i < nperms; i++)
		if (um_permname_matches(&p, &perm_parsed[i]))
			bits[i / 64] |= UINT64CONST(1) << (i % 64);
}

/*
 * add_pattern: or into bits what a pattern covers.  Its bitmap is computed
 * once per catalog and memoized: every organization's roles repeat the
 * same patterns, and matching one against every catalog name was most of
 * an organization's load.
 */
static void
add_pattern(uint64 *bits, const char *pattern, size_t len)
{
	char		key[UM_PERMNAME_MAX + 1];
	PatternEntry *e;
	bool		found;
	int			w;

	if (len > UM_PERMNAME_MAX)
		return;					/* CHECK constraints keep these out */
	memcpy(key, pattern, len);
	key[len] = '\0';
	e = hash_search(pattern_hash, key, HASH_FIND, NULL);
	if (e == NULL)
	{
		uint64	   *pbits;

		if (npatterns >= UM_MAX_PATTERNS)
		{
			match_pattern(bits, pattern, len);
			return;
		}
		pbits = MemoryContextAllocZero(cache_cxt, sizeof(uint64) * nwords);
		match_pattern(pbits, pattern, len);
		e = hash_search(pattern_hash, key, HASH_ENTER, &found);
		e->bits = pbits;		/* complete before anyone reads it */
		npatterns++;
	}
	for (w = 0; w < nwords; w++)
		bits[w] |= e->bits[w];
}

/* um_cache_perm_count: how many permissions the catalog holds (ids 0..n-1) */
int
um_cache_perm_count(void)
{
	ensure_catalog_alone();
	return nperms;
}

/* um_cache_perm_name: the name of a permission id (ids follow the names' byte order) */
const char *
um_cache_perm_name(int id)
{
	ensure_catalog_alone();
	Assert(id >= 0 && id < nperms);
	return perm_names[id];
}

/* ---- users -------------------------------------------------------------------- */

static int
cmp_int64(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return x < y ? -1 : x > y ? 1 : 0;
}

/* the organization role of a membership: pairs sort by organization */
typedef struct OrgRole
{
	int64		org_id;
	int64		role_id;
} OrgRole;

/* index of id in a sorted array, or -1 */
static int
find_int64(const int64 *ids, int n, int64 id)
{
	int			lo = 0,
				hi = n - 1;

	while (lo <= hi)
	{
		int			mid = lo + (hi - lo) / 2;

		if (ids[mid] == id)
			return mid;
		if (ids[mid] < id)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return -1;
}

static void
grow_pairs(OrgRole **pairs, int *cap)
{
	*cap *= 2;
	*pairs = repalloc(*pairs, sizeof(OrgRole) * *cap);
}

static const UmUser *
cache_user(LoadState *ls, int64 user_id)
{
	UmUser	   *u;
	bool		exists = false,
				active = false;
	TimestampTz holds_until = 0,
				until;
	int			norgs = 0,
				nextra = 0;
	int64	   *orgs,
			   *org_roles,
			   *extra,
			   *extra_orgs;
	OrgRole    *pairs;
	int			cap = 16,
				ecap = 16;
	int			j,
				t;
	UmScan	   *ts;

	u = hash_search(user_hash, &user_id, HASH_FIND, NULL);
	if (u != NULL)
	{
		stats.hits++;
		touch_bucket(u->bucket);
		return u;
	}
	stats.misses++;

	/* may the user act */
	ts = load_scan(ls, UM_T_USERS, user_id);
	if (um_scan_next(ts))
	{
		exists = true;
		active = !um_scan_suspended(ts, 1, 4, &until) && um_scan_bool(ts, 2);
		holds_until = until;
	}
	um_scan_end(ts);

	/* where they are an active member, with which role */
	pairs = palloc(sizeof(OrgRole) * cap);
	ts = load_scan(ls, UM_T_MEMBERSHIPS, user_id);
	while (um_scan_next(ts))
	{
		if (um_scan_suspended(ts, 3, 4, &until))
		{
			if (until != 0 && (holds_until == 0 || until < holds_until))
				holds_until = until;
			continue;
		}
		if (norgs >= cap)
			grow_pairs(&pairs, &cap);
		pairs[norgs].org_id = um_scan_int8(ts, 1);
		pairs[norgs].role_id = um_scan_int8(ts, 2);
		norgs++;
	}
	um_scan_end(ts);

	/* where they hold more than that role: grants of their own, teams */
	extra = palloc(sizeof(int64) * ecap);
	for (t = UM_T_GRANTS; t <= UM_T_TEAM_MEMBERS; t++)
	{
		ts = load_scan(ls, (UmTable) t, user_id);
		while (um_scan_next(ts))
		{
			if (nextra >= ecap)
			{
				ecap *= 2;
				extra = repalloc(extra, sizeof(int64) * ecap);
			}
			extra[nextra++] = um_scan_int8(ts, 1);
		}
		um_scan_end(ts);
	}

	/* pairs sort by their first member, the organization */
	qsort(pairs, norgs, sizeof(OrgRole), cmp_int64);
	orgs = cache_alloc(sizeof(int64) * Max(norgs, 1), false);
	org_roles = cache_alloc(sizeof(int64) * Max(norgs, 1), false);
	for (j = 0; j < norgs; j++)
	{
		orgs[j] = pairs[j].org_id;
		org_roles[j] = pairs[j].role_id;
	}
	pfree(pairs);
	qsort(extra, nextra, sizeof(int64), cmp_int64);
	extra_orgs = cache_alloc(sizeof(int64) * Max(nextra, 1), false);
	memcpy(extra_orgs, extra, sizeof(int64) * nextra);
	pfree(extra);
	u = cache_enter(user_hash, &user_id, sizeof(UmUser));
	u->exists = exists;
	u->active = active;
	u->holds_until = holds_until;
	if (holds_until != 0 && (earliest_hold == 0 || holds_until < earliest_hold))
		earliest_hold = holds_until;
	u->norgs = norgs;
	u->orgs = orgs;
	u->org_roles = org_roles;
	u->nextra = nextra;
	u->extra_orgs = extra_orgs;
	u->bucket = (uint16) bucket_of(user_id, false);
	dlist_push_head(&buckets[u->bucket].users, &u->bucket_node);
	touch_bucket(u->bucket);
	return u;
}

/* ---- organizations: roles and scopes ------------------------------------------- */

/* the role's entry, made when new (its id then goes to *new_ids) */
static RoleEntry *
role_entry(int64 role_id, int64 **new_ids, int *nnew, int *cap)
{
	RoleEntry  *r = hash_search(role_hash, &role_id, HASH_FIND, NULL);

	if (r == NULL)
	{
		uint64	   *bits = cache_alloc(sizeof(uint64) * nwords, true);

		if (*nnew >= *cap)
		{
			*cap *= 2;
			*new_ids = repalloc(*new_ids, sizeof(int64) * *cap);
		}
		r = cache_enter(role_hash, &role_id, sizeof(RoleEntry));
		r->bits = bits;
		(*new_ids)[(*nnew)++] = role_id;
	}
	return r;
}

static UmOrg *
cache_org(LoadState *ls, int64 org_id)
{
	UmOrg	   *o;
	int			nedges = 0;
	RoleEntry **edges;			/* pairs: including role, included role */
	int64	   *role_ids,
			   *new_ids;
	int			nroles = 0,
				cap = 16,
				ecap = 16;
	bool		changed;
	RoleEntry  *last = NULL;
	UmScan	   *ts;

	o = hash_search(org_hash, &org_id, HASH_FIND, NULL);
	if (o != NULL)
	{
		touch_bucket(o->bucket);
		return o;
	}
	ensure_catalog(ls);
	new_ids = palloc(sizeof(int64) * cap);
	edges = palloc(sizeof(RoleEntry *) * 2 * ecap);

	/* what each role grants directly; a role's rows come together (the key's order) */
	ts = load_scan(ls, UM_T_ROLE_PERMISSIONS, org_id);
	while (um_scan_next(ts))
	{
		int64		role_id = um_scan_int8(ts, 1);
		bool		isnull;
		Datum		pattern = um_scan_col(ts, 2, &isnull);

		if (last == NULL || last->role_id != role_id)
			last = role_entry(role_id, &new_ids, &nroles, &cap);
		if (!isnull)
		{
			text	   *t = DatumGetTextPP(pattern);

			add_pattern(last->bits, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
		}
	}
	um_scan_end(ts);

	/* which roles each includes */
	ts = load_scan(ls, UM_T_ROLE_INCLUSIONS, org_id);
	while (um_scan_next(ts))
	{
		if (nedges >= ecap)
		{
			ecap *= 2;
			edges = repalloc(edges, sizeof(RoleEntry *) * 2 * ecap);
		}
		edges[2 * nedges] = role_entry(um_scan_int8(ts, 1), &new_ids, &nroles, &cap);
		edges[2 * nedges + 1] = role_entry(um_scan_int8(ts, 2), &new_ids, &nroles, &cap);
		nedges++;
	}
	um_scan_end(ts);
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
	role_ids = cache_alloc(sizeof(int64) * Max(nroles, 1), false);
	memcpy(role_ids, new_ids, sizeof(int64) * nroles);
	pfree(new_ids);
	o = cache_enter(org_hash, &org_id, sizeof(UmOrg));
	o->scopes_loaded = false;
	o->nscopes = 0;
	o->scope_ids = NULL;
	o->nroles = nroles;
	o->role_ids = role_ids;
	o->bucket = (uint16) bucket_of(org_id, true);
	dlist_push_head(&buckets[o->bucket].orgs, &o->bucket_node);
	touch_bucket(o->bucket);
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
	LoadState	ls = LOAD_INIT;
	RoleEntry  *r;

	(void) cache_org(&ls, org_id);
	load_close(&ls);
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
ensure_scopes(LoadState *ls, UmOrg *o)
{
	uint64		i;

	if (o->scopes_loaded)
		return;
	run_query(ls, Q_SCOPES, o->org_id, 0);
	o->scope_ids = cache_alloc(sizeof(int64) * Max((int) SPI_processed, 1), false);
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		int64		id = get_int8((int) i, 1, &isnull);
		UmScope    *s = cache_enter(scope_hash, &id, sizeof(UmScope));
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
}

/* um_cache_org_scope_ids: every scope node of the organization */
int
um_cache_org_scope_ids(int64 org_id, const int64 **ids)
{
	LoadState	ls = LOAD_INIT;
	UmOrg	   *o = cache_org(&ls, org_id);

	ensure_scopes(&ls, o);
	load_close(&ls);
	*ids = o->scope_ids;
	return o->nscopes;
}

/* ---- members ------------------------------------------------------------------ */

static UmMember *
cache_member(LoadState *ls, int64 user_id, int64 org_id)
{
	UmMemberKey key;
	UmMember   *m;
	uint64		i;
	int			n = 0;
	bool		active = false;
	int64		role_id = 0;
	uint64	   *baseline;
	UmGrant    *grants = NULL;
	UmUser	   *u;
	int			idx;

	key.user_id = user_id;
	key.org_id = org_id;
	m = hash_search(member_hash, &key, HASH_FIND, NULL);
	if (m != NULL)
	{
		stats.hits++;
		touch_bucket(m->user_bucket);
		touch_bucket(m->org_bucket);
		return m;
	}
	stats.misses++;

	/*
	 * The user's entry says whether they are an active member here, with
	 * which role, and whether they hold more than that role; only then is
	 * the membership queried.  (The entry is as fresh as this one would be:
	 * both are dropped by any change to the user's memberships, grants or
	 * teams.)
	 */
	u = hash_search(user_hash, &user_id, HASH_FIND, NULL);
	if (u == NULL)
		u = (UmUser *) cache_user(ls, user_id);
	idx = find_int64(u->orgs, u->norgs, org_id);
	if (idx < 0)
	{
		ensure_catalog(ls);
		baseline = cache_alloc(sizeof(uint64) * nwords, true);
		goto enter;				/* no active membership */
	}
	(void) cache_org(ls, org_id);
	if (find_int64(u->extra_orgs, u->nextra, org_id) < 0)
	{
		active = true;
		role_id = u->org_roles[idx];
		baseline = cache_alloc(sizeof(uint64) * nwords, true);
		or_role(baseline, role_id);
		goto enter;				/* the organization role alone */
	}

	run_query(ls, Q_MEMBER, org_id, user_id);
	baseline = cache_alloc(sizeof(uint64) * nwords, true);
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);

		if (DatumGetInt32(d) == 0)
		{
			/* in effect: the user's entry lists it (a timed suspension may have ended) */
			active = true;
			role_id = get_int8((int) i, 3, &isnull);
		}
	}
	if (active)
	{
		or_role(baseline, role_id);
		grants = cache_alloc(sizeof(UmGrant) * Max((int) SPI_processed, 1), false);
		for (i = 0; i < SPI_processed; i++)
		{
			bool		node_null,
						isnull;
			Datum		d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
			int64		grant_role;
			int64		scope_id;
			char	   *kind;

			if (DatumGetInt32(d) == 0)
				continue;		/* the membership */
			grant_role = get_int8((int) i, 3, &isnull);
			scope_id = get_int8((int) i, 4, &node_null);
			kind = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 5);
			if (node_null && kind == NULL)
			{
				or_role(baseline, grant_role);	/* an organization-wide grant */
				continue;
			}
			grants[n].role_id = grant_role;
			grants[n].scope_id = node_null ? 0 : scope_id;
			if (kind != NULL)
			{
				grants[n].kind = cache_alloc(strlen(kind) + 1, false);
				strcpy(grants[n].kind, kind);
			}
			else
				grants[n].kind = NULL;
			n++;
		}
	}
enter:
	/* enter the entry only once it is complete */
	m = cache_enter(member_hash, &key, sizeof(UmMember));
	m->active = active;
	m->role_id = role_id;
	m->baseline = baseline;
	m->grants = grants;
	m->ngrants = n;
	m->user_bucket = (uint16) bucket_of(user_id, false);
	m->org_bucket = (uint16) bucket_of(org_id, true);
	dlist_push_head(&buckets[m->user_bucket].members_by_user, &m->user_node);
	dlist_push_head(&buckets[m->org_bucket].members_by_org, &m->org_node);
	dlist_init(&m->memos);
	touch_bucket(m->user_bucket);
	touch_bucket(m->org_bucket);
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
	LoadState	ls = LOAD_INIT;
	const UmMember *m = NULL;

	if (cache_user(&ls, user_id)->active)
		m = cache_member(&ls, user_id, org_id);
	load_close(&ls);
	return m != NULL && m->active ? m : NULL;
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
	LoadState	ls = LOAD_INIT;
	const UmUser *u = cache_user(&ls, user_id);

	load_close(&ls);
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
	LoadState	ls = LOAD_INIT;
	const UmMember *m = cache_member(&ls, user_id, org_id);

	load_close(&ls);
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
um_cache_scope_bits(const UmMember *cm, int64 scope_id)
{
	UmMember   *m = (UmMember *) cm;	/* its memo list is the cache's */
	LoadState	ls = LOAD_INIT;
	MemoKey		key;
	ScopeMemo  *memo;
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
	ensure_scopes(&ls, cache_org(&ls, m->key.org_id));
	load_close(&ls);

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

	bits = cache_alloc(sizeof(uint64) * nwords, false);
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
	memo = cache_enter(memo_hash, &key, sizeof(ScopeMemo));
	memo->bits = bits;
	dlist_push_head(&m->memos, &memo->member_node);
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
