/*-------------------------------------------------------------------------
 *
 * src/permname.c
 *	  Permission names ("resource:action") and grant patterns with "*".
 *
 * Every permission um knows is a resource and an action, both lowercase
 * identifiers: "service:create", "billing:read", "member:invite".  Grants may
 * use "*" for a whole part ("service:*", "*:read") or for everything ("*").
 * The parser takes a pointer and a length, never relies on a terminating NUL
 * and never reads outside the given bytes: it is the part of um that sees
 * untrusted text first, and the fuzz test drives it with arbitrary bytes.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"

#include "um.h"

/*
 * The fuzz harness (test/fuzz/permname_fuzz.c) compiles this file on its
 * own, outside a server: it defines UM_PERMNAME_STANDALONE to leave out the
 * parts that need one (errors, SQL-callable functions).
 */
#ifndef UM_PERMNAME_STANDALONE
PG_FUNCTION_INFO_V1(um_permission_name_is_valid);
PG_FUNCTION_INFO_V1(um_assert_permission_name);
PG_FUNCTION_INFO_V1(um_permission_matches);
#endif

/* Sentences for what is wrong with one part; index 0 resource, 1 action. */
static const char *const part_empty[2] = {
	"The resource part (before \":\") is empty.",
	"The action part (after \":\") is empty."
};
static const char *const part_too_long[2] = {
	"The resource part is longer than 63 bytes.",
	"The action part is longer than 63 bytes."
};
static const char *const part_bad_start[2] = {
	"The resource part must start with a lowercase ASCII letter.",
	"The action part must start with a lowercase ASCII letter."
};
static const char *const part_bad_char[2] = {
	"The resource part may contain only lowercase ASCII letters, digits, \"_\" and \"-\".",
	"The action part may contain only lowercase ASCII letters, digits, \"_\" and \"-\"."
};
static const char *const part_bad_end[2] = {
	"The resource part must not end with \"-\" or \"_\".",
	"The action part must not end with \"-\" or \"_\"."
};

/*
 * parse_part: check one part of a name; which is 0 for the resource, 1 for
 * the action.  Sets *wild when the part is a lone "*" and wildcards are
 * allowed.
 */
static bool
parse_part(const char *p, size_t len, int which, bool allow_wildcards,
		   bool *wild, const char **why)
{
	size_t		i;

	*wild = false;
	if (len == 0)
	{
		*why = part_empty[which];
		return false;
	}
	if (memchr(p, '*', len) != NULL)
	{
		if (!allow_wildcards)
		{
			*why = "Wildcards (\"*\") are allowed in grants, not in the name of a permission.";
			return false;
		}
		if (len != 1)
		{
			*why = "A wildcard must stand for a whole part, as in \"service:*\" or \"*:read\".";
			return false;
		}
		*wild = true;
		return true;
	}
	if (len > UM_PERMNAME_PART_MAX)
	{
		*why = part_too_long[which];
		return false;
	}
	if (!(p[0] >= 'a' && p[0] <= 'z'))
	{
		*why = part_bad_start[which];
		return false;
	}
	for (i = 1; i < len; i++)
	{
		char		c = p[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			  c == '_' || c == '-'))
		{
			*why = part_bad_char[which];
			return false;
		}
	}
	if (p[len - 1] == '_' || p[len - 1] == '-')
	{
		*why = part_bad_end[which];
		return false;
	}
	return true;
}

/*
 * um_permname_parse: see um.h.
 */
bool
um_permname_parse(const char *s, size_t len, bool allow_wildcards,
				  UmPermName *out, const char **why)
{
	const char *colon;
	const char *dummy;
	UmPermName	res;

	if (why == NULL)
		why = &dummy;
	if (s == NULL || len == 0)
	{
		*why = "The name is empty.";
		return false;
	}
	if (len > UM_PERMNAME_MAX)
	{
		*why = "The name is longer than 127 bytes.";
		return false;
	}

	/* A lone "*" is shorthand for "*:*". */
	if (len == 1 && s[0] == '*' && allow_wildcards)
	{
		res.resource = s;
		res.resource_len = 1;
		res.action = s;
		res.action_len = 1;
		res.resource_wild = res.action_wild = true;
		if (out)
			*out = res;
		return true;
	}

	colon = memchr(s, ':', len);
	if (colon == NULL)
	{
		*why = "A permission name is a resource and an action separated by \":\", as in \"invoice:read\".";
		return false;
	}
	if (memchr(colon + 1, ':', len - (colon - s) - 1) != NULL)
	{
		*why = "A permission name has exactly one \":\".";
		return false;
	}

	res.resource = s;
	res.resource_len = (int) (colon - s);
	res.action = colon + 1;
	res.action_len = (int) (len - (colon - s) - 1);

	if (!parse_part(res.resource, res.resource_len, 0, allow_wildcards,
					&res.resource_wild, why))
		return false;
	if (!parse_part(res.action, res.action_len, 1, allow_wildcards,
					&res.action_wild, why))
		return false;

	if (out)
		*out = res;
	return true;
}

/*
 * um_permname_matches: see um.h.  A wildcard part matches anything; other
 * parts match byte for byte.
 */
bool
um_permname_matches(const UmPermName *pattern, const UmPermName *name)
{
	if (!pattern->resource_wild &&
		(pattern->resource_len != name->resource_len ||
		 memcmp(pattern->resource, name->resource, name->resource_len) != 0))
		return false;
	if (!pattern->action_wild &&
		(pattern->action_len != name->action_len ||
		 memcmp(pattern->action, name->action, name->action_len) != 0))
		return false;
	return true;
}

#ifndef UM_PERMNAME_STANDALONE

/*
 * um_permname_check: parse or raise the error a user sees for a bad name.
 */
void
um_permname_check(const char *s, size_t len, bool allow_wildcards,
				  UmPermName *out)
{
	const char *why = NULL;

	if (!um_permname_parse(s, len, allow_wildcards, out, &why))
		ereport(ERROR,
				(errcode(ERRCODE_UM_INVALID_PERMISSION_NAME),
				 errmsg("invalid permission %s \"%s\"",
						allow_wildcards ? "pattern" : "name",
						pnstrdup(s, pg_mbcliplen(s, (int) Min(len, (size_t) 1000), 200))),
				 errdetail_internal("%s", why),
				 errhint(allow_wildcards ?
						 "Use \"resource:action\" with lowercase letters, digits, \"_\" and \"-\", or \"*\" for a whole part, as in \"service:*\"." :
						 "Use \"resource:action\" with lowercase letters, digits, \"_\" and \"-\", as in \"invoice:read\".")));
}

/*
 * um_permission_name_is_valid(name text, allow_wildcards bool): the check
 * behind the CHECK constraints on permission columns.
 */
Datum
um_permission_name_is_valid(PG_FUNCTION_ARGS)
{
	text	   *name = PG_GETARG_TEXT_PP(0);
	bool		allow_wildcards = PG_GETARG_BOOL(1);

	PG_RETURN_BOOL(um_permname_parse(VARDATA_ANY(name), VARSIZE_ANY_EXHDR(name),
									 allow_wildcards, NULL, NULL));
}

/*
 * um_assert_permission_name(name text, allow_wildcards bool): returns name,
 * or raises a clear error saying what is wrong with it.
 */
Datum
um_assert_permission_name(PG_FUNCTION_ARGS)
{
	text	   *name = PG_GETARG_TEXT_PP(0);
	bool		allow_wildcards = PG_GETARG_BOOL(1);

	um_permname_check(VARDATA_ANY(name), VARSIZE_ANY_EXHDR(name),
					  allow_wildcards, NULL);
	PG_RETURN_TEXT_P(name);
}

/*
 * um_permission_matches(pattern text, permission text): does a grant of
 * pattern cover permission?  Both are validated; bad input is an error.
 */
Datum
um_permission_matches(PG_FUNCTION_ARGS)
{
	text	   *pattern = PG_GETARG_TEXT_PP(0);
	text	   *name = PG_GETARG_TEXT_PP(1);
	UmPermName	p,
				n;

	um_permname_check(VARDATA_ANY(pattern), VARSIZE_ANY_EXHDR(pattern), true, &p);
	um_permname_check(VARDATA_ANY(name), VARSIZE_ANY_EXHDR(name), false, &n);
	PG_RETURN_BOOL(um_permname_matches(&p, &n));
}

#endif							/* UM_PERMNAME_STANDALONE */
