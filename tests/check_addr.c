/*
 * check_addr.c - gb_addr_parse and gb_addr_format: the accepted forms, the
 * exact bytes they produce, every malformed input rejected with -EINVAL,
 * and formatting round trips and failures.
 *
 * Neither function blocks, but the scheduler's contract says every gb_
 * call runs inside gb_run(), so each test does its calls in a main task
 * and checks the recorded results afterwards.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>

#include "testutil.h"

/* ------------------------------------------------------------ helpers */

struct parse_res {
	const char *text;
	int rc;
	socklen_t len;
	struct sockaddr_storage ss;
};

static int parse_main(void *arg)
{
	struct parse_res *r = arg;

	r->len = (socklen_t)-1;
	memset(&r->ss, 0xa5, sizeof r->ss);
	r->rc = gb_addr_parse(r->text, &r->ss, &r->len);
	return 0;
}

static struct parse_res parse(const char *text)
{
	struct parse_res r;

	memset(&r, 0, sizeof r);
	r.text = text;
	TU_RUN(parse_main, &r, 0);
	return r;
}

/* Asserts text parses as the IPv4 address ip and port. */
static void want_v4(const char *text, const char *ip, unsigned port)
{
	struct parse_res r = parse(text);
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&r.ss;
	struct in_addr want;

	ck_assert_msg(r.rc == 0, "parse(\"%s\") = %d, want 0", text, r.rc);
	ck_assert_int_eq(r.len, sizeof(struct sockaddr_in));
	ck_assert_int_eq(sin->sin_family, AF_INET);
	ck_assert_uint_eq(ntohs(sin->sin_port), port);
	ck_assert_int_eq(inet_pton(AF_INET, ip, &want), 1);
	ck_assert_mem_eq(&sin->sin_addr, &want, sizeof want);
	/* no garbage in the padding: the address compares equal to a clean one */
	for (size_t i = 0; i < sizeof sin->sin_zero; i++)
		ck_assert_int_eq(sin->sin_zero[i], 0);
}

/* Asserts text parses as the IPv6 address ip and port. */
static void want_v6(const char *text, const char *ip, unsigned port)
{
	struct parse_res r = parse(text);
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&r.ss;
	struct in6_addr want;

	ck_assert_msg(r.rc == 0, "parse(\"%s\") = %d, want 0", text, r.rc);
	ck_assert_int_eq(r.len, sizeof(struct sockaddr_in6));
	ck_assert_int_eq(sin6->sin6_family, AF_INET6);
	ck_assert_uint_eq(ntohs(sin6->sin6_port), port);
	ck_assert_int_eq(inet_pton(AF_INET6, ip, &want), 1);
	ck_assert_mem_eq(&sin6->sin6_addr, &want, sizeof want);
	ck_assert_uint_eq(sin6->sin6_flowinfo, 0);
	ck_assert_uint_eq(sin6->sin6_scope_id, 0);
}

static void want_einval(const char *text)
{
	struct parse_res r = parse(text);

	ck_assert_msg(r.rc == -EINVAL, "parse(\"%s\") = %d, want -EINVAL (%d)",
	              text, r.rc, -EINVAL);
}

struct fmt_res {
	const struct sockaddr *sa;
	size_t size;
	int rc;
	char buf[GB_ADDR_STRLEN + 16];
};

static int fmt_main(void *arg)
{
	struct fmt_res *r = arg;

	memset(r->buf, 'X', sizeof r->buf);
	r->rc = gb_addr_format(r->sa, r->buf, r->size);
	return 0;
}

static struct fmt_res format(const struct sockaddr *sa, size_t size)
{
	struct fmt_res r;

	memset(&r, 0, sizeof r);
	r.sa = sa;
	r.size = size;
	ck_assert_uint_le(size, sizeof r.buf);
	TU_RUN(fmt_main, &r, 0);
	return r;
}

/* Parses text, formats the result, and expects text back exactly. Also
 * checks the exact buffer size boundary: strlen+1 fits, strlen does not. */
static void round_trip(const char *text)
{
	struct parse_res p = parse(text);
	size_t n = strlen(text);
	struct fmt_res f;

	ck_assert_msg(p.rc == 0, "parse(\"%s\") = %d", text, p.rc);
	f = format((const struct sockaddr *)&p.ss, GB_ADDR_STRLEN);
	ck_assert_msg(f.rc == 0, "format(%s) = %d", text, f.rc);
	ck_assert_str_eq(f.buf, text);
	f = format((const struct sockaddr *)&p.ss, n + 1);
	ck_assert_int_eq(f.rc, 0);
	ck_assert_str_eq(f.buf, text);
	f = format((const struct sockaddr *)&p.ss, n);
	ck_assert_msg(f.rc == -EINVAL, "format(%s) into %zu bytes = %d, "
	              "want -EINVAL", text, n, f.rc);
	/* nothing is written past the buffer given */
	ck_assert_int_eq(f.buf[n], 'X');
}

/* -------------------------------------------------------------- parse */

/* IPv4 "host:port" yields an AF_INET sockaddr with those exact bytes. */
START_TEST(test_parse_v4)
{
	want_v4("127.0.0.1:25000", "127.0.0.1", 25000);
	want_v4("0.0.0.0:0", "0.0.0.0", 0);
	want_v4("10.1.2.3:65535", "10.1.2.3", 65535);
	want_v4("255.255.255.255:1", "255.255.255.255", 1);
}
END_TEST

/* "[v6]:port" yields an AF_INET6 sockaddr with those exact bytes. */
START_TEST(test_parse_v6)
{
	want_v6("[::1]:80", "::1", 80);
	want_v6("[::]:0", "::", 0);
	want_v6("[fe80::1:2]:65535", "fe80::1:2", 65535);
	want_v6("[::ffff:1.2.3.4]:5", "::ffff:1.2.3.4", 5);
	want_v6("[2001:db8:0:0:0:0:0:1]:443", "2001:db8::1", 443);
}
END_TEST

/* "*:port" is the IPv6 any address (dual stack), not 0.0.0.0. */
START_TEST(test_parse_star)
{
	want_v6("*:25000", "::", 25000);
	want_v6("*:0", "::", 0);
	want_v6("*:65535", "::", 65535);
}
END_TEST

/* Every malformed input listed in the brief, and neighbours, is -EINVAL. */
START_TEST(test_parse_errors)
{
	static const char *const bad[] = {
		"",                     /* empty */
		"127.0.0.1",            /* no port */
		"127.0.0.1:",           /* empty port */
		":80",                  /* empty host */
		"127.0.0.1:65536",      /* port out of range */
		"127.0.0.1:99999999999999999999999", /* overflows strtoul */
		"127.0.0.1:4294967376", /* 2^32 + 80: must not wrap to 80 */
		"127.0.0.1:80x",        /* junk after the port */
		"127.0.0.1:0x50",       /* not decimal */
		"127.0.0.1:-1",         /* negative */
		"127.0.0.1:+80",        /* sign */
		"127.0.0.1: 80",        /* space */
		"127.0.0.1:80 ",        /* trailing space */
		"::1:80",               /* bare IPv6 */
		"::1",                  /* bare IPv6, no port */
		"[::1]80",              /* no colon after ] */
		"[::1]",                /* no port */
		"[::1]:",               /* empty port */
		"[::1",                 /* unterminated */
		"[::1]x:80",            /* junk after ] */
		"[]:80",                /* empty v6 host */
		"[::1]:65536",          /* v6 port out of range */
		"[[::1]]:80",           /* nested brackets */
		"localhost:80",         /* names are not resolved here */
		"300.1.1.1:1",          /* octet out of range */
		"1.2.3:80",             /* short dotted quad */
		"1.2.3.4.5:80",         /* long dotted quad */
		"[1.2.3.4]:5",          /* IPv4 in brackets */
		"*:",                   /* star, empty port */
		"*",                    /* star, no port */
		"*:80x",                /* star, junk */
		"**:80",                /* not the star form */
		"[*]:80",               /* star in brackets */
		"1.2.3.4:80:80",        /* two ports */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		want_einval(bad[i]);
}
END_TEST

/* ------------------------------------------------------------- format */

/* format(parse(x)) == x for v4, v6 and the star address's canonical form,
 * and the buffer size boundary is exact. */
START_TEST(test_format_round_trip)
{
	round_trip("127.0.0.1:25000");
	round_trip("[::1]:80");
	round_trip("0.0.0.0:0");
	round_trip("255.255.255.255:65535");
	round_trip("[::]:25000");
	round_trip("[::ffff:1.2.3.4]:5");
	/* the longest address fits in GB_ADDR_STRLEN */
	round_trip("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");

	/* "*:port" formats as the IPv6 any address */
	struct parse_res p = parse("*:8080");
	ck_assert_int_eq(p.rc, 0);
	struct fmt_res f = format((const struct sockaddr *)&p.ss, GB_ADDR_STRLEN);
	ck_assert_int_eq(f.rc, 0);
	ck_assert_str_eq(f.buf, "[::]:8080");
}
END_TEST

/* Hand-built sockaddrs format to the exact expected text. */
START_TEST(test_format_built)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
	struct fmt_res f;

	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_port = htons(1234);
	sin.sin_addr.s_addr = htonl(0x0a000001);
	f = format((const struct sockaddr *)&sin, GB_ADDR_STRLEN);
	ck_assert_int_eq(f.rc, 0);
	ck_assert_str_eq(f.buf, "10.0.0.1:1234");

	memset(&sin6, 0, sizeof sin6);
	sin6.sin6_family = AF_INET6;
	sin6.sin6_port = htons(65535);
	sin6.sin6_addr = in6addr_loopback;
	f = format((const struct sockaddr *)&sin6, GB_ADDR_STRLEN);
	ck_assert_int_eq(f.rc, 0);
	ck_assert_str_eq(f.buf, "[::1]:65535");
}
END_TEST

/* Too-small buffers (including size 1) and non-IP families are -EINVAL. */
START_TEST(test_format_errors)
{
	struct parse_res p = parse("127.0.0.1:25000");
	struct fmt_res f;
	struct sockaddr_un sun;
	struct sockaddr_storage ss;

	ck_assert_int_eq(p.rc, 0);
	f = format((const struct sockaddr *)&p.ss, 1);
	ck_assert_int_eq(f.rc, -EINVAL);
	ck_assert_int_eq(f.buf[1], 'X');
	f = format((const struct sockaddr *)&p.ss, 8);
	ck_assert_int_eq(f.rc, -EINVAL);
	ck_assert_int_eq(f.buf[8], 'X');

	p = parse("[::1]:80");
	ck_assert_int_eq(p.rc, 0);
	f = format((const struct sockaddr *)&p.ss, 5);
	ck_assert_int_eq(f.rc, -EINVAL);
	ck_assert_int_eq(f.buf[5], 'X');

	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	strcpy(sun.sun_path, "/tmp/sock");
	f = format((const struct sockaddr *)&sun, GB_ADDR_STRLEN);
	ck_assert_int_eq(f.rc, -EINVAL);

	memset(&ss, 0, sizeof ss);
	ss.ss_family = AF_UNSPEC;
	f = format((const struct sockaddr *)&ss, GB_ADDR_STRLEN);
	ck_assert_int_eq(f.rc, -EINVAL);
}
END_TEST

/* ------------------------------------------------------------------ main */

static Suite *addr_suite(void)
{
	Suite *s = suite_create("gb_addr");
	TCase *tc = tcase_create("parse");
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_parse_v4);
	tcase_add_test(tc, test_parse_v6);
	tcase_add_test(tc, test_parse_star);
	tcase_add_test(tc, test_parse_errors);
	suite_add_tcase(s, tc);

	TCase *tf = tcase_create("format");
	tcase_set_timeout(tf, 20);
	tcase_add_test(tf, test_format_round_trip);
	tcase_add_test(tf, test_format_built);
	tcase_add_test(tf, test_format_errors);
	suite_add_tcase(s, tf);
	return s;
}

int main(void)
{
	return tu_run_suite(addr_suite());
}
