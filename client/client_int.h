/* client/client_int.h — what libkeel's own files share (not a public door): the handle's
 * layout, and the hubs of watch.c and lease.c that multiplex every watch and keep-alive of
 * a handle over one stream each. */
#ifndef KEEL_CLIENT_INT_H
#define KEEL_CLIENT_INT_H

#include "keel/keel.h"
#include "transport.h"

typedef struct keel_watch_hub keel_watch_hub_t;  /* watch.c */
typedef struct keel_lease_hub keel_lease_hub_t;  /* lease.c */

struct keel {
	kt_t *t;
	keel_watch_hub_t *watches;   /* created on the first watch */
	keel_lease_hub_t *leases;    /* created on the first keep-alive */
	/* An embedded member (keel_open): stopped after the transport is gone. */
	void *embedded;
	void (*embedded_stop)(void *embedded);
};

/* client.c: a handle on a transport built from opt (keel_connect and keel_open use it). */
int keel_client_new(const kt_options_t *opt, keel_t **out, keel_error_t *err);
/* watch.c and lease.c: stop every watch / keep-alive and free the hub (keel_close). */
void keel_watch_hub_free(keel_watch_hub_t *h);
void keel_lease_hub_free(keel_lease_hub_t *h);

#endif
