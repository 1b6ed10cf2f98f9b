/*
 * iptable.c - a chained hash table from IP address to client count. IPv4
 * addresses mapped into IPv6 (a dual-stack listener's ::ffff:a.b.c.d)
 * count as the IPv4 address they are.
 */
#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gb.h"
#include "iptable.h"

struct ipnode {
	unsigned char addr[16];
	unsigned count;
	struct ipnode *next;
};

#define NBUCKETS 4096

int iptable_init(struct iptable *t)
{
	t->nbuckets = NBUCKETS;
	t->n = 0;
	/* An array of pointers: sizeof a pointer is the element size. */
	/* NOLINTNEXTLINE(bugprone-sizeof-expression) */
	t->buckets = gb_calloc(t->nbuckets, sizeof *t->buckets);
	return t->buckets ? 0 : -ENOMEM;
}

void iptable_free(struct iptable *t)
{
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct ipnode *n = t->buckets[i];
		while (n) {
			struct ipnode *next = n->next;
			free(n);
			n = next;
		}
	}
	free(t->buckets);
	t->buckets = NULL;
}

/* The address as 16 bytes: IPv4 as ::ffff:a.b.c.d, like a mapped one. */
static void key_of(const struct sockaddr *sa, unsigned char key[16])
{
	memset(key, 0, 16);
	if (sa->sa_family == AF_INET) {
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		memcpy(key, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
	}
}

/* FNV-1a over the 16 bytes. */
static size_t hash(const unsigned char key[16], size_t nbuckets)
{
	uint32_t h = 2166136261u;

	for (int i = 0; i < 16; i++)
		h = (h ^ key[i]) * 16777619u;
	return h & (nbuckets - 1);
}

static struct ipnode **find(const struct iptable *t, const unsigned char key[16])
{
	struct ipnode **pp = &t->buckets[hash(key, t->nbuckets)];

	while (*pp && memcmp((*pp)->addr, key, 16) != 0)
		pp = &(*pp)->next;
	return pp;
}

unsigned iptable_get(const struct iptable *t, const struct sockaddr *sa)
{
	unsigned char key[16];
	struct ipnode *n;

	key_of(sa, key);
	n = *find(t, key);
	return n ? n->count : 0;
}

int iptable_inc(struct iptable *t, const struct sockaddr *sa)
{
	unsigned char key[16];
	struct ipnode **pp;

	key_of(sa, key);
	pp = find(t, key);
	if (!*pp) {
		if (!(*pp = gb_calloc(1, sizeof **pp)))
			return -ENOMEM;
		memcpy((*pp)->addr, key, 16);
		t->n++;
	}
	(*pp)->count++;
	return 0;
}

void iptable_dec(struct iptable *t, const struct sockaddr *sa)
{
	unsigned char key[16];
	struct ipnode **pp, *n;

	key_of(sa, key);
	pp = find(t, key);
	if (!(n = *pp))
		return;
	if (--n->count == 0) {
		*pp = n->next;
		free(n);
		t->n--;
	}
}
