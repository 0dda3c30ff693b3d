/*-------------------------------------------------------------------------
 *
 * src/um.h
 *	  What each module of the um extension offers the others.
 *
 * Floors, lowest first: permission names (permname.c) know nothing else;
 * the cache (cache.c) loads and keeps what the tables say, using permname;
 * the evaluator (evaluator.c) answers checks from the cache; identity
 * (identity.c) says who is acting, beside the evaluator; sessions
 * (session.c) turn a session token into the acting user; the audit writer
 * (audit_writer.c) carries a job to a background worker that commits what
 * a refused call must leave behind; the login policy (login.c) decides in
 * that worker what a login attempt counts and locks; the planner
 * support function (support.c) rewrites checks into index conditions; the
 * lifecycle entry point (lifecycle.c) hands every lifecycle function's body
 * the role that really called it; the monitor (monitor.c) shows the cache's
 * statistics, and publishes each backend's in shared memory when um is
 * preloaded.
 * um.c registers settings and callbacks and nothing else.
 *
 *-------------------------------------------------------------------------
 */
#ifndef UM_H
#define UM_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "utils/snapshot.h"

/*
 * um's own SQLSTATEs (class "UM").  Every code is listed, with its meaning,
 * in doc/errors.md; the SQL scripts raise the same codes by their literal value.
 */
#define ERRCODE_UM_INVALID_PERMISSION_NAME	MAKE_SQLSTATE('U','M','0','1','0')
#define ERRCODE_UM_UNKNOWN_PERMISSION		MAKE_SQLSTATE('U','M','0','1','1')
#define ERRCODE_UM_UNKNOWN_USER				MAKE_SQLSTATE('U','M','0','3','1')
#define ERRCODE_UM_INVALID_SESSION			MAKE_SQLSTATE('U','M','0','6','7')
#define ERRCODE_UM_SECOND_FACTOR_REQUIRED	MAKE_SQLSTATE('U','M','0','9','2')
#define ERRCODE_UM_APP_CASCADE				MAKE_SQLSTATE('U','M','0','5','7')
#define ERRCODE_UM_AUDIT_UNAVAILABLE		MAKE_SQLSTATE('U','M','0','6','9')

/* Tables, views and types live in schema um; internal functions here. */
#define UM_INTERNAL_SCHEMA		"um_internal"

/* ---- permname.c: permission names "resource:action" and grant patterns */

/* Longest resource or action part, and longest whole name, in bytes. */
#define UM_PERMNAME_PART_MAX	63
#define UM_PERMNAME_MAX			(2 * UM_PERMNAME_PART_MAX + 1)

/*
 * A parsed permission name or pattern.  The parts point into the caller's
 * buffer (which need not be NUL-terminated); a wildcard part is "*".
 */
typedef struct UmPermName
{
	const char *resource;
	int			resource_len;
	const char *action;
	int			action_len;
	bool		resource_wild;
	bool		action_wild;
} UmPermName;

/*
 * um_permname_parse: parse len bytes at s.  With allow_wildcards, "*" may
 * stand for either part and a lone "*" means "*:*".  Returns true on success;
 * on failure returns false and, if why is not NULL, sets *why to a static
 * English sentence saying what is wrong (never reads outside s[0..len-1]).
 */
extern bool um_permname_parse(const char *s, size_t len, bool allow_wildcards,
							  UmPermName *out, const char **why);

/* um_permname_matches: does pattern (possibly wild) cover the concrete name? */
extern bool um_permname_matches(const UmPermName *pattern, const UmPermName *name);

/* um_permname_check: parse or ereport(ERROR) with ERRCODE_UM_INVALID_PERMISSION_NAME. */
extern void um_permname_check(const char *s, size_t len, bool allow_wildcards,
							  UmPermName *out);

/* ---- identity.c: the acting user of the current transaction */

extern void um_identity_init(void);

/* the acting user (the target while impersonating); false when none */
extern bool um_identity_get(int64 *user_id);

/* changes whenever who is acting changes (for answers remembered per call site) */
extern uint64 um_identity_version(void);

/* the person really acting: the impersonator, else the acting user */
extern bool um_identity_real(int64 *user_id);

/* may checks for the acting user answer in this organization?  (false only
 * while impersonating, outside the organizations it was allowed for) */
extern bool um_identity_org_allowed(int64 org_id);

/* the acting user for an organization's rows: false when nobody is acting,
 * or when an impersonation does not reach the organization */
extern bool um_identity_get_in(bool has_org, int64 org_id, int64 *user_id);

/* make user_id the acting user until the transaction ends; fname names
 * the SQL function for the warning given outside a transaction block */
extern void um_identity_set(int64 user_id, const char *fname);

/* ---- session.c: session tokens, um_begin(), secrets out of the log */

/* from _PG_init: the log hook */
extern void um_session_init(void);

/* the statement running passes a secret: its errors are logged without it */
extern void um_session_note_secret(void);

/* ---- audit_writer.c: jobs committed by a background worker in a
 * transaction of their own (they survive the caller's rollback) */

/* a job, in dynamic shared memory; its fields are audit_writer.c's */
typedef struct UmJob UmJob;

typedef enum UmJobKind
{
	UM_JOB_AUDIT,				/* write one audit event */
	UM_JOB_LOGIN				/* a login attempt (login.c) */
} UmJobKind;

/* a job's longest text field, and room for a kind's own data, in bytes */
#define UM_JOB_TEXT_MAX			1024
#define UM_JOB_DATA_SIZE		(UM_JOB_TEXT_MAX + 64)	/* a multiple of 8 */

/* from _PG_init: um.audit_writers, and the reserved writers when preloaded */
extern void um_audit_writer_init(void);

/* the caller's side: make a job (with the caller's identity), fill its
 * data, have it done (waits; UM069 when it cannot be), read, free */
extern UmJob *um_job_new(UmJobKind kind, const char *action, const char *target_type,
						 bool has_target, int64 target_id);
extern void *um_job_data(UmJob *job);
extern void um_job_run(UmJob *job);
extern void um_job_free(UmJob *job);

/* copy s into a field of size bytes, cut at a character boundary */
extern void um_job_copy_text(const char *s, char *dst, size_t size);

/* the worker's side, inside the job's transaction */
extern int64 um_job_target(const UmJob *job);
extern void um_job_write_audit(UmJob *job, const char *outcome, const char *details);

/* ---- login.c: the login settings and the lockout policy */

/* from _PG_init: the login settings */
extern void um_login_init(void);

/* in the audit writer: decide a UM_JOB_LOGIN job (count, lock, audit) */
extern void um_login_execute(UmJob *job);

/* ---- cache.c: the backend-local grant cache
 *
 * Reached through functions only: its entries and their layout are
 * cache.c's.  Permission sets are bitmaps indexed by permission id
 * (um_bit); every pointer returned stays valid until the cache generation
 * moves (um_cache_begin / um_cache_generation).
 */

/* a member's cache entry: a user in an organization (opaque) */
typedef struct UmMember UmMember;

extern void um_cache_init(void);

/* does this relation's invalidation carry a change to um's cache? */
extern bool um_cache_relid_is_sentinel(Oid relid);

/*
 * um_cache_begin: process pending invalidations and empty the cache if it
 * is stale.  Returns the generation; a check whose generation moved before
 * it finished must start over (its entries may predate a change).
 */
extern uint64 um_cache_begin(void);
extern uint64 um_cache_generation(void);
/* did the attempt begun at generation gen see it throughout?  (false: start
 * over; raises after too many attempts) */
extern bool um_cache_attempt_done(uint64 gen, int attempt);

/* permission ids: errors UM010 (invalid) and UM011 (not in the catalog) */
extern int	um_cache_perm_id(const char *name, size_t len);

/* the same, -1 instead of an error for an invalid or unknown name */
extern int	um_cache_perm_id_known(const char *name, size_t len);

/* the member, or NULL when the user may not act or is not an active member */
extern const UmMember *um_cache_active_member(int64 user_id, int64 org_id);

/* an active member's organization-wide permissions */
extern const uint64 *um_cache_member_baseline(const UmMember *m);

/* an active member's permissions at a scope node; NULL when the node is
 * not in the member's organization */
extern const uint64 *um_cache_scope_bits(const UmMember *m, int64 scope_id);

/* the organizations where the user is an active member (0 when the user
 * may not act); *orgs is set when the count is > 0 */
extern int	um_cache_user_orgs(int64 user_id, const int64 **orgs);

/* the user's organization-wide permissions in an organization of theirs,
 * or NULL when that membership is not active */
extern const uint64 *um_cache_member_bits(int64 user_id, int64 org_id);

/* every scope node of an organization; *ids is always set */
extern int	um_cache_org_scope_ids(int64 org_id, const int64 **ids);

/* the catalog: permission ids run from 0 to um_cache_perm_count() - 1, in
 * the byte order of their names */
extern int	um_cache_perm_count(void);
extern const char *um_cache_perm_name(int id);

/* what a role of the organization grants (inclusions and wildcards closed
 * over), or NULL when nothing */
extern const uint64 *um_cache_role_bits(int64 org_id, int64 role_id);

static inline bool
um_bit(const uint64 *bits, int id)
{
	return (bits[id / 64] >> (id % 64)) & 1;
}

/* for the monitor: the cache's figures, copied out */
typedef struct UmCacheStats
{
	int64		hits;
	int64		misses;
	int64		queries;
	int64		invalidations;
	int64		resets;
	int64		evictions;
	int64		retries;
	int64		memory_bytes;
	int64		users;
	int64		members;
	int64		organizations;
	int64		scope_memos;
	int64		permissions;
} UmCacheStats;

extern void um_cache_get_stats(UmCacheStats *out);

/* grows whenever the cache is used or changed (cheap; for monitor.c) */
extern uint64 um_cache_activity(void);

/* um.cache_memory_limit of this backend, in bytes */
extern int64 um_cache_memory_limit(void);

/* empty the cache now (um_cache_reset()) */
extern void um_cache_reset_all(void);

/* ---- scan.c: direct index scans of um's tables (the cache's loads,
 * um_begin's lookup); columns are numbered as listed here */
typedef enum UmTable
{
	UM_T_USERS,					/* id; status, allow_login, password_changed_at, suspended_until */
	UM_T_MEMBERSHIPS,			/* user_id; org_id, role_id, status, suspended_until */
	UM_T_GRANTS,				/* user_id; org_id */
	UM_T_TEAM_MEMBERS,			/* user_id; org_id */
	UM_T_ROLE_PERMISSIONS,		/* org_id; role_id, permission */
	UM_T_ROLE_INCLUSIONS,		/* org_id; role_id, included_role_id */
	UM_T_SESSIONS,				/* token_hash; user_id, revoked_at, revoked_reason, expires_at, method,
								 * password_changed_at, idle_timeout, created_at, id, assurance_level */
	UM_T_ORGANIZATIONS,			/* id; password_login_disabled, require_mfa */
	UM_T_SESSION_ACTIVITY,		/* session_id; last_seen_at */
	UM_NTABLES
} UmTable;

typedef struct UmScan UmScan;

extern void um_scan_init(void);
/* the rows whose key (column 0) equals key, under snapshot */
extern UmScan *um_scan_begin(UmTable t, Snapshot snapshot, Datum key);
extern bool um_scan_next(UmScan *scan);
extern Datum um_scan_col(UmScan *scan, int col, bool *isnull);
extern bool um_scan_has_col(UmScan *scan, int col);
extern bool um_scan_suspended(UmScan *scan, int status_col, int until_col, TimestampTz *until);
extern int64 um_scan_int8(UmScan *scan, int col);
extern bool um_scan_bool(UmScan *scan, int col);
extern bool um_scan_text_is(UmScan *scan, int col, const char *value);
extern void um_scan_end(UmScan *scan);

/* ---- session.c: the session of this transaction's um_begin */

/* refuses (UM092) a check by a level-1 session in an organization that requires a second factor */
extern void um_session_check_assurance(int64 user_id, int64 org_id);
/* whether such a check would be refused (um_permitted_orgs leaves the organization out) */
extern bool um_session_blocks_org(int64 user_id, int64 org_id);

/* ---- evaluator.c: um_has_permission() and its companions */

/* which evaluator function a pg_proc entry runs */
typedef enum UmEvalFunction
{
	UM_EVAL_OTHER,
	UM_EVAL_PERMITTED_ORGS_ACTING,	/* um_permitted_orgs(permission) */
	UM_EVAL_PERMITTED_ORGS_USER,	/* um_permitted_orgs(user, permission) */
	UM_EVAL_HAS_PERMISSION_ACTING,	/* um_has_permission(permission, org[, scope]) */
	UM_EVAL_HAS_PERMISSION_USER /* um_has_permission(user, permission, org[, scope]) */
} UmEvalFunction;

extern UmEvalFunction um_evaluator_function(Oid funcid);

/* for the planner: the organizations um_permitted_orgs would list now
 * (palloc'd, sorted); false for an invalid or unknown permission */
extern bool um_evaluator_orgs_now(bool acting, int64 user_id, const char *perm, size_t len,
								  int64 **ids, int *n);

/* ---- planner.c: the planner's estimate of a protected scan */

/* from _PG_init: um.planner_estimates and the path hook */
extern void um_planner_init(void);

/* ---- support.c: the support function of um_has_permission() */

/* the companion um_<name>(argtypes) in the schema of funcid, or InvalidOid */
extern Oid	um_support_companion(Oid funcid, const char *name, int nargs, const Oid *argtypes);

/* ---- guards.c: the escalation guards, and the cascading-key guard */

/* from _PG_init: the catalogs' invalidations */
extern void um_guards_init(void);

/* ---- owner.c: um's owner, and SPI as a chosen role */

/* the extension's owner, the role um's own code runs as */
extern Oid	um_owner(void);

/* the caller's state, restored by um_run_as_end (kept on the caller's stack) */
typedef struct UmRunAs
{
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;
} UmRunAs;

/* connect to SPI as role with a pinned search_path and forced RLS ignored;
 * restricted: inside a security-restricted operation (an application
 * table's owner) */
extern void um_run_as_begin(UmRunAs *ra, Oid role, bool restricted);
extern void um_run_as_switch(UmRunAs *ra, Oid role, bool restricted);
extern void um_run_as_end(UmRunAs *ra);

/* ---- monitor.c: the cache's statistics (um_cache_stats, um_cache_stats_all,
 * um_cache_reset), and every backend's published in shared memory */

/* from _PG_init: reserve shared memory when preloaded; publish at transaction end */
extern void um_monitor_init(void);

#endif							/* UM_H */
