/*-------------------------------------------------------------------------
 *
 * src/um.h
 *	  What each module of the um extension offers the others.
 *
 * Floors, lowest first: permission names (permname.c) know nothing else;
 * the module entry point (um.c) registers settings and callbacks.  Later
 * floors (cache, evaluator, identity, planner support) build on these.
 *
 *-------------------------------------------------------------------------
 */
#ifndef UM_H
#define UM_H

#include "postgres.h"

/*
 * um's own SQLSTATEs (class "UM").  Every code is listed, with its meaning,
 * in README.md; the SQL scripts raise the same codes by their literal value.
 */
#define ERRCODE_UM_INVALID_PERMISSION_NAME	MAKE_SQLSTATE('U','M','0','1','0')
#define ERRCODE_UM_UNKNOWN_PERMISSION		MAKE_SQLSTATE('U','M','0','1','1')

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

#endif							/* UM_H */
