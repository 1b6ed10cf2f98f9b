/*
 * iptable.h - connected clients counted per peer IP address, for
 * max_clients_per_ip.
 */
#ifndef GIAMBIOD_IPTABLE_H
#define GIAMBIOD_IPTABLE_H

#include <sys/socket.h>

struct ipnode;

struct iptable {
	struct ipnode **buckets;
	size_t nbuckets;        /* a power of two */
	size_t n;               /* addresses with a count above zero */
};

int iptable_init(struct iptable *t);
void iptable_free(struct iptable *t);
/* The count for sa's address (the port does not count). */
unsigned iptable_get(const struct iptable *t, const struct sockaddr *sa);
/* Adds one; -ENOMEM if it cannot. */
int iptable_inc(struct iptable *t, const struct sockaddr *sa);
/* Takes one away; the entry goes when it reaches zero. */
void iptable_dec(struct iptable *t, const struct sockaddr *sa);

#endif
