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
