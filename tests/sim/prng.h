/* tests/sim/prng.h — the simulator's only source of randomness: splitmix64, seeded per run.
 * A seed fully determines a run; nothing here may read clocks, addresses or the
 * environment. */
#ifndef KEEL_SIM_PRNG_H
#define KEEL_SIM_PRNG_H

#include <stdbool.h>
#include <stdint.h>

typedef struct sim_rng {
	uint64_t s;
} sim_rng_t;

static inline void sim_rng_seed(sim_rng_t *r, uint64_t seed)
{
	r->s = seed * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull;
}

static inline uint64_t sim_rng_next(sim_rng_t *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Uniform in [0, n); 0 when n is 0. */
static inline uint64_t sim_rng_below(sim_rng_t *r, uint64_t n)
{
	return n ? sim_rng_next(r) % n : 0;
}

/* Uniform in [lo, hi]. */
static inline uint64_t sim_rng_range(sim_rng_t *r, uint64_t lo, uint64_t hi)
{
	return hi <= lo ? lo : lo + sim_rng_below(r, hi - lo + 1);
}

/* True with probability p. */
static inline bool sim_rng_chance(sim_rng_t *r, double p)
{
	return (double)(sim_rng_next(r) >> 11) * 0x1.0p-53 < p;
}

/* One value of a small table, e.g. a knob chosen per seed. */
#define SIM_RNG_PICK(r, arr) ((arr)[sim_rng_below((r), sizeof(arr) / sizeof((arr)[0]))])

#endif
