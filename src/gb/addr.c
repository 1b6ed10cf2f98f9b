/*
 * addr.c - socket addresses as users write them: "host:port",
 * "[v6addr]:port" and "*:port".
 */
#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A decimal port, 0-65535, and nothing after it. */
static int parse_port(const char *s, in_port_t *port)
{
	char *end;
	unsigned long v;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v > 65535)
		return -EINVAL;
	*port = htons((uint16_t)v);
	return 0;
}

/* host[0..n) as a numeric address of family af, then the port. */
static int parse_host(int af, const char *host, size_t n, const char *port,
                      struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	char buf[INET6_ADDRSTRLEN];

	if (n >= sizeof buf)
		return -EINVAL;
	memcpy(buf, host, n);
	buf[n] = '\0';
	memset(ss, 0, sizeof *ss);
	ss->ss_family = (sa_family_t)af;
	if (af == AF_INET6) {
		*len = sizeof *sin6;
		if (inet_pton(af, buf, &sin6->sin6_addr) != 1)
			return -EINVAL;
		return parse_port(port, &sin6->sin6_port);
	}
	*len = sizeof *sin;
	if (inet_pton(af, buf, &sin->sin_addr) != 1)
		return -EINVAL;
	return parse_port(port, &sin->sin_port);
}

int gb_addr_parse(const char *text, struct sockaddr_storage *ss,
                  socklen_t *len)
{
	const char *colon;

	if (text[0] == '[') {
		const char *close = strchr(text, ']');
		if (!close || close[1] != ':')
			return -EINVAL;
		return parse_host(AF_INET6, text + 1, (size_t)(close - text - 1),
		                  close + 2, ss, len);
	}
	colon = strrchr(text, ':');
	if (!colon || memchr(text, ':', (size_t)(colon - text)))
		return -EINVAL; /* no port, or a bare IPv6 address */
	if (colon == text + 1 && text[0] == '*')
		return parse_host(AF_INET6, "::", 2, colon + 1, ss, len);
	return parse_host(AF_INET, text, (size_t)(colon - text), colon + 1, ss,
	                  len);
}

int gb_addr_format(const struct sockaddr *sa, char *buf, size_t size)
{
	char host[INET6_ADDRSTRLEN];
	int n;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof host);
		n = snprintf(buf, size, "%s:%u", host, ntohs(sin->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof host);
		n = snprintf(buf, size, "[%s]:%u", host, ntohs(sin6->sin6_port));
	} else {
		return -EINVAL;
	}
	return n > 0 && (size_t)n < size ? 0 : -EINVAL;
}
