/* server/svc_cluster.c — etcd's Cluster service on keeld: the membership as clients see it
 * (MemberList). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keeld.h"
#include "svc.h"

static size_t split_urls(char *s, char **out, size_t max)
{
	size_t n = 0;
	for (char *tok = strtok(s, ","); tok && n < max; tok = strtok(NULL, ","))
		out[n++] = tok;
	return n;
}

void svc_member_list_msg(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len)
{
	if (!svc_leader_ok(ud, call))
		return;
	keeld_t *s = ud;
	ProtobufCMessage *req = svc_decode(call, &etcdserverpb__member_list_request__descriptor,
					   msg, len);
	if (!req)
		return;
	protobuf_c_message_free_unpacked(req, NULL);
	Etcdserverpb__Member ms[KEELD_MAX_MEMBERS], *mp[KEELD_MAX_MEMBERS];
	char peer[KEELD_MAX_MEMBERS][1024], client[KEELD_MAX_MEMBERS][1024];
	char *peer_v[KEELD_MAX_MEMBERS][KEELD_MAX_URLS], *client_v[KEELD_MAX_MEMBERS][KEELD_MAX_URLS];
	for (size_t i = 0; i < s->n_members; i++) {
		etcdserverpb__member__init(&ms[i]);
		mp[i] = &ms[i];
		ms[i].id = s->members[i].id;
		ms[i].name = s->members[i].name;
		snprintf(peer[i], sizeof(peer[i]), "%s", s->members[i].peer_urls);
		snprintf(client[i], sizeof(client[i]), "%s", s->members[i].client_urls);
		ms[i].n_peerurls = split_urls(peer[i], peer_v[i], KEELD_MAX_URLS);
		ms[i].peerurls = peer_v[i];
		ms[i].n_clienturls = split_urls(client[i], client_v[i], KEELD_MAX_URLS);
		ms[i].clienturls = client_v[i];
	}
	Etcdserverpb__MemberListResponse resp = ETCDSERVERPB__MEMBER_LIST_RESPONSE__INIT;
	Etcdserverpb__ResponseHeader hdr = ETCDSERVERPB__RESPONSE_HEADER__INIT;
	resp.header = &hdr;
	resp.n_members = s->n_members;
	resp.members = mp;
	hdr.revision = -1; /* etcd's MemberList header carries no revision */
	svc_reply(s, call, &resp.base, &hdr, true);
}
