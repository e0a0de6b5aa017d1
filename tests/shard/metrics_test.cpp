// shard/metrics: slot claim/release, retired totals, Prometheus and JSON.
#include <catch2/catch.hpp>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>
#include <set>
#include <sstream>
#include <string>

#include "json.hpp"
#include "metrics_tables.h"
#include "shard/shard.h"
#include "shard/metrics.h"
#include "shard/runtime.h"

namespace {

const char *const g_reasons[] = { "client_eof", "upstream_eof", "timeout" };
const int64_t START_NS = 1700000000123456789;

metrics_view make_view(uint32_t shards)
{
	metrics_view v;
	memset(&v, 0, sizeof(v));
	v.shards = shards;
	v.app = test_metrics(g_reasons, 3);
	v.pid = 4242;
	v.started_unix_ns = START_NS;
	v.now_unix_ns = START_NS + 5500000000; // 5.5 s later
	v.reloads = 2;
	v.restarts = 1;
	v.version = "1.2.3 \"test\"";
	return v;
}

struct Metrics {
	shard_metrics m;
	explicit Metrics(uint32_t slots = 16) { REQUIRE(metrics_map(&m, slots) == 0); }
	~Metrics() { metrics_unmap(&m); }

	std::string prom(const metrics_view &v)
	{
		strbuf sb;
		strbuf_init(&sb);
		int rc = metrics_render_prometheus(&m, &v, &sb);
		std::string out(sb.data ? sb.data : "", sb.len);
		strbuf_free(&sb);
		REQUIRE(rc == 0);
		return out;
	}
	Json json(const metrics_view &v)
	{
		strbuf sb;
		strbuf_init(&sb);
		int rc = metrics_render_json(&m, &v, &sb);
		std::string out(sb.data ? sb.data : "", sb.len);
		strbuf_free(&sb);
		REQUIRE(rc == 0);
		INFO(out);
		Json j;
		REQUIRE_NOTHROW(j = JsonReader::parse(out));
		return j;
	}
};

// What a shard would publish, in one call per part.
void set_listener(shard_slot *s, uint32_t k, const char *name, uint64_t base)
{
	shard_slot_listener *l = &s->listeners[k];
	shard_slot_name(l->name, name);
	l->values[T_ACCEPTED] = base;
	l->values[T_ACTIVE] = base / 10;
	l->values[T_ACCEPT_ERRORS] = base / 100;
	l->values[T_FRAMES] = base * 2;
	l->values[T_FRAMES + 1] = base * 3;
	l->values[T_BYTES] = base * 200;
	l->values[T_BYTES + 1] = base * 300;
	l->values[T_CLOSED] = base / 2;
	l->values[T_CLOSED + 2] = 1;
	if (s->listener_count <= k)
		s->listener_count = k + 1;
}

void set_server_name(shard_slot *s, uint32_t k, uint32_t listener,
		     const char *name, uint64_t lookups, uint64_t servers)
{
	shard_slot_server_name *n = &s->names[k];
	shard_slot_name(n->name, name);
	n->listener = listener;
	n->values[T_NAME_LOOKUPS] = lookups;
	n->values[T_NAME_SERVERS] = servers;
	if (s->name_count <= k)
		s->name_count = k + 1;
}

void set_upstream(shard_slot *s, uint32_t k, uint32_t listener,
		  const char *name, uint64_t connects, uint32_t up)
{
	shard_slot_upstream *u = &s->upstreams[k];
	shard_slot_name(u->name, name);
	u->listener = listener;
	u->values[T_UP] = up;
	u->values[T_CONNECTS] = connects;
	u->values[T_CONNECT_FAILURES] = connects / 10;
	u->values[T_EJECTIONS] = 1;
	// Latencies: `connects` of 0.5 ms, two of 5 ms, one above 1.5 s.
	u->values[T_LATENCY] = connects;
	u->values[T_LATENCY + 1] = 2;
	u->values[T_LATENCY + 2] = 0;
	u->values[T_LATENCY + 3] = 1;
	u->values[T_LATENCY + 4] = connects * 500000 + 2 * 5000000 + 2000000000;
	if (s->upstream_count <= k)
		s->upstream_count = k + 1;
}

void set_runtime(shard_slot *s, uint64_t base, const char *poller)
{
	uint64_t *v = s->runtime;
	v[RUNTIME_ROUNDS] = base;
	v[RUNTIME_SWITCHES] = base * 2;
	v[RUNTIME_RUNQ] = 2;
	v[RUNTIME_COROUTINES] = 5;
	v[RUNTIME_WAITS] = base + 1;
	v[RUNTIME_EVENTS] = base + 2;
	v[RUNTIME_SYSCALLS] = base + 3;
	v[RUNTIME_POLLS] = base + 4;
	v[RUNTIME_SUBMITS] = base + 5;
	v[RUNTIME_CPU] = base * 1000000;   // user: base ms
	v[RUNTIME_CPU + 1] = base * 500000;
	v[RUNTIME_RSS] = 1 << 20;
	s->app[T_LOG_DROPPED] = base / 10;
	snprintf(s->poller, sizeof(s->poller), "%s", poller);
}

// Every sample line of a Prometheus text, "name{labels}" -> value; also
// checks the grouping rules promtool is lenient about: each family's HELP
// and TYPE once, before its samples, and its samples in one block; no
// series twice.
std::map<std::string, std::string> samples(const std::string &text)
{
	std::map<std::string, std::string> out;
	std::set<std::string> families;
	std::string current;
	bool histogram = false;
	std::istringstream in(text);
	std::string line;
	std::string last_help;
	while (std::getline(in, line)) {
		INFO(line);
		REQUIRE(!line.empty());
		if (line.rfind("# HELP ", 0) == 0) {
			last_help = line.substr(7, line.find(' ', 7) - 7);
			continue;
		}
		if (line.rfind("# TYPE ", 0) == 0) {
			current = line.substr(7, line.find(' ', 7) - 7);
			REQUIRE(current == last_help);
			REQUIRE(families.insert(current).second);
			REQUIRE(current.rfind("frameproxy_", 0) == 0);
			std::string type = line.substr(8 + current.size());
			histogram = type == "histogram";
			if (type == "counter")
				REQUIRE(current.size() > 6);
			if (type == "counter")
				REQUIRE(current.compare(current.size() - 6, 6, "_total") == 0);
			continue;
		}
		REQUIRE(line[0] != '#');
		size_t brace = line.find('{');
		size_t space = line.rfind(' ');
		REQUIRE(space != std::string::npos);
		std::string name = line.substr(0, std::min(brace, space));
		if (histogram)
			REQUIRE((name == current + "_bucket" ||
				 name == current + "_sum" ||
				 name == current + "_count"));
		else
			REQUIRE(name == current);
		std::string series = line.substr(0, space);
		REQUIRE(out.count(series) == 0);
		out[series] = line.substr(space + 1);
	}
	REQUIRE(text.back() == '\n');
	return out;
}

std::string value(const std::map<std::string, std::string> &s,
		  const std::string &series)
{
	auto it = s.find(series);
	INFO(series);
	REQUIRE(it != s.end());
	return it->second;
}

std::string promtool_path()
{
	const char *env = getenv("SHARD_TEST_PROMTOOL");
	if (env && *env)
		return env;
	if (access("/usr/bin/promtool", X_OK) == 0)
		return "/usr/bin/promtool";
	return "";
}

// `promtool check metrics` reads the text on stdin; exit 0 means neither
// parse errors nor lint problems.
void promtool_check(const std::string &text)
{
	std::string tool = promtool_path();
	if (tool.empty()) {
		WARN("promtool not installed: Prometheus text not checked by it");
		return;
	}
	std::string cmd = "'" + tool + "' check metrics";
	FILE *p = popen(cmd.c_str(), "w");
	REQUIRE(p != nullptr);
	REQUIRE(fwrite(text.data(), 1, text.size(), p) == text.size());
	int status = pclose(p);
	INFO(text);
	REQUIRE(WIFEXITED(status));
	REQUIRE(WEXITSTATUS(status) == 0);
}

const std::string L0 = "frameproxy_connections_accepted_total{shard=\"0\",listener=\"api\"}";

} // namespace

TEST_CASE("metrics_map makes FREE, aligned slots; claim fills them",
	  "[metrics]")
{
	shard_metrics bad;
	REQUIRE(metrics_map(&bad, 0) == -EINVAL);
	metrics_unmap(&bad); // harmless on a failed map

	Metrics t(3);
	REQUIRE(t.m.slot_count == 3);
	REQUIRE(((uintptr_t)t.m.slots % 64) == 0);
	for (uint32_t i = 0; i < 3; i++)
		REQUIRE(shard_slot_get_state(&t.m.slots[i]) == SHARD_STATE_FREE);

	shard_slot *a = metrics_claim(&t.m, 0, 7);
	shard_slot *b = metrics_claim(&t.m, 1, 7);
	shard_slot *c = metrics_claim(&t.m, 2, 8);
	REQUIRE(a != nullptr);
	REQUIRE(b != nullptr);
	REQUIRE(c != nullptr);
	REQUIRE(a != b);
	REQUIRE(b != c);
	REQUIRE(metrics_claim(&t.m, 3, 8) == nullptr); // full
	REQUIRE(shard_slot_get_state(c) == SHARD_STATE_STARTING);
	REQUIRE(c->index == 2);
	REQUIRE(c->generation == 8);

	// A released slot comes back zeroed, whatever its last shard wrote.
	set_runtime(b, 99, "epoll");
	set_listener(b, 0, "api", 50);
	b->pid = 1234;
	metrics_release(&t.m, b);
	REQUIRE(shard_slot_get_state(b) == SHARD_STATE_FREE);
	shard_slot *again = metrics_claim(&t.m, 1, 9);
	REQUIRE(again == b);
	REQUIRE(again->generation == 9);
	REQUIRE(again->pid == 0);
	REQUIRE(again->runtime[RUNTIME_ROUNDS] == 0);
	REQUIRE(again->app[T_LOG_DROPPED] == 0);
	REQUIRE(again->listener_count == 0);
	REQUIRE(again->listeners[0].values[T_ACCEPTED] == 0);
	REQUIRE(again->poller[0] == '\0');
}

TEST_CASE("counters stay monotonic across a restart, gauges do not carry",
	  "[metrics]")
{
	Metrics t;
	metrics_view v = make_view(2);

	shard_slot *s = metrics_claim(&t.m, 0, 1);
	set_runtime(s, 1000, "epoll");
	set_listener(s, 0, "api", 10);
	set_upstream(s, 0, 0, "10.0.0.1:9000", 7, 1);
	s->pid = 111;
	shard_slot_set_state(s, SHARD_STATE_READY);

	auto p = samples(t.prom(v));
	REQUIRE(value(p, L0) == "10");
	REQUIRE(value(p, "frameproxy_connections_active{shard=\"0\",listener=\"api\"}") == "1");
	REQUIRE(value(p, "frameproxy_shard_resident_bytes{shard=\"0\"}") == "1048576");
	REQUIRE(value(p, "frameproxy_shard_up{shard=\"0\"}") == "1");
	REQUIRE(value(p, "frameproxy_shard_up{shard=\"1\"}") == "0");
	REQUIRE(value(p, "frameproxy_upstream_up{shard=\"0\",listener=\"api\",upstream=\"10.0.0.1:9000\"}") == "1");
	REQUIRE(value(p, "frameproxy_sched_rounds_total{shard=\"0\"}") == "1000");
	REQUIRE(value(p, "frameproxy_shard_cpu_seconds_total{shard=\"0\",mode=\"user\"}") == "1.000000000");
	REQUIRE(value(p, "frameproxy_shard_cpu_seconds_total{shard=\"0\",mode=\"system\"}") == "0.500000000");

	// The process dies and is reaped.
	metrics_release(&t.m, s);
	p = samples(t.prom(v));
	REQUIRE(value(p, L0) == "10");
	REQUIRE(value(p, "frameproxy_sched_rounds_total{shard=\"0\"}") == "1000");
	REQUIRE(value(p, "frameproxy_upstream_connects_total{shard=\"0\",listener=\"api\",upstream=\"10.0.0.1:9000\"}") == "7");
	REQUIRE(value(p, "frameproxy_connections_active{shard=\"0\",listener=\"api\"}") == "0");
	REQUIRE(value(p, "frameproxy_shard_resident_bytes{shard=\"0\"}") == "0");
	REQUIRE(value(p, "frameproxy_sched_coroutines{shard=\"0\"}") == "0");
	REQUIRE(value(p, "frameproxy_shard_up{shard=\"0\"}") == "0");
	REQUIRE(p.count("frameproxy_upstream_up{shard=\"0\",listener=\"api\",upstream=\"10.0.0.1:9000\"}") == 0);
	REQUIRE(p.count("frameproxy_shard_info{shard=\"0\",poller=\"epoll\"}") == 0);

	// Its replacement starts from zero in its own slot.
	shard_slot *r = metrics_claim(&t.m, 0, 1);
	set_runtime(r, 50, "epoll");
	set_listener(r, 0, "api", 3);
	set_upstream(r, 0, 0, "10.0.0.1:9000", 2, 0);
	shard_slot_set_state(r, SHARD_STATE_READY);
	p = samples(t.prom(v));
	REQUIRE(value(p, L0) == "13");
	REQUIRE(value(p, "frameproxy_frames_total{shard=\"0\",listener=\"api\",direction=\"client_to_upstream\"}") == "26");
	REQUIRE(value(p, "frameproxy_bytes_total{shard=\"0\",listener=\"api\",direction=\"upstream_to_client\"}") == "3900");
	REQUIRE(value(p, "frameproxy_connections_closed_total{shard=\"0\",listener=\"api\",reason=\"client_eof\"}") == "6");
	REQUIRE(value(p, "frameproxy_connections_closed_total{shard=\"0\",listener=\"api\",reason=\"timeout\"}") == "2");
	REQUIRE(value(p, "frameproxy_sched_rounds_total{shard=\"0\"}") == "1050");
	REQUIRE(value(p, "frameproxy_shard_cpu_seconds_total{shard=\"0\",mode=\"user\"}") == "1.050000000");
	REQUIRE(value(p, "frameproxy_log_lines_dropped_total{shard=\"0\"}") == "105");
	REQUIRE(value(p, "frameproxy_upstream_connects_total{shard=\"0\",listener=\"api\",upstream=\"10.0.0.1:9000\"}") == "9");
	REQUIRE(value(p, "frameproxy_upstream_up{shard=\"0\",listener=\"api\",upstream=\"10.0.0.1:9000\"}") == "0");
	REQUIRE(value(p, "frameproxy_connections_active{shard=\"0\",listener=\"api\"}") == "0");
	REQUIRE(value(p, "frameproxy_shard_resident_bytes{shard=\"0\"}") == "1048576");
	// Shard 1 never ran: its per-shard series exist at zero.
	REQUIRE(value(p, "frameproxy_sched_rounds_total{shard=\"1\"}") == "0");
	REQUIRE(p.count("frameproxy_connections_accepted_total{shard=\"1\",listener=\"api\"}") == 0);
	REQUIRE(value(p, "frameproxy_shard_restarts_total") == "1");
	REQUIRE(value(p, "frameproxy_reloads_total") == "2");

	// Releasing twice must not count twice; a foreign pointer is ignored.
	metrics_release(&t.m, r);
	metrics_release(&t.m, r);
	shard_slot stray;
	memset(&stray, 0, sizeof(stray));
	stray.state = SHARD_STATE_READY;
	set_listener(&stray, 0, "api", 1000);
	metrics_release(&t.m, &stray);
	p = samples(t.prom(v));
	REQUIRE(value(p, L0) == "13");
	REQUIRE(value(p, "frameproxy_sched_rounds_total{shard=\"0\"}") == "1050");
}

TEST_CASE("a server name's series: lookups add up over restarts and "
	  "reloads, its server count is the newest process's", "[metrics]")
{
	Metrics t;
	metrics_view v = make_view(1);
	const char *key = "{shard=\"0\",listener=\"api\",server_name=\"db.internal\"}";

	shard_slot *s = metrics_claim(&t.m, 0, 1);
	set_listener(s, 0, "api", 1);
	set_server_name(s, 0, 0, "db.internal", 4, 3);
	shard_slot_set_state(s, SHARD_STATE_READY);
	auto p = samples(t.prom(v));
	REQUIRE(value(p, std::string("frameproxy_name_lookups_total") + key) == "4");
	REQUIRE(value(p, std::string("frameproxy_name_servers") + key) == "3");

	metrics_release(&t.m, s); // died: its lookups stay, its gauge goes
	p = samples(t.prom(v));
	REQUIRE(value(p, std::string("frameproxy_name_lookups_total") + key) == "4");
	REQUIRE(p.count(std::string("frameproxy_name_servers") + key) == 0);

	// A reload in progress: the old generation still runs beside the new.
	shard_slot *old_s = metrics_claim(&t.m, 0, 1);
	set_listener(old_s, 0, "api", 1);
	set_server_name(old_s, 0, 0, "db.internal", 2, 3);
	shard_slot_set_state(old_s, SHARD_STATE_RETIRING);
	shard_slot *new_s = metrics_claim(&t.m, 0, 2);
	set_listener(new_s, 0, "api", 1);
	set_server_name(new_s, 0, 0, "db.internal", 1, 5);
	set_server_name(new_s, 1, 0, "_x._tcp.svc srv", 6, 0);
	shard_slot_set_state(new_s, SHARD_STATE_READY);
	p = samples(t.prom(v));
	REQUIRE(value(p, std::string("frameproxy_name_lookups_total") + key) == "7");
	REQUIRE(value(p, std::string("frameproxy_name_servers") + key) == "5");
	REQUIRE(value(p, "frameproxy_name_lookups_total{shard=\"0\",listener=\"api\","
			 "server_name=\"_x._tcp.svc srv\"}") == "6");

	Json j = t.json(v);
	const Json &names = j["shards"][0]["server_names"];
	REQUIRE(names.arr.size() == 2);
	REQUIRE(names[1]["listener"].str() == "api");
	REQUIRE(names[1]["name"].str() == "db.internal");
	REQUIRE(names[1]["lookups"].u64() == 7);
	REQUIRE(names[1]["servers"].u64() == 5);
}

TEST_CASE("during a reload gauges add up and the newest generation names "
	  "up and poller", "[metrics]")
{
	Metrics t;
	metrics_view v = make_view(2);

	// Make the new generation land in a lower slot than the old one, so
	// "newest" cannot be mistaken for "last in the mapping".
	shard_slot *filler = metrics_claim(&t.m, 1, 1);
	shard_slot *old_s = metrics_claim(&t.m, 0, 1);
	metrics_release(&t.m, filler);
	set_runtime(old_s, 100, "epoll");
	set_listener(old_s, 0, "api", 50);
	set_upstream(old_s, 0, 0, "u1", 10, 1);
	set_upstream(old_s, 1, 0, "gone", 4, 1);
	old_s->pid = 200;
	shard_slot_set_state(old_s, SHARD_STATE_READY);

	shard_slot *new_s = metrics_claim(&t.m, 0, 2);
	REQUIRE(new_s < old_s);
	new_s->pid = 300;
	// STARTING and not yet published: no poller name, and its listener
	// counts are not read yet.
	set_listener(new_s, 0, "api", 1000);
	auto p = samples(t.prom(v));
	REQUIRE(value(p, L0) == "50");
	REQUIRE(value(p, "frameproxy_shard_info{shard=\"0\",poller=\"epoll\"}") == "1");
	REQUIRE(value(p, "frameproxy_shard_up{shard=\"0\"}") == "1");

	shard_slot_set_state(old_s, SHARD_STATE_RETIRING);
	set_runtime(new_s, 7, "uring");
	set_listener(new_s, 0, "api", 20);
	set_upstream(new_s, 0, 0, "u1", 3, 0);
	shard_slot_set_state(new_s, SHARD_STATE_READY);

	p = samples(t.prom(v));
	REQUIRE(value(p, L0) == "70");
	REQUIRE(value(p, "frameproxy_connections_active{shard=\"0\",listener=\"api\"}") == "7");
	REQUIRE(value(p, "frameproxy_sched_coroutines{shard=\"0\"}") == "10");
	REQUIRE(value(p, "frameproxy_shard_resident_bytes{shard=\"0\"}") == "2097152");
	REQUIRE(value(p, "frameproxy_upstream_up{shard=\"0\",listener=\"api\",upstream=\"u1\"}") == "0");
	REQUIRE(value(p, "frameproxy_upstream_up{shard=\"0\",listener=\"api\",upstream=\"gone\"}") == "1");
	REQUIRE(value(p, "frameproxy_upstream_connects_total{shard=\"0\",listener=\"api\",upstream=\"u1\"}") == "13");
	REQUIRE(value(p, "frameproxy_shard_info{shard=\"0\",poller=\"uring\"}") == "1");
	REQUIRE(p.count("frameproxy_shard_info{shard=\"0\",poller=\"epoll\"}") == 0);
	REQUIRE(value(p, "frameproxy_shards_retiring") == "1");

	Json j = t.json(v);
	const Json &s0 = j["shards"][0];
	REQUIRE(s0["pid"].u64() == 300);
	REQUIRE(s0["state"].str() == "ready");
	REQUIRE(s0["generation"].u64() == 2);
	REQUIRE(s0["poller"].str() == "uring");
	REQUIRE(s0["processes"].arr.size() == 2);
	REQUIRE(s0["connections_active"].u64() == 7);
	REQUIRE(j["retiring"].u64() == 1);

	// The old one exits: its upstream "gone" keeps its counters, loses up.
	metrics_release(&t.m, old_s);
	p = samples(t.prom(v));
	REQUIRE(value(p, L0) == "70");
	REQUIRE(value(p, "frameproxy_upstream_connects_total{shard=\"0\",listener=\"api\",upstream=\"gone\"}") == "4");
	REQUIRE(p.count("frameproxy_upstream_up{shard=\"0\",listener=\"api\",upstream=\"gone\"}") == 0);
	REQUIRE(value(p, "frameproxy_shards_retiring") == "0");
	REQUIRE(value(p, "frameproxy_sched_coroutines{shard=\"0\"}") == "5");
}

TEST_CASE("slots of indexes past the shard count are not rendered",
	  "[metrics]")
{
	Metrics t;
	metrics_view v = make_view(1);
	shard_slot *s = metrics_claim(&t.m, 5, 1);
	set_listener(s, 0, "api", 10);
	shard_slot_set_state(s, SHARD_STATE_READY);
	auto p = samples(t.prom(v));
	REQUIRE(value(p, "frameproxy_shard_up{shard=\"0\"}") == "0");
	REQUIRE(p.count("frameproxy_shard_up{shard=\"5\"}") == 0);
	for (const auto &kv : p)
		REQUIRE(kv.first.find("shard=\"5\"") == std::string::npos);
}

TEST_CASE("Prometheus label values are escaped, bad UTF-8 replaced",
	  "[metrics]")
{
	Metrics t;
	metrics_view v = make_view(1);
	const char *const reasons[] = { "plain", "quote\"back\\slash\nline" };
	v.app = test_metrics(reasons, 2);

	shard_slot *s = metrics_claim(&t.m, 0, 1);
	set_listener(s, 0, "a\"b\\c\nd", 5);
	set_listener(s, 1, "caf\xC3\xA9 \xFF!", 6);
	set_upstream(s, 0, 1, "h\"1", 1, 1);
	shard_slot_set_state(s, SHARD_STATE_READY);

	std::string text = t.prom(v);
	auto p = samples(text);
	REQUIRE(value(p, "frameproxy_connections_accepted_total{shard=\"0\",listener=\"a\\\"b\\\\c\\nd\"}") == "5");
	REQUIRE(value(p, "frameproxy_connections_accepted_total{shard=\"0\",listener=\"caf\xC3\xA9 \xEF\xBF\xBD!\"}") == "6");
	REQUIRE(value(p, "frameproxy_connections_closed_total{shard=\"0\",listener=\"a\\\"b\\\\c\\nd\",reason=\"quote\\\"back\\\\slash\\nline\"}") == "0");
	REQUIRE(value(p, "frameproxy_upstream_up{shard=\"0\",listener=\"caf\xC3\xA9 \xEF\xBF\xBD!\",upstream=\"h\\\"1\"}") == "1");
	REQUIRE(text.find('\xFF') == std::string::npos);
	promtool_check(text);
}

TEST_CASE("Prometheus output of a busy supervisor passes promtool",
	  "[metrics]")
{
	Metrics t(32);
	metrics_view v = make_view(4);

	for (uint32_t i = 0; i < 4; i++) {
		shard_slot *s = metrics_claim(&t.m, i, 1);
		set_runtime(s, 100 + i, i % 2 ? "uring" : "epoll");
		set_listener(s, 0, "api", 10 * (i + 1));
		set_listener(s, 1, "admin-ish", 3);
		set_upstream(s, 0, 0, "10.0.0.1:9000", 5, 1);
		set_upstream(s, 1, 0, "10.0.0.2:9000", 5, 0);
		set_upstream(s, 2, 1, "[::1]:9000", 1, 1);
		set_server_name(s, 0, 0, "db.internal", 10 + i, 2);
		shard_slot_set_state(s, SHARD_STATE_READY);
		if (i == 3)
			metrics_release(&t.m, s); // dead, waiting for its restart
	}
	shard_slot *retiring = metrics_claim(&t.m, 1, 0);
	set_listener(retiring, 0, "api", 1);
	shard_slot_set_state(retiring, SHARD_STATE_DRAINING);

	std::string text = t.prom(v);
	auto p = samples(text);
	REQUIRE(value(p, "frameproxy_shards") == "4");
	REQUIRE(value(p, "frameproxy_shards_retiring") == "1");
	REQUIRE(value(p, "frameproxy_start_time_seconds") == "1700000000.123456789");
	REQUIRE(value(p, "frameproxy_connections_accepted_total{shard=\"1\",listener=\"api\"}") == "21");
	REQUIRE(value(p, "frameproxy_connections_accepted_total{shard=\"3\",listener=\"api\"}") == "40");
	REQUIRE(value(p, "frameproxy_shard_up{shard=\"3\"}") == "0");
	REQUIRE(value(p, "frameproxy_shard_info{shard=\"1\",poller=\"uring\"}") == "1");
	REQUIRE(value(p, "frameproxy_poller_submits_total{shard=\"2\"}") == "107");
	REQUIRE(value(p, "frameproxy_log_lines_dropped_total{shard=\"2\"}") == "10");
	REQUIRE(text.find("# TYPE frameproxy_shard_cpu_seconds_total counter\n") != std::string::npos);
	promtool_check(text);

	// And the text of a supervisor with nothing running yet.
	Metrics empty;
	promtool_check(empty.prom(make_view(2)));
}

TEST_CASE("JSON stats: shape, per-shard sums, escaping", "[metrics]")
{
	Metrics t;
	metrics_view v = make_view(3);

	shard_slot *s = metrics_claim(&t.m, 0, 4);
	s->pid = 555;
	set_runtime(s, 2000, "epoll");
	set_listener(s, 0, "api", 10);
	set_listener(s, 1, "q\"\\\n\t\x01", 20);
	set_upstream(s, 0, 1, "10.0.0.9:1", 8, 1);
	shard_slot_set_state(s, SHARD_STATE_READY);
	shard_slot *starting = metrics_claim(&t.m, 2, 4);
	starting->pid = 777;

	Json j = t.json(v);
	REQUIRE(j["pid"].u64() == 4242);
	REQUIRE(j["uptime_s"].num() == Approx(5.5));
	REQUIRE(j["started_unix_s"].text == "1700000000.123456789");
	REQUIRE(j["reloads"].u64() == 2);
	REQUIRE(j["restarts"].u64() == 1);
	REQUIRE(j["shards_configured"].u64() == 3);
	REQUIRE(j["shards"].arr.size() == 3);

	const Json &s0 = j["shards"][0];
	REQUIRE(s0["shard"].u64() == 0);
	REQUIRE(s0["pid"].u64() == 555);
	REQUIRE(s0["state"].str() == "ready");
	REQUIRE(s0["generation"].u64() == 4);
	REQUIRE(s0["poller"].str() == "epoll");
	REQUIRE(s0["accepted"].u64() == 30);
	REQUIRE(s0["connections_active"].u64() == 3);
	REQUIRE(s0["frames_in"].u64() == 60);
	REQUIRE(s0["frames_out"].u64() == 90);
	REQUIRE(s0["bytes_in"].u64() == 6000);
	REQUIRE(s0["bytes_out"].u64() == 9000);
	REQUIRE(s0["cpu_user_s"].num() == Approx(2.0));
	REQUIRE(s0["cpu_system_s"].num() == Approx(1.0));
	REQUIRE(s0["rss_bytes"].u64() == 1048576);
	REQUIRE(s0["sched_rounds"].u64() == 2000);
	REQUIRE(s0["poller_syscalls"].u64() == 2003);
	REQUIRE(s0["listeners"].arr.size() == 2);
	REQUIRE(s0["upstreams"].arr.size() == 1);

	// Listeners are sorted by name: "api" < "q...".
	const Json &l1 = s0["listeners"][1];
	REQUIRE(l1["name"].str() == "q\"\\\n\t\x01");
	REQUIRE(l1["accepted"].u64() == 20);
	REQUIRE(l1["closed"]["client_eof"].u64() == 10);
	REQUIRE(l1["closed"]["timeout"].u64() == 1);
	REQUIRE(l1["closed"].obj.size() == 3);
	const Json &u0 = s0["upstreams"][0];
	REQUIRE(u0["listener"].str() == "q\"\\\n\t\x01");
	REQUIRE(u0["name"].str() == "10.0.0.9:1");
	REQUIRE(u0["up"].u64() == 1);
	REQUIRE(u0["connects"].u64() == 8);

	const Json &s1 = j["shards"][1];
	REQUIRE(s1["state"].str() == "down");
	REQUIRE(s1["pid"].u64() == 0);
	REQUIRE(s1["poller"].str() == "");
	REQUIRE(s1["processes"].arr.empty());
	REQUIRE(s1["listeners"].arr.empty());

	const Json &s2 = j["shards"][2];
	REQUIRE(s2["state"].str() == "starting");
	REQUIRE(s2["pid"].u64() == 777);
	REQUIRE(s2["processes"][0]["state"].str() == "starting");
}

TEST_CASE("renderers append to what the buffer holds", "[metrics]")
{
	Metrics t;
	metrics_view v = make_view(1);
	strbuf sb;
	strbuf_init(&sb);
	REQUIRE(strbuf_puts(&sb, "prefix|") == 0);
	REQUIRE(metrics_render_json(&t.m, &v, &sb) == 0);
	std::string out(sb.data, sb.len);
	strbuf_free(&sb);
	REQUIRE(out.rfind("prefix|{\"pid\":4242,", 0) == 0);
	REQUIRE(out.back() == '}');
}

TEST_CASE("between two processes of one generation the READY one is shown",
	  "[metrics]")
{
	for (int ready_first = 0; ready_first < 2; ready_first++) {
		Metrics t;
		metrics_view v = make_view(1);
		shard_slot *a = metrics_claim(&t.m, 0, 3);
		shard_slot *b = metrics_claim(&t.m, 0, 3);
		shard_slot *ready = ready_first ? a : b;
		shard_slot *other = ready_first ? b : a;
		ready->pid = 10;
		other->pid = 20;
		shard_slot_set_state(ready, SHARD_STATE_READY);
		shard_slot_set_state(other, SHARD_STATE_DRAINING);
		Json j = t.json(v);
		INFO("ready_first " << ready_first);
		REQUIRE(j["shards"][0]["pid"].u64() == 10);
		REQUIRE(j["shards"][0]["state"].str() == "ready");
	}
}

namespace {

// A scenario that uses every family and label: several shards and
// listeners, a retired process, a reload in progress, a STARTING slot,
// names that need escaping.
void golden_scenario(Metrics &t)
{
	for (uint32_t i = 0; i < 3; i++) {
		shard_slot *s = metrics_claim(&t.m, i, 2);
		s->pid = (int32_t)(100 + i);
		set_runtime(s, 1000 * (i + 1), i % 2 ? "uring" : "epoll");
		set_listener(s, 0, "api", 150 * (i + 1));
		set_listener(s, 1, "q\"\\\n\t\x01 caf\xC3\xA9 \xFF", 107);
		set_upstream(s, 0, 0, "10.0.0.1:9000", 15 + i, 1);
		set_upstream(s, 1, 0, "10.0.0.2:9000", 33, 0);
		set_upstream(s, 2, 1, "[::1]:9000", 1, 1);
		set_server_name(s, 0, 0, "db.internal", 10 + i, 2);
		shard_slot_set_state(s, SHARD_STATE_READY);
		if (i == 2)
			metrics_release(&t.m, s); // dead, waiting for its restart
	}
	shard_slot *old_s = metrics_claim(&t.m, 1, 1);
	old_s->pid = 90;
	set_runtime(old_s, 77, "epoll");
	set_listener(old_s, 0, "api", 4);
	set_upstream(old_s, 0, 0, "10.0.0.1:9000", 2, 1);
	set_upstream(old_s, 1, 0, "gone:1", 9, 1);
	set_server_name(old_s, 0, 0, "db.internal", 5, 7);
	set_server_name(old_s, 1, 0, "_q._tcp.gone srv", 1, 0);
	shard_slot_set_state(old_s, SHARD_STATE_RETIRING);
	shard_slot *starting = metrics_claim(&t.m, 3, 2);
	starting->pid = 103;
}

std::string golden_path(const char *name)
{
	return std::string(SHARD_TEST_GOLDEN) + "/" + name;
}

std::string read_file(const std::string &path)
{
	FILE *f = fopen(path.c_str(), "rb");
	INFO(path);
	REQUIRE(f != nullptr);
	std::string out;
	char buf[4096];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		out.append(buf, n);
	fclose(f);
	return out;
}

// SHARD_TEST_WRITE_GOLDEN=1 writes the files instead (after a deliberate
// change of the output).
void check_golden(const char *name, const std::string &text)
{
	const char *write = getenv("SHARD_TEST_WRITE_GOLDEN");
	if (write && *write == '1') {
		FILE *f = fopen(golden_path(name).c_str(), "wb");
		REQUIRE(f != nullptr);
		REQUIRE(fwrite(text.data(), 1, text.size(), f) == text.size());
		fclose(f);
		return;
	}
	std::string want = read_file(golden_path(name));
	INFO(name << ": the output is no longer byte for byte the golden file");
	REQUIRE(text == want);
}

} // namespace

TEST_CASE("Prometheus and JSON output match the golden files byte for byte",
	  "[metrics]")
{
	Metrics t;
	metrics_view v = make_view(4);
	const char *const reasons[] = { "client_eof", "upstream_eof",
					"quote\"d" };
	v.app = test_metrics(reasons, 3);
	golden_scenario(t);

	strbuf sb;
	strbuf_init(&sb);
	REQUIRE(metrics_render_prometheus(&t.m, &v, &sb) == 0);
	std::string prom(sb.data, sb.len);
	strbuf_reset(&sb);
	REQUIRE(metrics_render_json(&t.m, &v, &sb) == 0);
	std::string json(sb.data, sb.len);
	strbuf_free(&sb);

	check_golden("metrics.prom", prom);
	check_golden("stats.json", json);
	samples(prom); // and well-formed
	promtool_check(prom);
}

namespace {

shard_metric entry(const char *name, shard_metric_type type, uint32_t width)
{
	shard_metric f;
	memset(&f, 0, sizeof(f));
	f.name = name;
	f.help = "Help.";
	f.type = type;
	f.width = width;
	return f;
}

// shard_metrics_check on per-listener tables holding just `f`.
int check_one(const shard_metric &f, std::string *why = nullptr)
{
	shard_app_metrics app;
	memset(&app, 0, sizeof(app));
	app.listener.metrics = &f;
	app.listener.count = 1;
	char buf[160] = "";
	int rc = shard_metrics_check(&app, buf, sizeof(buf));
	if (why)
		*why = buf;
	return rc;
}

} // namespace

TEST_CASE("metric tables are checked before they are used", "[metrics]")
{
	char why[160];
	REQUIRE(shard_metrics_check(nullptr, why, sizeof(why)) == 0);
	REQUIRE(shard_metrics_check(test_metrics(g_reasons, 3), why, sizeof(why)) == 0);

	REQUIRE(check_one(entry("ok_total", SHARD_COUNTER, 1)) == 0);
	REQUIRE(check_one(entry("ok", SHARD_GAUGE, 1)) == 0);
	std::string msg;
	REQUIRE(check_one(entry("plain", SHARD_COUNTER, 1), &msg) == -EINVAL);
	REQUIRE(msg == "per-listener metric plain is a counter whose name does not end in _total");
	REQUIRE(check_one(entry("level_total", SHARD_GAUGE, 1)) == -EINVAL);
	REQUIRE(check_one(entry("none_total", SHARD_COUNTER, 0)) == -EINVAL);
	REQUIRE(check_one(entry("two_total", SHARD_COUNTER, 2), &msg) == -EINVAL);
	REQUIRE(msg == "per-listener metric two_total has several values but no label");

	shard_metric newest = entry("n_total", SHARD_COUNTER, 1);
	newest.merge = SHARD_MERGE_NEWEST;
	REQUIRE(check_one(newest) == -EINVAL);
	newest.type = SHARD_GAUGE;
	newest.name = "n";
	REQUIRE(check_one(newest) == 0);

	const char *const keys[] = { "a" };
	shard_metric each = entry("e", SHARD_GAUGE, 1);
	each.json_each = keys;
	REQUIRE(check_one(each) == -EINVAL);
	each.label = "k";
	REQUIRE(check_one(each) == 0);
	shard_metric nameless = entry(nullptr, SHARD_GAUGE, 1);
	REQUIRE(check_one(nameless) == -EINVAL);

	// More values than a slot has room for.
	shard_metric wide = entry("wide_total", SHARD_COUNTER, SHARD_MAX_LISTENER_VALUES + 1);
	wide.label = "k";
	REQUIRE(check_one(wide, &msg) == -EINVAL);
	REQUIRE(msg == "per-listener metrics need " +
		std::to_string(SHARD_MAX_LISTENER_VALUES + 1) +
		" values, a slot has room for " +
		std::to_string(SHARD_MAX_LISTENER_VALUES));
	wide.width = SHARD_MAX_LISTENER_VALUES;
	REQUIRE(check_one(wide) == 0);

	// A render refuses tables that do not fit.
	shard_app_metrics app;
	memset(&app, 0, sizeof(app));
	wide.width = SHARD_MAX_LISTENER_VALUES + 1;
	app.listener.metrics = &wide;
	app.listener.count = 1;
	Metrics t;
	metrics_view v = make_view(1);
	v.app = &app;
	strbuf sb;
	strbuf_init(&sb);
	REQUIRE(metrics_render_prometheus(&t.m, &v, &sb) == -EINVAL);
	REQUIRE(metrics_render_json(&t.m, &v, &sb) == -EINVAL);
	strbuf_free(&sb);
}

TEST_CASE("families: /stats in table order, Prometheus plain counters first",
	  "[metrics]")
{
	const shard_app_metrics *app = test_metrics(g_reasons, 3);
	metrics_family f[METRICS_MAX_FAMILIES];

	auto names = [&](metrics_scope scope, metrics_order order) {
		size_t n = metrics_families(app, scope, order, f);
		std::string out;
		for (size_t k = 0; k < n; k++)
			out += std::string(k ? " " : "") + f[k].metric->name +
			       "@" + std::to_string(f[k].at);
		return out;
	};
	REQUIRE(names(METRICS_LISTENER, METRICS_TABLE_ORDER) ==
		"connections_active@0 connections_accepted_total@1 "
		"accept_errors_total@2 frames_total@3 bytes_total@5 "
		"connections_closed_total@7");
	REQUIRE(names(METRICS_LISTENER, METRICS_PROM_ORDER) ==
		"connections_accepted_total@1 accept_errors_total@2 "
		"connections_active@0 frames_total@3 bytes_total@5 "
		"connections_closed_total@7");
	REQUIRE(names(METRICS_UPSTREAM, METRICS_PROM_ORDER) ==
		"upstream_connects_total@1 upstream_connect_failures_total@2 "
		"upstream_ejections_total@3 upstream_up@0 "
		"request_duration_seconds@4");
	// Per shard: shard/'s runtime table, then the application's, whose
	// values start at METRICS_APP_BASE.
	std::string shard = names(METRICS_SHARD, METRICS_PROM_ORDER);
	INFO(shard);
	REQUIRE(shard.rfind("sched_rounds_total@" + std::to_string(RUNTIME_ROUNDS) + " ", 0) == 0);
	REQUIRE(shard.find("poller_recv_nobufs_total@" + std::to_string(RUNTIME_RECV_NOBUFS) +
			   " log_lines_dropped_total@" + std::to_string(METRICS_APP_BASE) +
			   " shard_cpu_seconds_total@0 ") != std::string::npos);
	REQUIRE(names(METRICS_SHARD, METRICS_TABLE_ORDER).rfind(
		"shard_cpu_seconds_total@0 shard_resident_bytes@2 ", 0) == 0);
	// Without application tables only shard/'s own.
	REQUIRE(metrics_families(nullptr, METRICS_LISTENER, METRICS_PROM_ORDER, f) == 0);
	REQUIRE(metrics_families(nullptr, METRICS_SHARD, METRICS_TABLE_ORDER, f) ==
		runtime_metrics.count);
}

TEST_CASE("a label value without a name is the label and its index",
	  "[metrics]")
{
	Metrics t;
	metrics_view v = make_view(1);
	const char *const reasons[] = { "client_eof", nullptr };
	v.app = test_metrics(reasons, 2);
	shard_slot *s = metrics_claim(&t.m, 0, 1);
	set_listener(s, 0, "api", 10);
	shard_slot_set_state(s, SHARD_STATE_READY);
	auto p = samples(t.prom(v));
	REQUIRE(value(p, "frameproxy_connections_closed_total{shard=\"0\",listener=\"api\",reason=\"client_eof\"}") == "5");
	REQUIRE(value(p, "frameproxy_connections_closed_total{shard=\"0\",listener=\"api\",reason=\"reason1\"}") == "0");
	Json j = t.json(v);
	REQUIRE(j["shards"][0]["listeners"][0]["closed"]["reason1"].u64() == 0);

	v.app = test_metrics(nullptr, 1);
	p = samples(t.prom(v));
	REQUIRE(value(p, "frameproxy_connections_closed_total{shard=\"0\",listener=\"api\",reason=\"reason0\"}") == "5");
	// One value, still labelled, still an object in /stats.
	j = t.json(v);
	REQUIRE(j["shards"][0]["listeners"][0]["closed"]["reason0"].u64() == 5);
}

TEST_CASE("without application tables only shard/'s own families are shown",
	  "[metrics]")
{
	Metrics t;
	metrics_view v = make_view(1);
	v.app = nullptr;
	shard_slot *s = metrics_claim(&t.m, 0, 1);
	set_runtime(s, 10, "epoll");
	set_listener(s, 0, "api", 10);
	shard_slot_set_state(s, SHARD_STATE_READY);
	std::string text = t.prom(v);
	auto p = samples(text);
	REQUIRE(value(p, "frameproxy_sched_rounds_total{shard=\"0\"}") == "10");
	REQUIRE(text.find("listener=") == std::string::npos);
	REQUIRE(text.find("log_lines_dropped") == std::string::npos);
	promtool_check(text);
	Json j = t.json(v);
	REQUIRE(j["shards"][0]["listeners"][0]["name"].str() == "api");
	REQUIRE(j["shards"][0]["listeners"][0].obj.size() == 1);
}

TEST_CASE("the Markdown tables list every family /metrics has, with its type",
	  "[metrics]")
{
	Metrics t;
	metrics_view v = make_view(4);
	const char *const reasons[] = { "client_eof", "upstream_eof", "x|y" };
	v.app = test_metrics(reasons, 3);
	golden_scenario(t);
	std::string prom = t.prom(v);

	// "# TYPE frameproxy_name type" of /metrics.
	std::map<std::string, std::string> served;
	std::istringstream in(prom);
	std::string line;
	while (std::getline(in, line)) {
		if (line.rfind("# TYPE ", 0) != 0)
			continue;
		size_t sp = line.find(' ', 7);
		served[line.substr(7, sp - 7)] = line.substr(sp + 1);
	}

	char *text = nullptr;
	size_t len = 0;
	FILE *mem = open_memstream(&text, &len);
	REQUIRE(mem != nullptr);
	REQUIRE(shard_metrics_markdown(v.app, mem) == 0);
	fclose(mem);
	std::string md(text, len);
	free(text);

	// "| `frameproxy_name` | type |" rows of the tables.
	std::map<std::string, std::string> listed;
	std::istringstream rows(md);
	while (std::getline(rows, line)) {
		if (line.rfind("| `frameproxy_", 0) != 0)
			continue;
		size_t end = line.find('`', 3);
		std::string name = line.substr(3, end - 3);
		size_t type = line.find("| ", end) + 2;
		std::string kind = line.substr(type, line.find(" |", type) - type);
		REQUIRE(listed.count(name) == 0);
		listed[name] = kind.rfind("gauge", 0) == 0 ? "gauge" : kind;
	}
	REQUIRE(!served.empty());
	REQUIRE(listed == served);
	// Label values are listed, '|' escaped so the row stays whole.
	REQUIRE(md.find("`reason`: `client_eof`, `upstream_eof`, `x\\|y`") != std::string::npos);
	REQUIRE(md.find("| `frameproxy_upstream_up` | gauge, newest |") != std::string::npos);
	REQUIRE(md.find("`closed.<reason>`") != std::string::npos);
	// A histogram's row: its type and its bounds as le values.
	REQUIRE(md.find("| `frameproxy_request_duration_seconds` | histogram | "
			"`le`: `0.001`, `0.01`, `1.5`, `+Inf` | `latency` |") !=
		std::string::npos);

	// Tables that do not fit are refused, not half written.
	shard_metric wide = entry("wide_total", SHARD_COUNTER, SHARD_MAX_LISTENER_VALUES + 1);
	wide.label = "k";
	shard_app_metrics bad;
	memset(&bad, 0, sizeof(bad));
	bad.listener.metrics = &wide;
	bad.listener.count = 1;
	mem = open_memstream(&text, &len);
	REQUIRE(shard_metrics_markdown(&bad, mem) == -EINVAL);
	fclose(mem);
	REQUIRE(len == 0);
	free(text);
}

TEST_CASE("histogram observations land in the bucket of the first bound "
	  "not below them", "[metrics]")
{
	uint64_t v[SHARD_HISTOGRAM_WIDTH(TEST_LATENCY_BOUNDS)] = {0};
	const uint64_t ms = 1000000;
	const uint64_t seen[] = { 0, ms, ms + 1, 10 * ms, 1500 * ms,
				  1500 * ms + 1, 60000 * ms };
	uint64_t sum = 0;

	for (uint64_t x : seen) {
		shard_histogram_observe(v, test_latency_bounds,
					TEST_LATENCY_BOUNDS, x);
		sum += x;
	}
	REQUIRE(v[0] == 2);   // 0 and exactly 1 ms
	REQUIRE(v[1] == 2);   // just above 1 ms, exactly 10 ms
	REQUIRE(v[2] == 1);   // exactly 1.5 s
	REQUIRE(v[3] == 2);   // above the last bound
	REQUIRE(v[4] == sum);
	const shard_app_metrics *app = test_metrics(g_reasons, 3);
	const shard_metric *f = &app->upstream.metrics[4];
	REQUIRE(f->type == SHARD_HISTOGRAM);
	REQUIRE(metrics_histogram_count(f, v) == 7);

	// Bounds as text: exact seconds without trailing zeros, or integers.
	strbuf sb;
	strbuf_init(&sb);
	for (uint32_t k = 0; k < TEST_LATENCY_BOUNDS; k++) {
		metrics_histogram_bound(&sb, f, k);
		strbuf_puts(&sb, " ");
	}
	const uint64_t odd[] = { 50000, 1000000000, 10000000000, 7, 123456789 };
	shard_metric g = *f;
	g.bounds = odd;
	g.bound_count = 5;
	for (uint32_t k = 0; k < 5; k++) {
		metrics_histogram_bound(&sb, &g, k);
		strbuf_puts(&sb, " ");
	}
	g.unit = SHARD_UNIT_NONE;
	metrics_histogram_bound(&sb, &g, 0);
	REQUIRE(std::string(sb.data, sb.len) ==
		"0.001 0.01 1.5 0.00005 1 10 0.000000007 0.123456789 50000");
	strbuf_free(&sb);
}

TEST_CASE("a histogram is a Prometheus histogram and a /stats object, "
	  "and adds up across a restart", "[metrics]")
{
	Metrics t;
	metrics_view v = make_view(1);
	const uint64_t ms = 1000000;

	auto observe = [&](shard_slot *s, uint64_t x) {
		shard_histogram_observe(s->upstreams[0].values + T_LATENCY,
					test_latency_bounds,
					TEST_LATENCY_BOUNDS, x);
	};
	auto start = [&](uint32_t generation) {
		shard_slot *s = metrics_claim(&t.m, 0, generation);
		REQUIRE(s != nullptr);
		set_listener(s, 0, "api", 10);
		shard_slot_name(s->upstreams[0].name, "10.0.0.1:9000");
		s->upstreams[0].listener = 0;
		s->upstream_count = 1;
		shard_slot_set_state(s, SHARD_STATE_READY);
		return s;
	};
	shard_slot *first = start(1);
	observe(first, ms / 2);
	observe(first, 5 * ms);
	observe(first, 3000 * ms);
	metrics_release(&t.m, first);   // died; its counts are retired
	shard_slot *second = start(2);
	observe(second, ms / 4);
	observe(second, 1500 * ms);

	const std::string series = "{shard=\"0\",listener=\"api\","
				   "upstream=\"10.0.0.1:9000\"";
	const std::string fam = "frameproxy_request_duration_seconds";
	std::string text = t.prom(v);
	auto p = samples(text);
	REQUIRE(text.find("# TYPE " + fam + " histogram\n") != std::string::npos);
	REQUIRE(value(p, fam + "_bucket" + series + ",le=\"0.001\"}") == "2");
	REQUIRE(value(p, fam + "_bucket" + series + ",le=\"0.01\"}") == "3");
	REQUIRE(value(p, fam + "_bucket" + series + ",le=\"1.5\"}") == "4");
	REQUIRE(value(p, fam + "_bucket" + series + ",le=\"+Inf\"}") == "5");
	REQUIRE(value(p, fam + "_count" + series + "}") == "5");
	REQUIRE(value(p, fam + "_sum" + series + "}") == "4.505750000");
	// The buckets come in increasing le, +Inf last.
	size_t a = text.find(fam + "_bucket" + series + ",le=\"0.001\"}");
	size_t b = text.find(fam + "_bucket" + series + ",le=\"1.5\"}");
	size_t c = text.find(fam + "_bucket" + series + ",le=\"+Inf\"}");
	size_t d = text.find(fam + "_sum" + series);
	REQUIRE((a < b && b < c && c < d));
	promtool_check(text);

	Json j = t.json(v);
	const Json &h = j["shards"][0]["upstreams"][0]["latency"];
	REQUIRE(h["count"].u64() == 5);
	REQUIRE(h["sum"].num() == Approx(4.50575));
	REQUIRE(h["buckets"].arr.size() == TEST_LATENCY_BOUNDS);
	REQUIRE(h["buckets"][0][0].num() == Approx(0.001));
	REQUIRE(h["buckets"][0][1].u64() == 2);
	REQUIRE(h["buckets"][1][1].u64() == 3);
	REQUIRE(h["buckets"][2][0].num() == Approx(1.5));
	REQUIRE(h["buckets"][2][1].u64() == 4);
	// Not summed into the shard's object with the listeners' flat ones.
	REQUIRE_FALSE(j["shards"][0].has("latency"));
}

TEST_CASE("histogram entries are checked", "[metrics]")
{
	const uint64_t good[] = { 1, 2, 3 };
	auto hist = [&](const uint64_t *bounds, uint32_t n) {
		shard_metric f = entry("h_seconds", SHARD_HISTOGRAM,
				       SHARD_HISTOGRAM_WIDTH(n));
		f.bounds = bounds;
		f.bound_count = n;
		return f;
	};
	std::string msg;
	REQUIRE(check_one(hist(good, 3)) == 0);
	REQUIRE(check_one(hist(good, 1)) == 0);

	const uint64_t unsorted[] = { 1, 3, 2 };
	REQUIRE(check_one(hist(unsorted, 3), &msg) == -EINVAL);
	REQUIRE(msg == "per-listener metric h_seconds is a histogram whose bounds do not increase");
	const uint64_t twice[] = { 1, 2, 2 };
	REQUIRE(check_one(hist(twice, 3)) == -EINVAL);
	REQUIRE(check_one(hist(nullptr, 3), &msg) == -EINVAL);
	REQUIRE(msg == "per-listener metric h_seconds is a histogram without bounds");
	REQUIRE(check_one(hist(good, 0)) == -EINVAL);

	uint64_t many[SHARD_HISTOGRAM_MAX_BOUNDS + 1];
	for (uint32_t k = 0; k <= SHARD_HISTOGRAM_MAX_BOUNDS; k++)
		many[k] = k + 1;
	REQUIRE(check_one(hist(many, SHARD_HISTOGRAM_MAX_BOUNDS)) == 0);
	REQUIRE(check_one(hist(many, SHARD_HISTOGRAM_MAX_BOUNDS + 1), &msg) == -EINVAL);
	REQUIRE(msg == "per-listener metric h_seconds is a histogram with too many bounds");

	shard_metric f = hist(good, 3);
	f.width = 4;
	REQUIRE(check_one(f, &msg) == -EINVAL);
	REQUIRE(msg == "per-listener metric h_seconds is a histogram whose width is not its bounds + 2");
	f = hist(good, 3);
	f.label = "k";
	REQUIRE(check_one(f) == -EINVAL);
	f = hist(good, 3);
	f.merge = SHARD_MERGE_NEWEST;
	REQUIRE(check_one(f) == -EINVAL);
	for (const char *name : { "h_total", "h_bucket", "h_sum", "h_count" }) {
		f = hist(good, 3);
		f.name = name;
		INFO(name);
		REQUIRE(check_one(f) == -EINVAL);
	}
	// Bounds belong to histograms only.
	shard_metric counter = entry("c_total", SHARD_COUNTER, 1);
	counter.bounds = good;
	counter.bound_count = 3;
	REQUIRE(check_one(counter, &msg) == -EINVAL);
	REQUIRE(msg == "per-listener metric c_total has bounds but is not a histogram");

	// Too wide for the slot: the room check counts a histogram's values.
	shard_app_metrics app;
	memset(&app, 0, sizeof(app));
	shard_metric wide[2] = { hist(many, SHARD_HISTOGRAM_MAX_BOUNDS),
				 hist(many, SHARD_HISTOGRAM_MAX_BOUNDS) };
	wide[1].name = "h2_seconds";
	app.upstream.metrics = wide;
	app.upstream.count = 2;
	char why[160];
	REQUIRE(shard_metrics_check(&app, why, sizeof(why)) == -EINVAL);
	REQUIRE(std::string(why).find("per-upstream metrics need 64 values") == 0);
}
