/* tests/sim/params.c — what a seed decides before the run starts: the raft configuration
 * (pre-vote, check-quorum, read mode, batching and flow-control limits) and the intensity
 * of every kind of fault. Tables, not branches: each knob picks one row. */
#include "sim.h"

void sim_params_from_seed(sim_params_t *p, uint64_t seed, int nodes)
{
	static const int election[] = {10, 10, 15, 20};
	static const int heartbeat[] = {1, 1, 2, 3};
	static const uint64_t max_size[] = {0, 1, 64, 512, 1u << 20};
	static const int inflight[] = {1, 2, 4, 16, 256};
	static const double drop[] = {0, 0.01, 0.03, 0.1, 0.2};
	static const double dup[] = {0, 0.01, 0.05};
	static const double reorder[] = {0, 0.1, 0.3};
	static const double long_delay[] = {0, 0.002, 0.01};
	static const double wire[] = {0, 0.3, 1};
	static const uint64_t lat_max[] = {2, 3, 5};
	static const uint64_t jitter[] = {5, 20, 40};
	static const uint64_t long_max[] = {50, 300};
	static const double crash[] = {0, 0.005, 0.01, 0.02, 0.05};
	static const double partition[] = {0, 0.005, 0.01, 0.03, 0.06};
	static const double slow[] = {0, 0.05, 0.2};
	static const uint64_t slow_max[] = {5, 30};
	static const double transfer[] = {0, 0.005, 0.02, 0.05};
	static const double campaign[] = {0, 0.002, 0.01};
	static const double conf[] = {0, 0.005, 0.01, 0.03};
	static const double writes[] = {0.3, 1, 2};
	static const double reads[] = {0.2, 0.5, 1};
	static const size_t pad[] = {0, 16, 200};
	static const uint64_t snap_every[] = {10, 30, 100, 1u << 30};
	static const uint64_t snap_keep[] = {0, 2, 10};

	sim_rng_t r;
	sim_rng_seed(&r, seed ^ 0x5eed5eed5eed5eedull);
	*p = (sim_params_t){.seed = seed, .nodes = nodes};
	do {
		p->election_tick = SIM_RNG_PICK(&r, election);
		p->heartbeat_tick = SIM_RNG_PICK(&r, heartbeat);
	} while (p->heartbeat_tick * 3 > p->election_tick);
	p->pre_vote = sim_rng_chance(&r, 0.5);
	p->check_quorum = sim_rng_chance(&r, 0.5);
	p->read_only = p->check_quorum && sim_rng_chance(&r, 0.5) ? RAFT_READ_LEASE : RAFT_READ_SAFE;
	p->no_forwarding = sim_rng_chance(&r, 0.1);
	p->max_size_per_msg = SIM_RNG_PICK(&r, max_size);
	p->max_inflight = SIM_RNG_PICK(&r, inflight);

	p->chaos_ticks = sim_rng_range(&r, 1000, 3000);
	p->heal_ticks = 300;

	p->net = (sim_net_faults_t){
		.drop = SIM_RNG_PICK(&r, drop),
		.dup = SIM_RNG_PICK(&r, dup),
		.reorder = SIM_RNG_PICK(&r, reorder),
		.long_delay = SIM_RNG_PICK(&r, long_delay),
		.wire = SIM_RNG_PICK(&r, wire),
		.lat_min = 1,
		.lat_max = SIM_RNG_PICK(&r, lat_max),
		.jitter_max = SIM_RNG_PICK(&r, jitter),
		.long_max = SIM_RNG_PICK(&r, long_max),
	};
	p->p_crash = SIM_RNG_PICK(&r, crash);
	p->p_crash_in_ready = 0.5;
	p->p_partition = SIM_RNG_PICK(&r, partition);
	p->p_slow_disk = SIM_RNG_PICK(&r, slow);
	p->slow_max = SIM_RNG_PICK(&r, slow_max);
	p->p_transfer = SIM_RNG_PICK(&r, transfer);
	p->p_campaign = SIM_RNG_PICK(&r, campaign);
	p->p_conf = SIM_RNG_PICK(&r, conf);
	p->down_min = sim_rng_range(&r, 1, 10);
	p->down_max = p->down_min + sim_rng_range(&r, 10, 120);
	p->part_min = sim_rng_range(&r, 2, 10);
	p->part_max = p->part_min + sim_rng_range(&r, 10, 150);

	p->p_write = SIM_RNG_PICK(&r, writes);
	p->p_read = SIM_RNG_PICK(&r, reads);
	p->p_follower_op = 0.3;
	p->write_pad_max = SIM_RNG_PICK(&r, pad);
	p->snap_every = SIM_RNG_PICK(&r, snap_every);
	p->snap_keep = SIM_RNG_PICK(&r, snap_keep);
}

void sim_params_print(const sim_params_t *p, FILE *out)
{
	fprintf(out,
		"seed %llu: %d nodes, election %d/heartbeat %d ticks, pre-vote %s, check-quorum %s, "
		"reads %s%s, max %llu bytes/msg, %d in flight\n"
		"  network: drop %.0f%%, dup %.0f%%, reorder %.0f%%, stale %.1f%%, wire %.0f%%, "
		"latency 1-%llu substeps\n"
		"  faults/tick: crash %.1f%%, partition %.1f%%, transfer %.1f%%, campaign %.1f%%, "
		"conf change %.1f%%; slow disk %.0f%% of Readies\n"
		"  clients: %.1f writes and %.1f reads per tick; snapshot every %llu entries; "
		"%llu ticks of faults, then heal\n",
		(unsigned long long)p->seed, p->nodes, p->election_tick, p->heartbeat_tick,
		p->pre_vote ? "on" : "off", p->check_quorum ? "on" : "off",
		p->read_only == RAFT_READ_LEASE ? "lease" : "safe",
		p->no_forwarding ? ", no proposal forwarding" : "",
		(unsigned long long)p->max_size_per_msg, p->max_inflight, p->net.drop * 100,
		p->net.dup * 100, p->net.reorder * 100, p->net.long_delay * 100, p->net.wire * 100,
		(unsigned long long)p->net.lat_max, p->p_crash * 100, p->p_partition * 100,
		p->p_transfer * 100, p->p_campaign * 100, p->p_conf * 100, p->p_slow_disk * 100,
		p->p_write, p->p_read, (unsigned long long)p->snap_every,
		(unsigned long long)p->chaos_ticks);
}
