// proxy/counters: the rpc latency histogram, through an upstream's counter
// array and what the supervisor renders of it.
#include <catch2/catch.hpp>

#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

extern "C" {
#include "proxy/counters.h"
#include "shard/metrics.h"
}

namespace {

const int64_t US = 1000;
const int64_t MS = 1000000;
const int64_t SEC = 1000000000;

// The rendered text of one shard with one upstream holding `counters`.
std::string render(const uint64_t *counters, bool json)
{
	shard_metrics m;
	REQUIRE(metrics_map(&m, 2) == 0);
	shard_slot *s = metrics_claim(&m, 0, 1);
	REQUIRE(s != nullptr);
	shard_slot_name(s->listeners[0].name, "api");
	s->listener_count = 1;
	shard_slot_name(s->upstreams[0].name, "127.0.0.1:9000");
	s->upstreams[0].listener = 0;
	for (uint32_t k = 0; k < COUNTER_UPSTREAM_VALUES; k++)
		shard_slot_store(&s->upstreams[0].values[k], counters[k]);
	s->upstream_count = 1;
	shard_slot_set_state(s, SHARD_STATE_READY);

	metrics_view v;
	memset(&v, 0, sizeof(v));
	v.shards = 1;
	v.app = &counters_metrics;
	v.started_unix_ns = 1;
	v.now_unix_ns = 2;
	strbuf sb;
	strbuf_init(&sb);
	int rc = json ? metrics_render_json(&m, &v, &sb) :
			metrics_render_prometheus(&m, &v, &sb);
	std::string out(sb.data ? sb.data : "", sb.len);
	strbuf_free(&sb);
	metrics_unmap(&m);
	REQUIRE(rc == 0);
	return out;
}

} // namespace

TEST_CASE("counters: the rpc latency entry, 50 us to 10 s", "[counters]")
{
	// Found by name: where it starts is COUNTER_RPC_LATENCY.
	const shard_metric_list &up = counters_metrics.upstream;
	uint32_t at = 0, i = 0;
	for (; i < up.count; i++) {
		if (std::string(up.metrics[i].name) == "rpc_request_duration_seconds")
			break;
		at += up.metrics[i].width;
	}
	REQUIRE(i < up.count);
	CHECK(at == COUNTER_RPC_LATENCY);
	const shard_metric &f = up.metrics[i];
	CHECK(std::string(f.help) == "Time from a request's last byte read "
	      "from the client to its reply's first byte read from the upstream.");
	CHECK(f.type == SHARD_HISTOGRAM);
	CHECK(f.unit == SHARD_UNIT_NS);
	REQUIRE(f.bound_count == COUNTERS_RPC_LATENCY_BOUNDS);
	CHECK(f.bounds[0] == (uint64_t)(50 * US));
	CHECK(f.bounds[f.bound_count - 1] == (uint64_t)(10 * SEC));
	CHECK(COUNTER_RPC_LATENCY_LAST - COUNTER_RPC_LATENCY + 1 == f.width);
	char why[160] = "";
	INFO(why);
	CHECK(shard_metrics_check(&counters_metrics, why, sizeof(why)) == 0);
}

TEST_CASE("counters: rpc latencies fill the histogram's buckets and sum",
	  "[counters]")
{
	uint64_t c[COUNTER_UPSTREAM_VALUES] = {0};
	const int64_t seen[] = { -5, 49 * US, 50 * US, 50 * US + 1, 7 * MS,
				 10 * SEC, 11 * SEC };
	for (int64_t ns : seen)
		counters_observe_rpc_latency(c, ns);

	const uint64_t *h = c + COUNTER_RPC_LATENCY;
	CHECK(h[0] == 3);                           // <= 50 us; -5 counts as 0
	CHECK(h[1] == 1);                           // (50 us, 100 us]
	CHECK(h[7] == 1);                           // (5 ms, 10 ms]
	CHECK(h[COUNTERS_RPC_LATENCY_BOUNDS - 1] == 1); // (5 s, 10 s]
	CHECK(h[COUNTERS_RPC_LATENCY_BOUNDS] == 1);     // above 10 s
	uint64_t sum = 0, count = 0;
	for (int64_t ns : seen)
		sum += ns > 0 ? (uint64_t)ns : 0;
	for (uint32_t k = 0; k <= COUNTERS_RPC_LATENCY_BOUNDS; k++)
		count += h[k];
	CHECK(count == 7);
	CHECK(h[COUNTERS_RPC_LATENCY_BOUNDS + 1] == sum);
	// Nothing else of the upstream moved.
	for (uint32_t k = 0; k < COUNTER_UPSTREAM_VALUES; k++)
		if (k < COUNTER_RPC_LATENCY || k > COUNTER_RPC_LATENCY_LAST)
			CHECK(c[k] == 0);

	std::string prom = render(c, false);
	INFO(prom);
	const std::string fam = "frameproxy_rpc_request_duration_seconds";
	const std::string lab = "{shard=\"0\",listener=\"api\","
				"upstream=\"127.0.0.1:9000\"";
	CHECK(prom.find("# TYPE " + fam + " histogram\n") != std::string::npos);
	CHECK(prom.find(fam + "_bucket" + lab + ",le=\"0.00005\"} 3\n") != std::string::npos);
	CHECK(prom.find(fam + "_bucket" + lab + ",le=\"0.0001\"} 4\n") != std::string::npos);
	CHECK(prom.find(fam + "_bucket" + lab + ",le=\"0.01\"} 5\n") != std::string::npos);
	CHECK(prom.find(fam + "_bucket" + lab + ",le=\"2.5\"} 5\n") != std::string::npos);
	CHECK(prom.find(fam + "_bucket" + lab + ",le=\"10\"} 6\n") != std::string::npos);
	CHECK(prom.find(fam + "_bucket" + lab + ",le=\"+Inf\"} 7\n") != std::string::npos);
	CHECK(prom.find(fam + "_count" + lab + "} 7\n") != std::string::npos);
	CHECK(prom.find(fam + "_sum" + lab + "} 21.007149001\n") != std::string::npos);
	if (access("/usr/bin/promtool", X_OK) == 0) {
		FILE *p = popen("/usr/bin/promtool check metrics", "w");
		REQUIRE(p != nullptr);
		REQUIRE(fwrite(prom.data(), 1, prom.size(), p) == prom.size());
		int status = pclose(p);
		CHECK(WIFEXITED(status));
		CHECK(WEXITSTATUS(status) == 0);
	}

	std::string json = render(c, true);
	INFO(json);
	CHECK(json.find("\"rpc_latency\":{\"count\":7,\"sum\":21.007149001,"
			"\"buckets\":[[0.00005,3],[0.0001,4],[0.00025,4],") !=
	      std::string::npos);
	CHECK(json.find(",[5,5],[10,6]]}") != std::string::npos);
}
