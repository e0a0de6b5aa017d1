// frametop's sample, rates, table and HTTP parsing (tools/frametop/stats.h,
// tools/frametop/http.h): pure functions, no sockets.
#include <catch2/catch.hpp>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "tools/frametop/http.h"
#include "tools/frametop/stats.h"
#include "tools/frametop/table.h"

namespace {

struct ShardSpec {
	int pid;
	unsigned long long accepted, frames, bytes;
	double cpu_user, cpu_system;
	const char *state;
};

// A /stats document in the shape of shard/metrics.h, trimmed to what
// frametop reads plus a few fields it must skip.
std::string stats_json(const std::vector<ShardSpec> &shards, double uptime)
{
	std::string s = "{\"pid\":100,\"started_unix_s\":1796074283.2329342,"
			"\"uptime_s\":" + std::to_string(uptime) +
			",\"shards_configured\":" +
			std::to_string(shards.size()) +
			",\"reloads\":1,\"restarts\":2,\"retiring\":0,"
			"\"shards\":[";
	for (size_t i = 0; i < shards.size(); i++) {
		const ShardSpec &sh = shards[i];
		char buf[1024];
		snprintf(buf, sizeof(buf),
			 "%s{\"shard\":%zu,\"pid\":%d,\"state\":\"%s\","
			 "\"generation\":0,\"poller\":\"epoll\","
			 "\"processes\":[{\"pid\":%d,\"state\":\"ready\","
			 "\"generation\":0}],\"connections_active\":3,"
			 "\"accepted\":%llu,\"accept_errors\":0,"
			 "\"frames_in\":%llu,\"frames_out\":%llu,"
			 "\"bytes_in\":%llu,\"bytes_out\":%llu,"
			 "\"cpu_user_s\":%.6f,\"cpu_system_s\":%.6f,"
			 "\"rss_bytes\":3145728,\"runq_length\":1,"
			 "\"coroutines\":2,\"listeners\":[],\"upstreams\":[]}",
			 i ? "," : "", i, sh.pid, sh.state, sh.pid, sh.accepted,
			 sh.frames, sh.frames, sh.bytes, sh.bytes, sh.cpu_user,
			 sh.cpu_system);
		s += buf;
	}
	return s + "]}";
}

struct Sample {
	stats_sample s;
	int err;
	char why[200] = "";
	Sample(const std::string &json, int64_t mono_ns)
	{
		err = stats_sample_parse(json.data(), json.size(), &s, why,
					 sizeof(why));
		s.mono_ns = mono_ns;
	}
	~Sample() { stats_sample_free(&s); }
};

std::string render(const stats_sample *prev, const stats_sample *cur)
{
	char *text = nullptr;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	REQUIRE(f);
	CHECK(table_render(f, prev, cur, "127.0.0.1:9100", "\n") == 0);
	fclose(f);
	std::string out(text, len);
	free(text);
	return out;
}

std::vector<std::string> lines_of(const std::string &text)
{
	std::vector<std::string> lines;
	size_t at = 0, nl;
	while ((nl = text.find('\n', at)) != std::string::npos) {
		lines.push_back(text.substr(at, nl - at));
		at = nl + 1;
	}
	return lines;
}

const int64_t SEC = 1000000000;

} // namespace

TEST_CASE("frametop rates: deltas over the interval", "[frametop][rates]")
{
	CHECK(stats_rate(100, 300, 2.0) == Approx(100));
	CHECK(stats_rate(0, 0, 1.0) == 0);
	CHECK(stats_rate(5, 5, 1.0) == 0);
	CHECK(stats_rate(500, 100, 1.0) == 0);         // went backwards
	CHECK(stats_rate(UINT64_MAX, 0, 1.0) == 0);
	CHECK(stats_rate(0, 10, 0.0) == 0);            // no time passed
	CHECK(stats_rate(0, 10, -1.0) == 0);
	CHECK(stats_rate(0, 1000, 0.2) == Approx(5000));
	CHECK(stats_rate(1ull << 60, (1ull << 60) + 10, 1.0) == Approx(10));

	CHECK(stats_cpu_pct(1.0, 1.5, 1.0) == Approx(50));
	CHECK(stats_cpu_pct(1.0, 3.0, 1.0) == Approx(200));   // two cores' worth
	CHECK(stats_cpu_pct(2.0, 1.0, 1.0) == 0);             // went backwards
	CHECK(stats_cpu_pct(0.0, 1.0, 0.0) == 0);
}

TEST_CASE("frametop rates: between two samples, per shard index",
	  "[frametop][rates]")
{
	Sample a(stats_json({{11, 10, 1000, 64000, 1.0, 1.0, "ready"},
			     {12, 5, 500, 32000, 0.5, 0.5, "ready"}},
			    10.0),
		 1 * SEC);
	// Shard 1 restarted and its counters started again from 0.
	Sample b(stats_json({{11, 20, 3000, 192000, 1.2, 1.3, "ready"},
			     {13, 1, 100, 6400, 0.1, 0.0, "ready"}},
			    12.0),
		 3 * SEC);
	REQUIRE(a.err == 0);
	REQUIRE(b.err == 0);

	stats_rates r0 = stats_shard_rates(&a.s, &b.s, &b.s.shards[0]);
	CHECK(r0.valid);
	CHECK(r0.accepted == Approx(5));
	CHECK(r0.frames_in == Approx(1000));
	CHECK(r0.frames_out == Approx(1000));
	CHECK(r0.bytes == Approx(128000));          // both directions
	CHECK(r0.cpu_pct == Approx(25));            // 0.5 s over 2 s

	stats_rates r1 = stats_shard_rates(&a.s, &b.s, &b.s.shards[1]);
	CHECK(r1.valid);
	CHECK(r1.accepted == 0);
	CHECK(r1.frames_in == 0);
	CHECK(r1.frames_out == 0);
	CHECK(r1.bytes == 0);
	CHECK(r1.cpu_pct == 0);

	// No previous sample, or no shard of that index in it: no rates.
	CHECK_FALSE(stats_shard_rates(nullptr, &b.s, &b.s.shards[0]).valid);
	Sample one(stats_json({{11, 0, 0, 0, 0, 0, "ready"}}, 1.0), 0);
	REQUIRE(one.err == 0);
	CHECK_FALSE(stats_shard_rates(&one.s, &b.s, &b.s.shards[1]).valid);
	CHECK(stats_find_shard(&b.s, 1) == &b.s.shards[1]);
	CHECK(stats_find_shard(&b.s, 7) == nullptr);
}

TEST_CASE("frametop rates: imbalance marks", "[frametop][rates]")
{
	auto rates = [](std::vector<double> frames, size_t invalid = 99) {
		std::vector<stats_rates> r(frames.size());
		for (size_t i = 0; i < frames.size(); i++) {
			r[i] = stats_rates{};
			r[i].valid = i != invalid;
			r[i].frames_in = frames[i] / 2;
			r[i].frames_out = frames[i] / 2;
		}
		return r;
	};
	long hi, lo;
	auto r = rates({100, 10});
	stats_imbalance(r.data(), r.size(), &hi, &lo);
	CHECK(hi == 0);
	CHECK(lo == 1);
	r = rates({30, 500, 200});
	stats_imbalance(r.data(), r.size(), &hi, &lo);
	CHECK(hi == 1);
	CHECK(lo == 0);
	r = rates({100, 0});                        // an idle shard
	stats_imbalance(r.data(), r.size(), &hi, &lo);
	CHECK(hi == 0);
	CHECK(lo == 1);
	r = rates({100, 60});                       // within 2x
	stats_imbalance(r.data(), r.size(), &hi, &lo);
	CHECK(hi == -1);
	CHECK(lo == -1);
	r = rates({100, 50});                       // exactly 2x: not more
	stats_imbalance(r.data(), r.size(), &hi, &lo);
	CHECK(hi == -1);
	r = rates({0.5, 0});                        // too little to matter
	stats_imbalance(r.data(), r.size(), &hi, &lo);
	CHECK(hi == -1);
	r = rates({0, 0});
	stats_imbalance(r.data(), r.size(), &hi, &lo);
	CHECK(hi == -1);
	r = rates({100});
	stats_imbalance(r.data(), r.size(), &hi, &lo);
	CHECK(hi == -1);
	r = rates({100, 10}, 1);                    // only one has rates
	stats_imbalance(r.data(), r.size(), &hi, &lo);
	CHECK(hi == -1);
	CHECK(lo == -1);
}

TEST_CASE("frametop sample: fields of /stats", "[frametop][sample]")
{
	Sample a(stats_json({{11, 10, 1000, 64000, 1.25, 0.5, "ready"},
			     {0, 0, 0, 0, 0, 0, "down"}},
			    65.5),
		 0);
	REQUIRE(a.err == 0);
	CHECK(a.s.pid == 100);
	CHECK(a.s.uptime_s == Approx(65.5));
	CHECK(a.s.reloads == 1);
	CHECK(a.s.restarts == 2);
	CHECK(a.s.shards_configured == 2);
	REQUIRE(a.s.shard_count == 2);
	const stats_shard &s = a.s.shards[0];
	CHECK(s.index == 0);
	CHECK(s.pid == 11);
	CHECK(std::string(s.state) == "ready");
	CHECK(std::string(s.poller) == "epoll");
	CHECK(s.active == 3);
	CHECK(s.accepted == 10);
	CHECK(s.frames_in == 1000);
	CHECK(s.bytes_out == 64000);
	CHECK(s.cpu_s == Approx(1.75));
	CHECK(s.rss_bytes == 3145728);
	CHECK(s.runq_length == 1);
	CHECK(std::string(a.s.shards[1].state) == "down");
}

TEST_CASE("frametop sample: what is not /stats is refused with a reason",
	  "[frametop][sample]")
{
	std::string good = stats_json({{11, 1, 2, 3, 0, 0, "ready"}}, 1.0);
	struct Case {
		std::string json;
		const char *why;
	};
	auto replace = [&](const std::string &from, const std::string &to) {
		std::string s = good;
		size_t at = s.find(from);
		REQUIRE(at != std::string::npos);
		return s.replace(at, from.size(), to);
	};
	const Case cases[] = {
		{"not json", "invalid JSON at byte 0"},
		{"[1,2]", "(root): not an object"},
		{good.substr(0, good.size() - 1), "invalid JSON"},
		{replace("\"uptime_s\"", "\"uptime\""), "field uptime_s: missing"},
		{replace("\"shards\":[", "\"shards\":7,\"x\":["),
		 "field shards: wrong type"},
		{replace("{\"shard\":0,\"pid\":11,", "{\"shard\":0,"),
		 "field shards[0].pid: missing"},
		{replace("\"frames_in\":2", "\"frames_in\":-2"),
		 "field shards[0].frames_in: not a non-negative integer"},
		{replace("\"frames_in\":2", "\"frames_in\":2.5"),
		 "field shards[0].frames_in: not a non-negative integer"},
		{replace("\"state\":\"ready\"", "\"state\":1"),
		 "field shards[0].state: wrong type"},
		{replace("\"pid\":100", "\"pid\":99999999999"),
		 "field pid: not a pid"},
		{replace("\"shards\":[", "\"shards\":[1,"),
		 "field shards[0]: not an object"},
	};
	for (const Case &c : cases) {
		INFO(c.json);
		Sample s(c.json, 0);
		CHECK(s.err == -EBADMSG);
		CHECK(std::string(s.why).find(c.why) != std::string::npos);
		CHECK(s.s.shards == nullptr);
	}
}

TEST_CASE("frametop sample: names cannot carry escape codes",
	  "[frametop][sample]")
{
	std::string json = stats_json({{11, 1, 2, 3, 0, 0, "\\u001b[2Jready"}},
				      1.0);
	Sample s(json, 0);
	REQUIRE(s.err == 0);
	CHECK(std::string(s.s.shards[0].state) == "?[2Jready");
	std::string longer = stats_json(
		{{11, 1, 2, 3, 0, 0, "a-very-long-state-name-indeed"}}, 1.0);
	Sample l(longer, 0);
	REQUIRE(l.err == 0);
	CHECK(strlen(l.s.shards[0].state) == STATS_TEXT_MAX - 1);
}

TEST_CASE("frametop table: units", "[frametop][table]")
{
	char b[32];
	CHECK(std::string(table_human_count(0, b, sizeof(b))) == "0");
	CHECK(std::string(table_human_count(-3, b, sizeof(b))) == "0");
	CHECK(std::string(table_human_count(2.5, b, sizeof(b))) == "2.5");
	CHECK(std::string(table_human_count(950, b, sizeof(b))) == "950");
	CHECK(std::string(table_human_count(1234, b, sizeof(b))) == "1.23k");
	CHECK(std::string(table_human_count(12345, b, sizeof(b))) == "12.3k");
	CHECK(std::string(table_human_count(4.56e6, b, sizeof(b))) == "4.56M");
	CHECK(std::string(table_human_count(7e9, b, sizeof(b))) == "7.00G");
	CHECK(std::string(table_human_bytes(0, b, sizeof(b))) == "0B");
	CHECK(std::string(table_human_bytes(512, b, sizeof(b))) == "512B");
	CHECK(std::string(table_human_bytes(1536, b, sizeof(b))) == "1.50KiB");
	CHECK(std::string(table_human_bytes(3 << 20, b, sizeof(b))) == "3.00MiB");
	CHECK(std::string(table_human_bytes(200.0 * (1 << 30), b, sizeof(b))) ==
	      "200GiB");
	CHECK(std::string(table_human_duration(3.24, b, sizeof(b))) == "3.2s");
	CHECK(std::string(table_human_duration(245, b, sizeof(b))) == "4m05s");
	CHECK(std::string(table_human_duration(7380, b, sizeof(b))) == "2h03m");
	CHECK(std::string(table_human_duration(273600, b, sizeof(b))) == "3d04h");
}

TEST_CASE("frametop table: first sample, then rates and marks",
	  "[frametop][table]")
{
	Sample a(stats_json({{11, 10, 1000, 64000, 1.0, 1.0, "ready"},
			     {12, 10, 1000, 64000, 1.0, 1.0, "ready"}},
			    10.0),
		 1 * SEC);
	Sample b(stats_json({{11, 20, 9000, 588288, 1.5, 1.0, "ready"},
			     {12, 10, 1100, 70400, 1.0, 1.0, "ready"}},
			    11.0),
		 2 * SEC);
	REQUIRE(a.err == 0);
	REQUIRE(b.err == 0);

	std::vector<std::string> first = lines_of(render(nullptr, &a.s));
	REQUIRE(first.size() == 5);
	CHECK(first[0].find("frameproxy 127.0.0.1:9100  pid 100  up 10.0s  "
			    "shards 2/2 ready  reloads 1  restarts 2") == 0);
	CHECK(first[1].find("SHARD") != std::string::npos);
	CHECK(first[2].find("ready") != std::string::npos);
	CHECK(first[2].find(" - ") != std::string::npos);  // no rates yet
	CHECK(first[4].find("  total") == 0);
	CHECK(first[0].find("busiest") == std::string::npos);

	std::vector<std::string> second = lines_of(render(&a.s, &b.s));
	REQUIRE(second.size() == 5);
	CHECK(second[0].find("[^ busiest, v idlest by frames/s]") !=
	      std::string::npos);
	CHECK(second[2][0] == '^');
	CHECK(second[2].find(" 8.00k ") != std::string::npos);
	CHECK(second[2].find(" 1.00MiB ") != std::string::npos);  // 512k in+out
	CHECK(second[2].find(" 50.0 ") != std::string::npos);     // CPU %
	CHECK(second[3][0] == 'v');
	CHECK(second[3].find(" 100 ") != std::string::npos);
	CHECK(second[4].find(" 8.10k ") != std::string::npos);    // total
	CHECK(second[4].find(" 6.00MiB ") != std::string::npos);  // RSS sum
	// Fixed widths: every row is as wide as the column names.
	for (size_t i = 2; i < second.size(); i++)
		CHECK(second[i].size() == second[1].size());
}

TEST_CASE("frametop http: parsing a response", "[frametop][http]")
{
	int status;
	const char *body;
	size_t len;
	std::string ok = "HTTP/1.1 200 OK\r\nContent-Type: application/json"
			 "\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
	REQUIRE(http_parse(ok.data(), ok.size(), &status, &body, &len) == 0);
	CHECK(status == 200);
	CHECK(std::string(body, len) == "{}");

	std::string lf = "HTTP/1.0 404 Not Found\ncontent-length:  3 \n\nnot";
	REQUIRE(http_parse(lf.data(), lf.size(), &status, &body, &len) == 0);
	CHECK(status == 404);
	CHECK(std::string(body, len) == "not");

	std::string no_len = "HTTP/1.0 200 OK\r\n\r\nabc";
	REQUIRE(http_parse(no_len.data(), no_len.size(), &status, &body,
			   &len) == 0);
	CHECK(len == 3);

	const char *bad[] = {
		"", "garbage", "HTTP/2 200 OK\r\n\r\n", "HTTP/1.1 20 OK\r\n\r\n",
		"HTTP/1.1 2000 OK\r\n\r\n", "HTTP/1.1 200 OK\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{}",   // cut short
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n{}",   // longer
		"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n{}",
		"HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n12",
	};
	for (const char *text : bad) {
		INFO(text);
		CHECK(http_parse(text, strlen(text), &status, &body, &len) ==
		      -EBADMSG);
	}
}

TEST_CASE("frametop http: error phrases", "[frametop][http]")
{
	char buf[128];
	http_reply reply = {};
	reply.status = 503;
	CHECK(std::string(http_strerror(-ECONNREFUSED, &reply, buf,
					sizeof(buf)))
		      .find("connection refused") == 0);
	CHECK(std::string(http_strerror(-EPROTO, &reply, buf, sizeof(buf))) ==
	      "HTTP status 503");
	CHECK(std::string(http_strerror(-ETIMEDOUT, &reply, buf,
					sizeof(buf))) ==
	      "no complete response within 2000 ms");
}

// --- the rpc view -----------------------------------------------------------

namespace {

// An upstream object as shard/ renders it with rpc mode's figures; bounds
// 1 ms, 10 ms, 100 ms.
std::string rpc_upstream(const char *listener, const char *name,
			 unsigned long long sent, unsigned inflight,
			 unsigned pool, std::vector<unsigned long long> cum,
			 unsigned long long count)
{
	char buf[1024];
	snprintf(buf, sizeof(buf),
		 "{\"listener\":\"%s\",\"name\":\"%s\",\"up\":1,\"connects\":2,"
		 "\"connect_failures\":0,\"ejections\":0,\"rpc_sent\":%llu,"
		 "\"rpc_received\":%llu,\"rpc_inflight\":%u,\"rpc_retries\":0,"
		 "\"rpc_unmatched\":0,\"rpc_pool_open\":%u,\"rpc_latency\":"
		 "{\"count\":%llu,\"sum\":1.5,\"buckets\":[[0.001,%llu],"
		 "[0.01,%llu],[0.1,%llu]]}}",
		 listener, name, sent, sent, inflight, pool, count, cum[0],
		 cum[1], cum[2]);
	return buf;
}

// A stream listener's upstream: the histogram is there (every upstream
// has the family) but empty, and nothing else of rpc.
std::string stream_upstream(const char *listener, const char *name)
{
	return std::string("{\"listener\":\"") + listener + "\",\"name\":\"" +
	       name + "\",\"up\":1,\"connects\":7,\"connect_failures\":0,"
	       "\"ejections\":0,\"rpc_latency\":{\"count\":0,\"sum\":0.000000000,"
	       "\"buckets\":[[0.001,0],[0.01,0],[0.1,0]]}}";
}

// stats_json with shard i's "upstreams" holding ups[i].
std::string with_upstreams(std::string json,
			   const std::vector<std::vector<std::string>> &ups)
{
	size_t at = 0;
	for (const auto &list : ups) {
		const std::string empty = "\"upstreams\":[]";
		at = json.find(empty, at);
		REQUIRE(at != std::string::npos);
		std::string body;
		for (size_t k = 0; k < list.size(); k++)
			body += (k ? "," : "") + list[k];
		std::string full = "\"upstreams\":[" + body + "]";
		json.replace(at, empty.size(), full);
		at += full.size();
	}
	return json;
}

const std::vector<ShardSpec> TWO = {{11, 10, 1000, 64000, 1.0, 1.0, "ready"},
				    {12, 10, 1000, 64000, 1.0, 1.0, "ready"}};

std::string rpc_prev()
{
	return with_upstreams(stats_json(TWO, 10.0), {
		{rpc_upstream("api", "10.0.0.1:9000", 1000, 3, 2, {100, 150, 160}, 160),
		 rpc_upstream("api", "10.0.0.2:9000", 10, 0, 2, {5, 5, 5}, 5),
		 rpc_upstream("api", "10.0.0.4:9000", 7, 0, 2, {1, 1, 1}, 1),
		 stream_upstream("web", "10.0.0.3:80")},
		{rpc_upstream("api", "10.0.0.1:9000", 500, 0, 2, {50, 60, 60}, 60)}});
}

// Two seconds later: 10.0.0.1 took 3000 requests (2000 of them answered,
// in buckets 1000/800/200), 10.0.0.2 nothing, 10.0.0.4 three answers all
// above 100 ms.
std::string rpc_cur()
{
	return with_upstreams(stats_json(TWO, 12.0), {
		{rpc_upstream("api", "10.0.0.1:9000", 3000, 5, 2, {1100, 1950, 2160}, 2160),
		 rpc_upstream("api", "10.0.0.2:9000", 10, 0, 2, {5, 5, 5}, 5),
		 rpc_upstream("api", "10.0.0.4:9000", 10, 0, 2, {1, 1, 1}, 4),
		 stream_upstream("web", "10.0.0.3:80")},
		{rpc_upstream("api", "10.0.0.1:9000", 1500, 1, 2, {50, 60, 60}, 60)}});
}

} // namespace

TEST_CASE("frametop rpc: quantiles from histogram buckets",
	  "[frametop][rpc]")
{
	const double le[] = {0.001, 0.01, 0.1};
	double q;
	const uint64_t spread[] = {50, 95, 100};
	CHECK(stats_quantile(le, spread, 3, 100, 0.99, &q) == STATS_QUANTILE_VALUE);
	CHECK(q == Approx(0.01 + 0.09 * 4 / 5));     // 4 of 5 into (10, 100] ms
	CHECK(stats_quantile(le, spread, 3, 100, 0.5, &q) == STATS_QUANTILE_VALUE);
	CHECK(q == Approx(0.001));                   // the first bucket's top
	CHECK(stats_quantile(le, spread, 3, 100, 0.25, &q) == STATS_QUANTILE_VALUE);
	CHECK(q == Approx(0.0005));                  // from 0 up
	const uint64_t late[] = {0, 0, 10};
	CHECK(stats_quantile(le, late, 3, 10, 0.99, &q) == STATS_QUANTILE_VALUE);
	CHECK(q == Approx(0.01 + 0.09 * 9.9 / 10));  // empty buckets skipped
	const uint64_t slow[] = {10, 20, 30};
	CHECK(stats_quantile(le, slow, 3, 100, 0.99, &q) == STATS_QUANTILE_ABOVE);
	CHECK(q == Approx(0.1));                     // the last bound
	CHECK(stats_quantile(le, slow, 3, 0, 0.99, &q) == STATS_QUANTILE_NONE);
	CHECK(stats_quantile(le, slow, 0, 5, 0.99, &q) == STATS_QUANTILE_NONE);
}

TEST_CASE("frametop rpc: upstream objects of /stats", "[frametop][rpc]")
{
	Sample a(rpc_prev(), 0);
	INFO(a.why);
	REQUIRE(a.err == 0);
	REQUIRE(a.s.upstream_count == 5);
	const stats_upstream &u = a.s.upstreams[0];
	CHECK(u.shard == 0);
	CHECK(std::string(u.listener) == "api");
	CHECK(std::string(u.name) == "10.0.0.1:9000");
	CHECK(u.has_sent);
	CHECK(u.rpc_sent == 1000);
	CHECK(u.rpc_inflight == 3);
	CHECK(u.rpc_pool_open == 2);
	REQUIRE(u.latency.present);
	CHECK(u.latency.count == 160);
	CHECK(u.latency.sum == Approx(1.5));
	REQUIRE(u.latency.bucket_count == 3);
	CHECK(u.latency.le[1] == Approx(0.01));
	CHECK(u.latency.cumulative[2] == 160);
	const stats_upstream &web = a.s.upstreams[3];
	CHECK_FALSE(web.has_sent);
	CHECK(web.latency.present);
	CHECK(a.s.upstreams[4].shard == 1);

	// Without rpc figures at all (frameproxy before rpc mode): nothing.
	Sample plain(with_upstreams(stats_json(TWO, 1.0),
		{{"{\"listener\":\"api\",\"name\":\"x:1\",\"up\":1}"}, {}}), 0);
	REQUIRE(plain.err == 0);
	REQUIRE(plain.s.upstream_count == 1);
	CHECK_FALSE(plain.s.upstreams[0].has_sent);
	CHECK_FALSE(plain.s.upstreams[0].latency.present);

	std::string good = rpc_prev();
	auto replace = [&](const std::string &from, const std::string &to) {
		std::string s = good;
		size_t at = s.find(from);
		REQUIRE(at != std::string::npos);
		return s.replace(at, from.size(), to);
	};
	struct Case {
		std::string json;
		const char *why;
	};
	const Case cases[] = {
		{replace("[[0.001,100],[0.01,150]", "[[0.01,100],[0.001,150]"),
		 "shards[0].upstreams[0].rpc_latency: bounds do not increase"},
		{replace("[[0.001,100],[0.01,150]", "[[0.001,100],[0.01,90]"),
		 "shards[0].upstreams[0].rpc_latency: counts are not cumulative"},
		{replace("[0.1,160]]}", "[0.1,161]]}"),
		 "shards[0].upstreams[0].rpc_latency: counts are not cumulative"},
		{replace("[[0.001,100],", "[[0.001],"),
		 "shards[0].upstreams[0].rpc_latency: a bucket is not [le, count]"},
		{replace("\"rpc_latency\":{\"count\":160", "\"rpc_latency\":{\"count\":-1"),
		 "shards[0].upstreams[0].count: not a non-negative integer"},
		{replace("\"rpc_sent\":1000", "\"rpc_sent\":\"1000\""),
		 "shards[0].upstreams[0].rpc_sent: wrong type"},
		{replace("{\"listener\":\"api\",\"name\":\"10.0.0.1:9000\"",
			 "{\"name\":\"10.0.0.1:9000\""),
		 "shards[0].upstreams[0].listener: missing"},
		{replace("\"upstreams\":[{", "\"upstreams\":[7,{"),
		 "shards[0].upstreams[0]: not an object"},
		{replace("\"upstreams\":[{", "\"upstreams\":{\"x\":[{"),
		 "invalid JSON"},
	};
	for (const Case &c : cases) {
		INFO(c.json);
		Sample s(c.json, 0);
		CHECK(s.err == -EBADMSG);
		CHECK(std::string(s.why).find(c.why) != std::string::npos);
		CHECK(s.s.upstreams == nullptr);
	}
	// More buckets than frametop keeps.
	std::string many = "[[1,0]";
	for (int k = 2; k <= STATS_MAX_BUCKETS + 1; k++)
		many += ",[" + std::to_string(k) + ",0]";
	Sample wide(replace("[[0.001,100],[0.01,150],[0.1,160]]",
			    many + "]").c_str(), 0);
	CHECK(wide.err == -EBADMSG);
	CHECK(std::string(wide.why).find("too many buckets") != std::string::npos);
}

TEST_CASE("frametop rpc: per server over the shards and the interval",
	  "[frametop][rpc]")
{
	Sample a(rpc_prev(), 1 * SEC);
	Sample b(rpc_cur(), 3 * SEC);
	REQUIRE(a.err == 0);
	REQUIRE(b.err == 0);

	stats_rpc_row *rows;
	size_t n;
	REQUIRE(stats_rpc_rows(&a.s, &b.s, &rows, &n) == 0);
	REQUIRE(n == 3);                 // web's stream upstream is not one
	CHECK(std::string(rows[0].listener) == "api");
	CHECK(std::string(rows[0].name) == "10.0.0.1:9000");
	CHECK(rows[0].rates);
	CHECK(rows[0].requests == Approx(1500));  // (2000 + 1000) / 2 s
	CHECK(rows[0].inflight == 6);
	CHECK(rows[0].pool_open == 4);
	REQUIRE(rows[0].p99 == STATS_QUANTILE_VALUE);
	// 2000 answers, 1800 up to 10 ms: rank 1980 is 180 of 200 into (10, 100].
	CHECK(rows[0].p99_s == Approx(0.01 + 0.09 * 180 / 200));
	CHECK(std::string(rows[1].name) == "10.0.0.2:9000");
	CHECK(rows[1].requests == 0);
	CHECK(rows[1].p99 == STATS_QUANTILE_NONE);   // nothing answered
	CHECK(std::string(rows[2].name) == "10.0.0.4:9000");
	CHECK(rows[2].requests == Approx(1.5));
	CHECK(rows[2].p99 == STATS_QUANTILE_ABOVE);
	CHECK(rows[2].p99_s == Approx(0.1));
	free(rows);

	// The first sample: the servers, no rates.
	REQUIRE(stats_rpc_rows(nullptr, &a.s, &rows, &n) == 0);
	REQUIRE(n == 3);
	CHECK_FALSE(rows[0].rates);
	CHECK(rows[0].p99 == STATS_QUANTILE_NONE);
	CHECK(rows[0].inflight == 3);
	free(rows);

	// Counters that went backwards (a new supervisor): no negative rates
	// and no p99 from a histogram that shrank.
	REQUIRE(stats_rpc_rows(&b.s, &a.s, &rows, &n) == 0);
	REQUIRE(n == 3);
	CHECK(rows[0].requests == 0);
	CHECK(rows[0].p99 == STATS_QUANTILE_NONE);
	free(rows);

	// Stream listeners only: no rows at all.
	Sample s(with_upstreams(stats_json(TWO, 1.0),
		{{stream_upstream("web", "10.0.0.3:80")},
		 {stream_upstream("web", "10.0.0.3:80")}}), 2 * SEC);
	REQUIRE(s.err == 0);
	REQUIRE(stats_rpc_rows(&s.s, &s.s, &rows, &n) == 0);
	CHECK(n == 0);
	CHECK(rows == nullptr);
}

TEST_CASE("frametop table: the rpc view under the shards", "[frametop][table]")
{
	Sample a(rpc_prev(), 1 * SEC);
	Sample b(rpc_cur(), 3 * SEC);
	REQUIRE(a.err == 0);
	REQUIRE(b.err == 0);

	std::vector<std::string> first = lines_of(render(nullptr, &a.s));
	REQUIRE(first.size() == 10);
	CHECK(first[5].find("rpc per server") == 0);
	CHECK(first[6].find("LISTENER") != std::string::npos);
	CHECK(first[6].find("P99") != std::string::npos);
	CHECK(first[7].find("  api          10.0.0.1:9000 ") == 0);
	CHECK(first[7].find(" - ") != std::string::npos);   // no rate yet

	std::vector<std::string> t = lines_of(render(&a.s, &b.s));
	REQUIRE(t.size() == 10);
	INFO(t[7] << "\n" << t[8] << "\n" << t[9]);
	std::vector<std::string> cols;
	{
		std::string c;
		for (char ch : t[7] + " ") {
			if (ch != ' ') {
				c += ch;
			} else if (!c.empty()) {
				cols.push_back(c);
				c.clear();
			}
		}
	}
	REQUIRE(cols.size() == 6);
	CHECK(cols[0] == "api");
	CHECK(cols[1] == "10.0.0.1:9000");
	CHECK(cols[2] == "1.50k");
	CHECK(cols[3] == "6");
	CHECK(cols[4] == "4");
	CHECK(cols[5] == "91.0ms");
	CHECK(t[8].find("10.0.0.2:9000") != std::string::npos);
	CHECK(t[8].substr(t[8].size() - 2) == " -");     // no p99: no replies
	CHECK(t[9].substr(t[9].size() - 7) == " >100ms");
	for (size_t i = 7; i < t.size(); i++)
		CHECK(t[i].size() == t[6].size());

	// Stream only: the table is the shards' alone, as before.
	Sample s(with_upstreams(stats_json(TWO, 1.0),
		{{stream_upstream("web", "10.0.0.3:80")}, {}}), 2 * SEC);
	REQUIRE(s.err == 0);
	std::string plain = render(&s.s, &s.s);
	CHECK(lines_of(plain).size() == 5);
	CHECK(plain.find("rpc") == std::string::npos);
}

TEST_CASE("frametop table: latencies", "[frametop][table]")
{
	char b[32];
	CHECK(std::string(table_human_latency(0, b, sizeof(b))) == "0.00us");
	CHECK(std::string(table_human_latency(75e-6, b, sizeof(b))) == "75.0us");
	CHECK(std::string(table_human_latency(250e-6, b, sizeof(b))) == "250us");
	CHECK(std::string(table_human_latency(1.25e-3, b, sizeof(b))) == "1.25ms");
	CHECK(std::string(table_human_latency(0.48, b, sizeof(b))) == "480ms");
	CHECK(std::string(table_human_latency(2.5, b, sizeof(b))) == "2.50s");
	CHECK(std::string(table_human_latency(10, b, sizeof(b))) == "10.0s");
}
