/*-------------------------------------------------------------------------
 *
 * src/session.c
 *	  Session tokens: making them, and um_begin(token), which turns a valid
 *	  one into the acting user of the current transaction; and keeping the
 *	  secrets um handles (passwords, tokens) out of the server log.
 *
 * A token is "um_" followed by 43 characters of base64url: 256 bits from
 * pg_strong_random().  The database stores only its SHA-256 (um.sessions),
 * so a stolen backup or a reader of um.sessions holds no usable token.
 * um_login() and um_change_password() (SQL) make sessions; um_begin checks
 * a token against the live state on every call: the session must not be
 * expired or ended (logout, password change, suspension, ...), and its user
 * must be active, allowed to log in and not in an organization that has
 * turned password login off, and the session not idle past its timeout.
 * um_begin reads, and at most every few minutes records the session's use
 * (last_seen_at) where it may write: on a hot standby or in a read-only
 * transaction it only reads.  Logging in (the password, the failure count,
 * the lockout) is login.c's.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/parallel.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "parser/parser.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "tcop/tcopprot.h"
#include "utils/elog.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "um.h"

PG_FUNCTION_INFO_V1(um_generate_token);
PG_FUNCTION_INFO_V1(um_generate_code);
PG_FUNCTION_INFO_V1(um_begin);
PG_FUNCTION_INFO_V1(um_current_session_id);
PG_FUNCTION_INFO_V1(um_current_assurance_level);
PG_FUNCTION_INFO_V1(um_note_assurance_level);

#define CHALLENGE_PREFIX	"umc_"

/* last_seen_at is written at most this often (a quarter of a shorter idle timeout) */
#define TOUCH_INTERVAL_SECONDS	300

#if PG_VERSION_NUM >= 170000
#define MY_LXID (MyProc->vxid.lxid)
#else
#define MY_LXID (MyProc->lxid)
#endif

/*
 * The session um_begin made acting: "<session id>/<user id>/<level>" in
 * um.acting_session, a setting only this module writes, SET LOCAL: so it
 * ends with the transaction, reverts with a rolled-back savepoint (a level
 * proven there is forgotten with the proof), and reaches parallel workers
 * with the other settings, as um.acting_identity does.
 */
static char *session_setting = NULL;
static bool writing_session = false;
static uint64 session_changes = 1;
static uint64 session_parsed = 0;
static int64 current_session = 0;
static int64 current_session_user = 0;
static int	current_session_level = 1;

/* organizations' require_mfa as read in this transaction (a few at a time) */
#define MFA_MEMO_SIZE 8
static struct
{
	LocalTransactionId lxid;
	int64		org_id;
	bool		required;
}			mfa_memo[MFA_MEMO_SIZE];
static int	mfa_memo_next = 0;

/* What session_refusal found beyond the refusal: for um_begin's bookkeeping */
typedef struct SessionSeen
{
	int64		session_id;
	int			level;			/* assurance level, 1 or 2 */
	TimestampTz last_use;		/* last_seen_at, or created_at */
	int			idle_timeout;	/* 0: none */
	bool		has_last_seen;	/* um.session_activity exists (0.3 and later) */
} SessionSeen;

#define TOKEN_PREFIX		"um_"
#define TOKEN_PREFIX_LEN	3
#define TOKEN_RANDOM_BYTES	32
#define TOKEN_BODY_LEN		43	/* base64url of 32 bytes, unpadded */
#define TOKEN_LEN			(TOKEN_PREFIX_LEN + TOKEN_BODY_LEN)

/*
 * Secrets out of the server log.  A refused login is an ERROR, and at the
 * default log_min_error_statement (error) the server log gets the statement
 * with it: with a simple-protocol call, the password or token as a literal.
 * An error of a statement that passes a secret to um is therefore logged
 * without its statement (errhidestmt): a statement that names one of the
 * functions below, or one in which um handled a password or a token (an
 * application's wrapper function).  Its shape (the statement without string
 * literals and comments) goes into the log's detail instead, so that naming
 * one of these functions never hides what a statement did.  The extended protocol sends values as
 * parameters, which the log leaves out at the default
 * log_parameter_max_length_on_error (0).
 */
static emit_log_hook_type prev_emit_log_hook = NULL;
static const char *secret_statement = NULL;	/* debug_query_string when um saw a secret */

/* strcasestr for ASCII names (not every libc has strcasestr) */
static const char *
strcasestr_ascii(const char *hay, const char *needle)
{
	size_t		n = strlen(needle);

	for (; *hay; hay++)
		if (pg_strncasecmp(hay, needle, n) == 0)
			return hay;
	return NULL;
}

static const char *const secret_functions[] = {
	"um_login", "um_change_password", "um_set_password", "um_sign_up", "um_begin",
	"um_logout", "um_accept_invitation", "um_verify_email", "um_reset_password",
	"um_confirm_email_change", "um_cancel_email_change", "um_refresh_session",
	"um_confirm_totp", "um_remove_factor", "um_regenerate_recovery_codes",
	"um_complete_login", "um_reauthenticate", NULL
};

/* um_session_note_secret: the statement running carries a secret */
void
um_session_note_secret(void)
{
	secret_statement = debug_query_string;
}

static bool
names_secret_function(const char *query)
{
	int			i;

	for (i = 0; secret_functions[i] != NULL; i++)
	{
		if (strcasestr_ascii(query, secret_functions[i]) != NULL)
			return true;
	}
	return false;
}

/*
 * The statement without its string literals (standard, E'', dollar-quoted)
 * and comments, at most REDACTED_MAX bytes: what the log gets instead of a
 * statement it must not show.  Naming a secret function is within reach of
 * any role, so hiding a statement must never hide what it did: its shape
 * stays in the log, only the values that could be secrets go.
 */
#define REDACTED_MAX 4096

static bool
is_ident_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		c == '_' || (unsigned char) c >= 0x80;
}

/* the length of a dollar-quote tag ("$tag$" or "$$") at q, or 0 */
static int
dollar_tag_len(const char *q)
{
	int			n = 1;

	if (q[0] != '$' || (q[1] >= '0' && q[1] <= '9'))
		return 0;
	while (q[n] != '\0' && q[n] != '$' && is_ident_char(q[n]))
		n++;
	return q[n] == '$' ? n + 1 : 0;
}

/*
 * Only blanks and "--" comments, with a newline, between a literal's end and
 * p: the lexer's rule for a literal continued on the next line, which keeps
 * the first part's kind (E'' or not).
 */
static bool
continues_literal(const char *from, const char *p)
{
	bool		newline = false;

	if (from == NULL)
		return false;
	while (from < p)
	{
		if (from[0] == '-' && from[1] == '-')
		{
			while (from < p && *from != '\n')
				from++;
		}
		else if (*from == '\n' || *from == '\r')
		{
			newline = true;
			from++;
		}
		else if (*from == ' ' || *from == '\t' || *from == '\f' || *from == '\v')
			from++;
		else
			return false;
	}
	return newline;
}

static char *
redact_literals(const char *q)
{
	StringInfoData out;
	const char *start = q;
	const char *lit_end = NULL;		/* just after the last string literal */
	bool		lit_escapes = false;	/* it took backslash escapes */

	initStringInfo(&out);
	while (*q != '\0' && out.len < REDACTED_MAX)
	{
		int			tag;

		if (*q == '\'')
		{
			/*
			 * Backslashes escape in an E'' string (E right before the quote,
			 * not ending a word), in every string while
			 * standard_conforming_strings is off, and in the continuation of
			 * such a string
			 */
			bool		escapes = !standard_conforming_strings ||
				(q > start && (q[-1] == 'E' || q[-1] == 'e') &&
				 (q - 1 == start || !is_ident_char(q[-2])));

			if (continues_literal(lit_end, q))
				escapes = lit_escapes;
			for (q++; *q != '\0'; q++)
			{
				if (escapes && *q == '\\' && q[1] != '\0')
					q++;
				else if (*q == '\'' && q[1] == '\'')
					q++;
				else if (*q == '\'')
				{
					q++;
					break;
				}
			}
			lit_end = q;
			lit_escapes = escapes;
			appendStringInfoString(&out, "'?'");
		}
		else if (*q == '"')
		{
			/* a quoted identifier stays */
			appendStringInfoChar(&out, *q++);
			while (*q != '\0' && out.len < REDACTED_MAX)
			{
				if (*q == '"' && q[1] == '"')
					appendStringInfoChar(&out, *q++);
				else if (*q == '"')
					break;
				appendStringInfoChar(&out, *q++);
			}
			if (*q == '"')
				appendStringInfoChar(&out, *q++);
		}
		else if ((tag = dollar_tag_len(q)) > 0 && (q == start || !is_ident_char(q[-1])))
		{
			const char *end = NULL;
			const char *p;

			for (p = q + tag; *p != '\0'; p++)
			{
				if (strncmp(p, q, tag) == 0)
				{
					end = p + tag;
					break;
				}
			}
			q = end != NULL ? end : q + strlen(q);
			appendStringInfoString(&out, "'?'");
		}
		else if (q[0] == '-' && q[1] == '-')
		{
			while (*q != '\0' && *q != '\n')
				q++;
			appendStringInfoChar(&out, ' ');
		}
		else if (q[0] == '/' && q[1] == '*')
		{
			int			depth = 1;

			for (q += 2; *q != '\0' && depth > 0; q++)
			{
				if (q[0] == '/' && q[1] == '*')
				{
					depth++;
					q++;
				}
				else if (q[0] == '*' && q[1] == '/')
				{
					depth--;
					q++;
				}
			}
			appendStringInfoChar(&out, ' ');
		}
		else
			appendStringInfoChar(&out, *q++);
	}
	if (*q != '\0' || out.len > REDACTED_MAX)
	{
		/* cut at a character boundary */
		out.len = pg_mbcliplen(out.data, out.len, Min(out.len, REDACTED_MAX));
		out.data[out.len] = '\0';
		appendStringInfoString(&out, "...");
	}
	return out.data;
}

static void
um_emit_log_hook(ErrorData *edata)
{
	if (edata->elevel >= ERROR && debug_query_string != NULL && !edata->hide_stmt &&
		(debug_query_string == secret_statement || names_secret_function(debug_query_string)))
	{
		const char *was = edata->detail_log != NULL ? edata->detail_log : edata->detail;
		char	   *shape = redact_literals(debug_query_string);

		edata->hide_stmt = true;
		/* a function's statement in the context may carry the same literals */
		edata->hide_ctx = true;
		if (edata->internalquery != NULL)
			edata->internalquery = redact_literals(edata->internalquery);
		/* the server log's detail: what it was, then the statement's shape */
		edata->detail_log = was != NULL
			? psprintf("%s\nStatement with its literals and comments removed: %s", was, shape)
			: psprintf("Statement with its literals and comments removed: %s", shape);
	}
	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
}

/*
 * um_session_init: from _PG_init, the log hook.
 */
static bool
check_session_setting(char **newval, void **extra, GucSource source)
{
	(void) extra;
	(void) newval;
	if (writing_session || InitializingParallelWorker || source == PGC_S_DEFAULT)
		return true;
	GUC_check_errcode(ERRCODE_INSUFFICIENT_PRIVILEGE);
	GUC_check_errmsg("um.acting_session cannot be set");
	GUC_check_errdetail("It holds the session of the acting user and is written only by um.");
	GUC_check_errhint("Use um_begin(token).");
	return false;
}

static void
assign_session_setting(const char *newval, void *extra)
{
	(void) newval;
	(void) extra;
	session_changes++;
}

/* the session setting, parsed when it changed */
static void
parse_session(void)
{
	long long	s = 0,
				u = 0;
	int			l = 1;

	if (session_parsed == session_changes)
		return;
	current_session = current_session_user = 0;
	current_session_level = 1;
	if (session_setting != NULL && session_setting[0] != '\0' &&
		sscanf(session_setting, "%lld/%lld/%d", &s, &u, &l) == 3)
	{
		current_session = s;
		current_session_user = u;
		current_session_level = l;
	}
	session_parsed = session_changes;
}

static void
publish_session(int64 session_id, int64 user_id, int level)
{
	char		buf[64];

	snprintf(buf, sizeof(buf), INT64_FORMAT "/" INT64_FORMAT "/%d", session_id, user_id, level);
	writing_session = true;
	PG_TRY();
	{
		(void) set_config_option("um.acting_session", buf, PGC_SUSET, PGC_S_SESSION,
								 GUC_ACTION_LOCAL, true, 0, false);
	}
	PG_FINALLY();
	{
		writing_session = false;
	}
	PG_END_TRY();
}

void
um_session_init(void)
{
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = um_emit_log_hook;
	DefineCustomStringVariable("um.acting_session",
							   "The session of the acting user (written only by um).",
							   NULL,
							   &session_setting,
							   "",
							   PGC_SUSET,
							   GUC_NO_SHOW_ALL | GUC_NO_RESET_ALL | GUC_NOT_IN_SAMPLE |
							   GUC_DISALLOW_IN_FILE | GUC_DISALLOW_IN_AUTO_FILE | GUC_SUPERUSER_ONLY
#ifdef GUC_NO_RESET
							   | GUC_NO_RESET
#endif
							   ,
							   check_session_setting, assign_session_setting, NULL);
}

static const char b64url[] =
"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/*
 * um_internal.generate_token(): a fresh session or invitation token.
 */
Datum
um_generate_token(PG_FUNCTION_ARGS)
{
	uint8		raw[TOKEN_RANDOM_BYTES + 2];	/* padded to a multiple of 3 */
	char		out[TOKEN_LEN + 4];
	int			i,
				o;

	memset(raw, 0, sizeof(raw));
	if (!pg_strong_random(raw, TOKEN_RANDOM_BYTES))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random session token")));
	memcpy(out, TOKEN_PREFIX, TOKEN_PREFIX_LEN);
	o = TOKEN_PREFIX_LEN;
	for (i = 0; i < TOKEN_RANDOM_BYTES; i += 3)
	{
		uint32		v = ((uint32) raw[i] << 16) | ((uint32) raw[i + 1] << 8) | raw[i + 2];

		out[o++] = b64url[(v >> 18) & 63];
		out[o++] = b64url[(v >> 12) & 63];
		out[o++] = b64url[(v >> 6) & 63];
		out[o++] = b64url[v & 63];
	}
	/* 32 bytes make 42 full characters and 4 bits in the 43rd; drop the padding's */
	o = TOKEN_LEN;
	out[o] = '\0';
	explicit_bzero(raw, sizeof(raw));
	PG_RETURN_TEXT_P(cstring_to_text(out));
}

/*
 * um_internal.generate_code(digits integer): a fresh one-time code of that
 * many decimal digits (6 to 12), for people whose mail scanners follow links
 * (and so would spend a link's token before they click).  Each digit comes
 * from one random byte below 250, so that no digit is likelier than another.
 */
Datum
um_generate_code(PG_FUNCTION_ARGS)
{
	int32		digits = PG_GETARG_INT32(0);
	char		out[13];
	int			i;

	if (digits < 6 || digits > 12)
		elog(ERROR, "um_internal.generate_code: digits must be between 6 and 12");
	for (i = 0; i < digits; i++)
	{
		uint8		b;

		do
		{
			if (!pg_strong_random(&b, 1))
				ereport(ERROR,
						(errcode(ERRCODE_INTERNAL_ERROR),
						 errmsg("could not generate a random code")));
		} while (b >= 250);
		out[i] = (char) ('0' + b % 10);
	}
	out[digits] = '\0';
	PG_RETURN_TEXT_P(cstring_to_text(out));
}

/* is this the shape of a token um made?  (no database lookup for garbage) */
static bool
token_well_formed(const char *s, int len)
{
	int			i;

	if (len != TOKEN_LEN || memcmp(s, TOKEN_PREFIX, TOKEN_PREFIX_LEN) != 0)
		return false;
	for (i = TOKEN_PREFIX_LEN; i < len; i++)
	{
		char		c = s[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			  (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return false;
	}
	return true;
}

static void touch_session(const SessionSeen *seen);

static void
invalid_token(const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_UM_INVALID_SESSION),
			 errmsg("session token is not valid"),
			 errdetail("%s", detail),
			 errhint("Log in again with um_login() to get a new token.")));
}

/*
 * The lookup reads um.sessions by the token's hash, then the session's user
 * and, for a password session, the user's organizations, by direct index
 * scans (scan.c): no plan, no code but PostgreSQL's, no privilege needed.
 * um_begin runs with its caller's rights (no C function of um is SECURITY
 * DEFINER).  It returns NULL when the session may be used, else why not.
 */
static const char *
session_refusal(Snapshot snap, const uint8 *hash, int64 *user_id, SessionSeen *seen)
{
	bytea	   *key = palloc(VARHDRSZ + PG_SHA256_DIGEST_LENGTH);
	UmScan	   *scan;
	bool		isnull;
	Datum		d;
	const char *reason = NULL;
	bool		password;
	bool		found;
	Datum		stamp;
	bool		stamp_null;
	bool		stamped;

	SET_VARSIZE(key, VARHDRSZ + PG_SHA256_DIGEST_LENGTH);
	memcpy(VARDATA(key), hash, PG_SHA256_DIGEST_LENGTH);
	scan = um_scan_begin(UM_T_SESSIONS, snap, PointerGetDatum(key));
	if (!um_scan_next(scan))
	{
		um_scan_end(scan);
		invalid_token("No session has this token.");
	}
	*user_id = um_scan_int8(scan, 1);
	(void) um_scan_col(scan, 2, &isnull);
	if (!isnull)
	{
		d = um_scan_col(scan, 3, &isnull);
		reason = isnull ? "revoked" : TextDatumGetCString(d);
	}
	d = um_scan_col(scan, 4, &isnull);
	if (reason == NULL && (isnull || DatumGetTimestampTz(d) <= GetCurrentTimestamp()))
		reason = "expired";
	/* a session of a password, however it began (not of an identity provider or a key) */
	password = !um_scan_text_is(scan, 5, "sso") && !um_scan_text_is(scan, 5, "key");
	stamped = um_scan_has_col(scan, 6);		/* (not before the update to 0.3) */
	stamp = um_scan_col(scan, 6, &stamp_null);
	seen->session_id = um_scan_int8(scan, 9);
	d = um_scan_col(scan, 10, &isnull);
	seen->level = isnull ? 1 : DatumGetInt16(d);
	d = um_scan_col(scan, 7, &isnull);
	seen->idle_timeout = isnull ? 0 : DatumGetInt32(d);
	d = um_scan_col(scan, 8, &isnull);
	seen->last_use = isnull ? 0 : DatumGetTimestampTz(d);
	seen->has_last_seen = false;
	um_scan_end(scan);

	/* the last use recorded apart from the session (0.3 on) */
	scan = um_scan_begin(UM_T_SESSION_ACTIVITY, snap, Int64GetDatum(seen->session_id));
	if (um_scan_next(scan))
	{
		d = um_scan_col(scan, 1, &isnull);
		if (!isnull && DatumGetTimestampTz(d) > seen->last_use)
			seen->last_use = DatumGetTimestampTz(d);
		seen->has_last_seen = true;
	}
	else
		seen->has_last_seen = um_scan_has_col(scan, 1);
	um_scan_end(scan);
	if (reason == NULL && seen->idle_timeout > 0 &&
		GetCurrentTimestamp() - seen->last_use >= (int64) seen->idle_timeout * USECS_PER_SEC)
		reason = "idle";

	scan = um_scan_begin(UM_T_USERS, snap, Int64GetDatum(*user_id));
	found = um_scan_next(scan);
	if (found && reason == NULL)
	{
		TimestampTz until;

		if (um_scan_suspended(scan, 1, 4, &until))
			reason = "suspended";
		else if (!um_scan_bool(scan, 2))
			reason = "login_disabled";
		else if (stamped)
		{
			/*
			 * The session was made for the password of that moment.  A change
			 * committed while its login was still open never saw the session
			 * to end it (users_end_sessions); the stamp does.
			 */
			d = um_scan_col(scan, 3, &isnull);
			if (isnull != stamp_null ||
				(!isnull && DatumGetTimestampTz(d) != DatumGetTimestampTz(stamp)))
				reason = "ended by a password change";
		}
	}
	um_scan_end(scan);
	if (!found)
		invalid_token("No session has this token.");
	if (reason != NULL || !password)
		return reason;

	/* a password session: has an organization of the user turned password login off? */
	scan = um_scan_begin(UM_T_MEMBERSHIPS, snap, Int64GetDatum(*user_id));
	while (reason == NULL && um_scan_next(scan))
	{
		UmScan	   *org = um_scan_begin(UM_T_ORGANIZATIONS, snap,
										Int64GetDatum(um_scan_int8(scan, 1)));

		if (um_scan_next(org) && um_scan_bool(org, 1))
			reason = "password_login_disabled";
		um_scan_end(org);
	}
	um_scan_end(scan);
	return reason;
}

/*
 * um_begin(token text) returns bigint: make the token's user the acting
 * user of the current transaction and return their id.
 */
Datum
um_begin(PG_FUNCTION_ARGS)
{
	text	   *token;
	int64		user_id = 0;
	const char *reason;
	uint8		hash[PG_SHA256_DIGEST_LENGTH];
	pg_cryptohash_ctx *ctx;
	Snapshot	snap;
	SessionSeen seen;

	um_session_note_secret();
	if (PG_ARGISNULL(0))
		invalid_token("The token is NULL.");
	token = PG_GETARG_TEXT_PP(0);
	if (VARSIZE_ANY_EXHDR(token) >= 4 && memcmp(VARDATA_ANY(token), CHALLENGE_PREFIX, 4) == 0)
		invalid_token("The token is a login challenge, not a session: finish the login with um_complete_login(challenge, code).");
	if (!token_well_formed(VARDATA_ANY(token), VARSIZE_ANY_EXHDR(token)))
		invalid_token("The token is not one um issued.");

	/* what um_internal.token_hash() computes: a well-formed token is ASCII, the same bytes in UTF8 */
	ctx = pg_cryptohash_create(PG_SHA256);
	if (pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (const uint8 *) VARDATA_ANY(token), VARSIZE_ANY_EXHDR(token)) < 0 ||
		pg_cryptohash_final(ctx, hash, sizeof(hash)) < 0)
		elog(ERROR, "um_begin: could not hash the token: %s", pg_cryptohash_error(ctx));
	pg_cryptohash_free(ctx);

	/*
	 * With the latest snapshot, not the transaction's: a session ended (or a
	 * user suspended) after a REPEATABLE READ transaction took its snapshot
	 * must not come back to life inside it.
	 */
	snap = RegisterSnapshot(GetLatestSnapshot());
	reason = session_refusal(snap, hash, &user_id, &seen);
	UnregisterSnapshot(snap);

	if (reason != NULL)
	{
		if (strcmp(reason, "expired") == 0)
			invalid_token("The session has expired.");
		else if (strcmp(reason, "suspended") == 0)
			invalid_token("The user is suspended.");
		else if (strcmp(reason, "login_disabled") == 0)
			invalid_token("The user may not log in (allow_login is false).");
		else if (strcmp(reason, "password_login_disabled") == 0)
			invalid_token("An organization of the user has turned password login off.");
		else if (strcmp(reason, "idle") == 0)
			invalid_token("The session went unused longer than its idle timeout.");
		else
			invalid_token(psprintf("The session was %s.", reason));
	}
	um_identity_set(user_id, "um_begin()");
	publish_session(seen.session_id, user_id, seen.level);
	touch_session(&seen);
	PG_RETURN_INT64(user_id);
}

/*
 * touch_session: record, coarsely, that the session is in use: at most every
 * TOUCH_INTERVAL_SECONDS (a quarter of its idle timeout when that is
 * shorter), as um's owner, without waiting for a lock (a concurrent request
 * of the same session, or its logout, may hold it: then another request
 * records it), and never where nothing may be written (a hot standby, a
 * read-only transaction).  The write belongs to the caller's transaction: a
 * rollback forgets it, which coarse bookkeeping allows.
 */
static void
touch_session(const SessionSeen *seen)
{
	int			interval = TOUCH_INTERVAL_SECONDS;
	UmRunAs		ra;
	Oid			types[1] = {INT8OID};
	Datum		vals[1];
	int			rc;

	if (!seen->has_last_seen || seen->session_id == 0 || RecoveryInProgress() || XactReadOnly)
		return;
	if (seen->idle_timeout > 0 && seen->idle_timeout / 4 < interval)
		interval = Max(seen->idle_timeout / 4, 1);
	if (GetCurrentTimestamp() - seen->last_use < (int64) interval * USECS_PER_SEC)
		return;
	vals[0] = Int64GetDatum(seen->session_id);
	um_run_as_begin(&ra, um_owner(), false);
	rc = SPI_execute_with_args("UPDATE um.session_activity SET last_seen_at = pg_catalog.now()"
							   " WHERE session_id OPERATOR(pg_catalog.=) (SELECT a.session_id FROM um.session_activity a"
							   "  WHERE a.session_id OPERATOR(pg_catalog.=) $1 FOR UPDATE SKIP LOCKED)",
							   1, types, vals, NULL, false, 0);
	if (rc != SPI_OK_UPDATE)
		elog(ERROR, "um_begin: could not record the session's use: %s", SPI_result_code_string(rc));
	/* (the row is made with the session: an insert here could wait for another request) */
	um_run_as_end(&ra);
}

/*
 * Is this transaction's um_begin session still the one acting?  Its user
 * must be the person really acting: while they impersonate someone, their
 * session (and its level) still speaks for what they do.
 */
static bool
session_acting(void)
{
	int64		real;

	parse_session();
	return current_session != 0 && um_identity_real(&real) && real == current_session_user;
}

/* does the organization require a second factor (as this transaction first read it)? */
static bool
org_requires_mfa(int64 org_id)
{
	UmScan	   *scan;
	Snapshot	snap;
	bool		required = false;
	int			i;

	for (i = 0; i < MFA_MEMO_SIZE; i++)
		if (mfa_memo[i].lxid == MY_LXID && mfa_memo[i].org_id == org_id)
			return mfa_memo[i].required;
	/* (a parallel worker may not take a snapshot: it reads with the query's) */
	snap = RegisterSnapshot(IsInParallelMode() ? GetActiveSnapshot() : GetLatestSnapshot());
	scan = um_scan_begin(UM_T_ORGANIZATIONS, snap, Int64GetDatum(org_id));
	if (um_scan_next(scan))
		required = um_scan_bool(scan, 2);
	um_scan_end(scan);
	UnregisterSnapshot(snap);
	mfa_memo[mfa_memo_next].lxid = MY_LXID;
	mfa_memo[mfa_memo_next].org_id = org_id;
	mfa_memo[mfa_memo_next].required = required;
	mfa_memo_next = (mfa_memo_next + 1) % MFA_MEMO_SIZE;
	return required;
}

bool
um_session_blocks_org(int64 user_id, int64 org_id)
{
	(void) user_id;				/* the acting user's, or an impersonated one's: the session's level decides */
	return session_acting() && current_session_level < 2 && org_requires_mfa(org_id);
}

void
um_session_check_assurance(int64 user_id, int64 org_id)
{
	if (um_session_blocks_org(user_id, org_id))
		ereport(ERROR,
				(errcode(ERRCODE_UM_SECOND_FACTOR_REQUIRED),
				 errmsg("organization %lld requires a second factor", (long long) org_id),
				 errdetail("This session is at assurance level 1: in this organization it may do nothing."),
				 errhint("Prove a second factor: um_reauthenticate(code => ...) in this session, or log in again with one (um_complete_login); a user without a factor enrols one (um_enroll_totp).")));
}

/*
 * um_internal.current_assurance_level(): the level of the session acting in
 * this transaction; NULL when none (um_act_as, nobody).
 */
Datum
um_current_assurance_level(PG_FUNCTION_ARGS)
{
	if (!session_acting())
		PG_RETURN_NULL();
	PG_RETURN_INT16((int16) current_session_level);
}

/* um_internal.note_assurance_level(level smallint): the session proved more */
Datum
um_note_assurance_level(PG_FUNCTION_ARGS)
{
	if (session_acting())
		publish_session(current_session, current_session_user, PG_GETARG_INT16(0));
	PG_RETURN_VOID();
}

/*
 * um_internal.current_session_id(): the session this transaction's um_begin
 * made acting, while that user still is; NULL otherwise (um_act_as, nobody).
 */
Datum
um_current_session_id(PG_FUNCTION_ARGS)
{
	if (!session_acting())
		PG_RETURN_NULL();
	PG_RETURN_INT64(current_session);
}
