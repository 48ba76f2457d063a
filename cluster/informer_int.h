/* cluster/informer_int.h — the runtime's private declarations: the stored-value decoder that
 * store.c and informer.c share, and test-only hooks of the informer. Not for components. */
#ifndef KEEL_CLUSTER_INFORMER_INT_H
#define KEEL_CLUSTER_INFORMER_INT_H

#include "cluster.h"

/* The object stored in kv with metadata.resourceVersion filled in; NULL with the reason (naming
 * the key) in msg when the value is not a JSON object. */
json_t *kc_store_decode(const keel_kv_t *kv, char *msg, size_t n);

/* Test hooks. pause cancels the informer's watch (events stop reaching the cache); resume has
 * the informer's thread watch again from the cache's revision + 1, as libkeel does after a
 * broken connection: if that revision was compacted meanwhile, the informer relists. Only
 * while no relist is under way (the informer is idle). */
void kc_informer_test_pause(kc_informer_t *inf);
int kc_informer_test_resume(kc_informer_t *inf, keel_error_t *err);
/* How many relists the informer has done since it started. */
int kc_informer_test_relists(kc_informer_t *inf);

#endif
