/*
 * outlier — ejecting a server for what happens after the connect.
 *
 * Passive health (upstream.h) counts failed connects. A server that
 * accepts connections and then resets them, lets requests time out, or
 * answers far slower than the others is found here, with two rules:
 *
 *   errors   outlier_errors outcomes in a row that were the server's fault
 *            (stream: a connection ended by an upstream reset or a frame
 *            cut short; rpc: a pool connection lost, a request timed out
 *            on it) take it out; any good outcome (stream: a connection
 *            that carried a frame back and ended cleanly; rpc: a matched
 *            reply) ends the streak.
 *   latency  rpc: with outlier_latency = F, a server whose smoothed reply
 *            latency is above F times the median of the other servers'
 *            is taken out (each counted server needs OUTLIER_MIN_SAMPLES
 *            replies, and two others to compare with).
 *
 * An ejection is passive health's (upstream_eject: fail_timeout, doubled
 * for each ejection in a row), except that at most max_ejected percent of
 * the pool's servers may be out at once through these rules: a server
 * that would go past it stays in, with a rate-limited warning.
 */
#ifndef FRAMEPROXY_PROXY_OUTLIER_H
#define FRAMEPROXY_PROXY_OUTLIER_H

#include <stdint.h>

#include "proxy/upstream.h"

/* Replies a server needs before its latency is compared. */
#define OUTLIER_MIN_SAMPLES 16

/* An outcome that was the server's fault; `why` names it in the log. */
void outlier_error(upstream_pool *pool, uint32_t index, const char *why);
/* A good outcome: the end of an error streak. */
void outlier_success(upstream_pool *pool, uint32_t index);
/* rpc: a reply came `latency_ns` after its request was read. */
void outlier_latency(upstream_pool *pool, uint32_t index, int64_t latency_ns);

#endif
