/*-------------------------------------------------------------------------
 *
 * test/fuzz/permname_fuzz.c
 *	  Fuzz the permission-name parser (src/permname.c).
 *
 * Two ways to run it:
 *	- a deterministic loop (the default build, run by test/shell/fuzz_permname.sh):
 *	  random byte strings, mutations of valid names and a list of edge
 *	  cases, from a seeded generator, built with AddressSanitizer and
 *	  UndefinedBehaviorSanitizer;
 *	- libFuzzer (build with -DUM_LIBFUZZER and clang -fsanitize=fuzzer).
 * Every input sits in a buffer of exactly its length, without a
 * terminating NUL, so a read past the input is caught by ASan.  Each result
 * is compared with an independent oracle (POSIX regular expressions), and a
 * successful parse must describe the input exactly.
 *
 *-------------------------------------------------------------------------
 */
#ifndef UM_PERMNAME_STANDALONE
#define UM_PERMNAME_STANDALONE
#endif
#include "../../src/permname.c"

/* PostgreSQL's port.h routes these to its own printf; this program is not linked with it */
#undef printf
#undef fprintf

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PART "[a-z]([a-z0-9_-]{0,61}[a-z0-9])?"

static regex_t re_name;
static regex_t re_pattern;
static long failures = 0;

static void
oracle_init(void)
{
	if (regcomp(&re_name, "^" PART ":" PART "$", REG_EXTENDED | REG_NOSUB) != 0 ||
		regcomp(&re_pattern, "^(\\*|(" PART "|\\*):(" PART "|\\*))$", REG_EXTENDED | REG_NOSUB) != 0)
	{
		fprintf(stderr, "regcomp failed\n");
		exit(2);
	}
}

/* what the oracle says: 1 valid, 0 invalid */
static int
oracle(const unsigned char *data, size_t len, bool wild)
{
	char	   *z;
	int			ok;

	if (memchr(data, '\0', len) != NULL)
		return 0;
	z = malloc(len + 1);
	memcpy(z, data, len);
	z[len] = '\0';
	ok = regexec(wild ? &re_pattern : &re_name, z, 0, NULL, 0) == 0;
	free(z);
	return ok;
}

static void
fail(const char *what, const unsigned char *data, size_t len)
{
	size_t		i;

	failures++;
	if (failures > 20)
		return;
	fprintf(stderr, "FAIL: %s on input of %zu bytes: \"", what, len);
	for (i = 0; i < len && i < 200; i++)
		fprintf(stderr, (data[i] >= 32 && data[i] < 127) ? "%c" : "\\x%02x", data[i]);
	fprintf(stderr, "\"\n");
}

/* check one input both ways: as a name and as a pattern */
static void
check_one(const unsigned char *input, size_t len)
{
	unsigned char *buf = malloc(len > 0 ? len : 1);	/* exactly len bytes */
	int			w;

	memcpy(buf, input, len);
	for (w = 0; w < 2; w++)
	{
		bool		wild = (w == 1);
		UmPermName	p;
		const char *why = NULL;
		bool		ok = um_permname_parse((const char *) buf, len, wild, &p, &why);

		if (ok != (oracle(buf, len, wild) == 1))
			fail(ok ? "parser accepts what the oracle rejects" : "parser rejects what the oracle accepts", buf, len);
		if (!ok)
		{
			if (why == NULL || why[0] == '\0')
				fail("rejection without a reason", buf, len);
			continue;
		}
		/* a successful parse describes the input exactly */
		if (p.resource < (const char *) buf || p.resource + p.resource_len > (const char *) buf + len ||
			p.action < (const char *) buf || p.action + p.action_len > (const char *) buf + len)
			fail("parts outside the input", buf, len);
		if (!(len == 1 && p.resource_wild && p.action_wild) &&
			(size_t) (p.resource_len + 1 + p.action_len) != len)
			fail("parts do not cover the input", buf, len);
		if (!wild && (p.resource_wild || p.action_wild))
			fail("wildcard in a name", buf, len);
		/* a name covers itself; as a pattern, it covers itself */
		if (!um_permname_matches(&p, &p))
			fail("does not match itself", buf, len);
	}
	/* NULL why pointer and NULL out are allowed */
	(void) um_permname_parse((const char *) buf, len, true, NULL, NULL);
	free(buf);
}

/* wildcard matching against the oracle's idea of it */
static void
check_match(const char *pattern, const char *name, bool expect)
{
	UmPermName	p,
				n;

	if (!um_permname_parse(pattern, strlen(pattern), true, &p, NULL) ||
		!um_permname_parse(name, strlen(name), false, &n, NULL))
	{
		fail("match fixture does not parse", (const unsigned char *) pattern, strlen(pattern));
		return;
	}
	if (um_permname_matches(&p, &n) != expect)
		fail("wrong match", (const unsigned char *) pattern, strlen(pattern));
}

#ifdef UM_LIBFUZZER
int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready = false;

	if (!ready)
	{
		oracle_init();
		ready = true;
	}
	check_one(data, size);
	if (failures > 0)
		abort();
	return 0;
}
#else

/* xorshift64*: a small seeded generator, the same on every machine */
static uint64_t rng_state;

static uint64_t
rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * UINT64_C(2685821657736338717);
}

static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789_-:*ABZ. \t\n\\%'\"";

static unsigned char
random_byte(void)
{
	uint64_t	r = rng() % 100;

	if (r < 85)
		return (unsigned char) alphabet[rng() % (sizeof(alphabet) - 1)];
	return (unsigned char) (rng() % 256);	/* anything, NUL and high bytes too */
}

int
main(int argc, char **argv)
{
	long		iterations = argc > 1 ? atol(argv[1]) : 1000000;
	uint64_t	seed = argc > 2 ? strtoull(argv[2], NULL, 10) : 20261123;
	static const char *const edge[] = {
		"", ":", "*", "**", "*:", ":*", "*:*", "a:*", "*:a", "a:b", "a:b:c", "a::b", "a:",
		":b", "A:b", "a:B", "a-:b", "a_:b", "a:b-", "a:b_", "-a:b", "_a:b", "1a:b", "a:1b",
		"a1:b2", "a-b_c:d-e_f", "service:create", "service:*", "*:read", "serv*:read", "service:re*",
		" a:b", "a:b ", "a :b", "a: b", "a\n:b", "a:\xc3\xa9", "\xc3\xa9:a", "a\0:b",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:b",	/* 63 */
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:b",	/* 64 */
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
	};
	static const char *const valid[] = {"service:create", "a:b", "invoice:read", "x1-y_2:z", "*:read", "doc:*", "*"};
	unsigned char buf[512];
	long		i;
	size_t		e;

	oracle_init();
	rng_state = seed ? seed : 1;

	/* edge cases, with their exact lengths (the NUL case included) */
	for (e = 0; e < sizeof(edge) / sizeof(edge[0]); e++)
		check_one((const unsigned char *) edge[e], strlen(edge[e]));
	check_one((const unsigned char *) "a\0:b", 4);
	check_one((const unsigned char *) "a:b\0", 4);

	check_match("*", "service:create", true);
	check_match("*:*", "service:create", true);
	check_match("service:*", "service:create", true);
	check_match("service:*", "services:create", false);
	check_match("*:create", "service:create", true);
	check_match("*:create", "service:created", false);
	check_match("service:create", "service:create", true);
	check_match("service:create", "service:creat", false);
	check_match("servic:create", "service:create", false);

	for (i = 0; i < iterations; i++)
	{
		size_t		len;
		size_t		k;

		if (i % 3 == 0)
		{
			/* a mutation of a valid name */
			const char *v = valid[rng() % (sizeof(valid) / sizeof(valid[0]))];
			int			edits = 1 + (int) (rng() % 3);

			len = strlen(v);
			memcpy(buf, v, len);
			while (edits-- > 0)
			{
				size_t		pos = len ? rng() % (len + 1) : 0;

				switch (rng() % 3)
				{
					case 0:		/* replace */
						if (pos < len)
							buf[pos] = random_byte();
						break;
					case 1:		/* insert */
						if (len < sizeof(buf))
						{
							memmove(buf + pos + 1, buf + pos, len - pos);
							buf[pos] = random_byte();
							len++;
						}
						break;
					default:	/* delete */
						if (pos < len)
						{
							memmove(buf + pos, buf + pos + 1, len - pos - 1);
							len--;
						}
						break;
				}
			}
		}
		else if (i % 3 == 1)
		{
			/* a random string, mostly short */
			len = (rng() % 4 == 0) ? rng() % sizeof(buf) : rng() % 24;
			for (k = 0; k < len; k++)
				buf[k] = random_byte();
		}
		else
		{
			/* two random identifiers around a colon, near the length limits */
			size_t		a = rng() % 70,
						b = rng() % 70;

			len = a + 1 + b;
			for (k = 0; k < len; k++)
				buf[k] = (unsigned char) "abcxyz019_-"[rng() % 11];
			buf[a] = ':';
		}
		check_one(buf, len);
	}

	if (failures > 0)
	{
		fprintf(stderr, "%ld failures in %ld inputs (seed %llu)\n", failures, iterations,
				(unsigned long long) seed);
		return 1;
	}
	printf("permname: %ld random inputs and the edge cases agree with the oracle (seed %llu)\n",
		   iterations, (unsigned long long) seed);
	return 0;
}
#endif							/* UM_LIBFUZZER */
