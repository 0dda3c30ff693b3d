/*-------------------------------------------------------------------------
 *
 * src/totp.c
 *	  Time-based one-time passwords (RFC 6238, over HOTP of RFC 4226): the
 *	  secret, its base32 form for authenticator apps, and the check of a
 *	  code, with HMAC-SHA1 from PostgreSQL's common/hmac.
 *
 * Codes are 6 digits for 30-second steps, the parameters every
 * authenticator app assumes.  A code is accepted for the step before, the
 * one of now and the one after (a clock a little off), and only for a step
 * later than the last one accepted for that factor: a code seen once (over
 * a shoulder, in a phishing proxy's log) is never accepted again.  The
 * three candidates are all computed and compared without an early exit, so
 * the time a check takes says nothing of which step matched or how much of
 * the code was right.  The SQL side (sql/install/73_mfa.sql) stores the
 * step, counts failures and locks like passwords.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/cryptohash.h"
#include "common/hmac.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "port.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "um.h"

PG_FUNCTION_INFO_V1(um_totp_secret);
PG_FUNCTION_INFO_V1(um_totp_base32);
PG_FUNCTION_INFO_V1(um_totp_code);
PG_FUNCTION_INFO_V1(um_totp_match);

#define TOTP_SECRET_BYTES	20		/* 160 bits, as RFC 4226 recommends for SHA-1 */
#define TOTP_STEP_SECONDS	30
#define TOTP_DIGITS			6
#define TOTP_WINDOW			1		/* steps either side of now */

/* the HOTP value of a counter: dynamic truncation of HMAC-SHA1, mod 10^6 */
static uint32
hotp(const uint8 *key, size_t keylen, uint64 counter)
{
	pg_hmac_ctx *ctx = pg_hmac_create(PG_SHA1);
	uint8		msg[8];
	uint8		mac[20];
	int			offset;
	uint32		bin;
	int			i;

	for (i = 7; i >= 0; i--)
	{
		msg[i] = (uint8) (counter & 0xff);
		counter >>= 8;
	}
	if (ctx == NULL ||
		pg_hmac_init(ctx, key, keylen) < 0 ||
		pg_hmac_update(ctx, msg, sizeof(msg)) < 0 ||
		pg_hmac_final(ctx, mac, sizeof(mac)) < 0)
		elog(ERROR, "um: could not compute HMAC-SHA1: %s", ctx ? pg_hmac_error(ctx) : "out of memory");
	pg_hmac_free(ctx);
	offset = mac[19] & 0x0f;
	bin = ((uint32) (mac[offset] & 0x7f) << 24) | ((uint32) mac[offset + 1] << 16) |
		((uint32) mac[offset + 2] << 8) | (uint32) mac[offset + 3];
	return bin % 1000000;
}

/* the step of a moment: Unix time / 30 */
static int64
step_of(TimestampTz t)
{
	int64		unix_us = t + (int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY;

	return unix_us / (USECS_PER_SEC * TOTP_STEP_SECONDS);
}

static void
check_secret(bytea *secret)
{
	if (VARSIZE_ANY_EXHDR(secret) < 10 || VARSIZE_ANY_EXHDR(secret) > 64)
		elog(ERROR, "um: a TOTP secret has 10 to 64 bytes");
}

/* um_internal.totp_secret(): 20 fresh random bytes */
Datum
um_totp_secret(PG_FUNCTION_ARGS)
{
	bytea	   *b = palloc(VARHDRSZ + TOTP_SECRET_BYTES);

	SET_VARSIZE(b, VARHDRSZ + TOTP_SECRET_BYTES);
	if (!pg_strong_random(VARDATA(b), TOTP_SECRET_BYTES))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random TOTP secret")));
	PG_RETURN_BYTEA_P(b);
}

/* um_internal.totp_base32(secret bytea): RFC 4648 base32, unpadded, as authenticator apps take it */
Datum
um_totp_base32(PG_FUNCTION_ARGS)
{
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
	bytea	   *secret = PG_GETARG_BYTEA_PP(0);
	const uint8 *p = (const uint8 *) VARDATA_ANY(secret);
	size_t		n = VARSIZE_ANY_EXHDR(secret);
	StringInfoData out;
	uint32		buffer = 0;
	int			bits = 0;
	size_t		i;

	initStringInfo(&out);
	for (i = 0; i < n; i++)
	{
		buffer = (buffer << 8) | p[i];
		bits += 8;
		while (bits >= 5)
		{
			appendStringInfoChar(&out, alphabet[(buffer >> (bits - 5)) & 0x1f]);
			bits -= 5;
		}
	}
	if (bits > 0)
		appendStringInfoChar(&out, alphabet[(buffer << (5 - bits)) & 0x1f]);
	PG_RETURN_TEXT_P(cstring_to_text(out.data));
}

/* um_internal.totp_code(secret bytea, step bigint): the 6-digit code of a step (tests, enrolment checks) */
Datum
um_totp_code(PG_FUNCTION_ARGS)
{
	bytea	   *secret = PG_GETARG_BYTEA_PP(0);
	int64		step = PG_GETARG_INT64(1);

	check_secret(secret);
	PG_RETURN_TEXT_P(cstring_to_text(psprintf("%06u",
											  hotp((const uint8 *) VARDATA_ANY(secret),
												   VARSIZE_ANY_EXHDR(secret), (uint64) step))));
}

/*
 * um_internal.totp_match(secret bytea, code text, after_step bigint): the
 * step (now - 1 .. now + 1, later than after_step) whose code the given one
 * is, or NULL.  A code that is not 6 digits matches nothing, after the same
 * work.
 */
Datum
um_totp_match(PG_FUNCTION_ARGS)
{
	bytea	   *secret;
	text	   *code_t;
	int64		after;
	int64		now_step;
	char		given[TOTP_DIGITS + 1];
	const char *c;
	size_t		len;
	bool		well_formed = true;
	int64		matched = -1;
	int			d;
	int			i;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	secret = PG_GETARG_BYTEA_PP(0);
	code_t = PG_GETARG_TEXT_PP(1);
	after = PG_ARGISNULL(2) ? PG_INT64_MIN : PG_GETARG_INT64(2);
	check_secret(secret);

	c = VARDATA_ANY(code_t);
	len = VARSIZE_ANY_EXHDR(code_t);
	/* blanks a person may type or paste around the digits */
	while (len > 0 && (*c == ' ' || *c == '\t'))
		c++, len--;
	while (len > 0 && (c[len - 1] == ' ' || c[len - 1] == '\t' || c[len - 1] == '\n' || c[len - 1] == '\r'))
		len--;
	if (len != TOTP_DIGITS)
		well_formed = false;
	for (i = 0; i < TOTP_DIGITS; i++)
	{
		char		ch = (well_formed && (size_t) i < len) ? c[i] : '0';

		if (ch < '0' || ch > '9')
			well_formed = false;
		given[i] = ch;
	}
	given[TOTP_DIGITS] = '\0';

	now_step = step_of(GetCurrentTimestamp());
	for (d = -TOTP_WINDOW; d <= TOTP_WINDOW; d++)
	{
		char		expected[TOTP_DIGITS + 1];
		uint8		diff = 0;

		snprintf(expected, sizeof(expected), "%06u",
				 hotp((const uint8 *) VARDATA_ANY(secret), VARSIZE_ANY_EXHDR(secret), (uint64) (now_step + d)));
		for (i = 0; i < TOTP_DIGITS; i++)
			diff |= (uint8) (expected[i] ^ given[i]);
		if (diff == 0 && well_formed && now_step + d > after && matched < 0)
			matched = now_step + d;
	}
	if (matched < 0)
		PG_RETURN_NULL();
	PG_RETURN_INT64(matched);
}
