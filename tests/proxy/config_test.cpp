// config: INI loading, errors that name file/line/key, overrides, checks.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <netinet/in.h>
#include <string>
#include <unistd.h>

#include "proxy/config.h"

namespace {

struct Cfg {
	config c;
	Cfg() { config_init(&c); }
	~Cfg() { config_free(&c); }
	int load(const std::string &text)
	{
		return config_load_string(&c, "frameproxy.ini", text.c_str());
	}
	std::string errors() const
	{
		std::string all;
		for (size_t i = 0; i < c.nerrors; i++)
			all += std::string(c.errors[i]) + "\n";
		return all;
	}
	bool has(const std::string &msg) const
	{
		for (size_t i = 0; i < c.nerrors; i++) {
			if (std::string(c.errors[i]) == msg)
				return true;
		}
		return false;
	}
	const config_listener *l(const char *name) const
	{
		return config_find_listener(&c, name);
	}
};

std::string addr(const netaddr &a)
{
	char buf[NETADDR_STRLEN];
	return netaddr_format((const sockaddr *)&a.ss, buf, sizeof(buf));
}

bool allowed(const config_listener *l, const char *ip_port)
{
	netaddr n;
	REQUIRE(netaddr_parse(&n, ip_port, NETADDR_NUMERIC) == 0);
	return acl_check(&l->acl, (const sockaddr *)&n.ss);
}

const char *full_config = R"INI(; a complete configuration
[frameproxy]
log_level = debug
poller = uring
shards = 4
admin = 127.0.0.1:9100
drain_timeout = 15s

[listener api]
listen = 127.0.0.1:9000
max_frame = 1MiB
buffer = 128KiB
connect_timeout = 500ms
idle_timeout = 5m
frame_timeout = 0
max_connections = 2000
max_per_client = 16
allow = 10.0.0.0/8, 192.168.0.0/16
allow = 2001:db8::/32
deny = 10.6.6.0/24
balance = hash
retries = 1
fail_threshold = 5
fail_timeout = 20s
health_interval = 2s
health_rise = 3
health_fall = 4
check_frame = 0x00 ff 10
server = 127.0.0.1:9001 weight=5
server = [::1]:9002
server = localhost:9003   weight=2   ; inline comment

[listener  bulk]
listen = [::1]:0
server = 127.0.0.1:9101
)INI";

} // namespace

TEST_CASE("config: a full file lands in the model", "[config]")
{
	Cfg cfg;
	INFO(cfg.errors());
	REQUIRE(cfg.load(full_config) == 0);
	REQUIRE(config_finish(&cfg.c) == 0);
	const config &c = cfg.c;
	CHECK(c.log_level == LOG_LEVEL_DEBUG);
	CHECK(c.poller == CONFIG_POLLER_URING);
	CHECK(c.shards == 4);
	REQUIRE(c.has_admin);
	CHECK(addr(c.admin) == "127.0.0.1:9100");
	CHECK(c.drain_timeout == 15000000000);
	REQUIRE(c.nlisteners == 2);

	const config_listener *a = cfg.l("api");
	REQUIRE(a == &c.listeners[0]);
	CHECK(a->line == 9);
	CHECK(addr(a->listen) == "127.0.0.1:9000");
	CHECK(a->max_frame == 1u << 20);
	CHECK(a->buffer == 128u << 10);
	CHECK(a->connect_timeout == 500000000);
	CHECK(a->idle_timeout == 300000000000);
	CHECK(a->frame_timeout == 0);
	CHECK(a->max_connections == 2000);
	CHECK(a->max_per_client == 16);
	CHECK(a->acl.allow.count == 3);
	CHECK(a->acl.deny.count == 1);
	CHECK(allowed(a, "10.1.1.1:1"));
	CHECK(allowed(a, "[2001:db8::7]:1"));
	CHECK_FALSE(allowed(a, "10.6.6.6:1"));
	CHECK_FALSE(allowed(a, "8.8.8.8:1"));
	CHECK(a->balance == BALANCE_HASH);
	CHECK(a->retries == 1);
	CHECK(a->fail_threshold == 5);
	CHECK(a->fail_timeout == 20000000000);
	CHECK(a->health_interval == 2000000000);
	CHECK(a->health_rise == 3);
	CHECK(a->health_fall == 4);
	REQUIRE(a->has_check_frame);
	REQUIRE(a->check_frame_len == 3);
	CHECK(a->check_frame[0] == 0x00);
	CHECK(a->check_frame[1] == 0xff);
	CHECK(a->check_frame[2] == 0x10);
	REQUIRE(a->nservers == 2);
	CHECK(addr(a->servers[0].addr) == "127.0.0.1:9001");
	CHECK(a->servers[0].weight == 5);
	CHECK(addr(a->servers[1].addr) == "[::1]:9002");
	CHECK(a->servers[1].weight == 1);
	// A name is resolved by the shards, not by the loader.
	REQUIRE(a->nnames == 1);
	CHECK(std::string(a->names[0].host) == "localhost");
	CHECK(a->names[0].port == 9003);
	CHECK(a->names[0].weight == 2);
	CHECK_FALSE(a->names[0].srv);

	const config_listener *b = cfg.l("bulk");
	REQUIRE(b != nullptr);
	CHECK(b->line == 33);
	CHECK(addr(b->listen) == "[::1]:0");
	// Defaults.
	CHECK(b->max_frame == 16u << 20);
	CHECK(b->buffer == 64u << 10);
	CHECK(b->connect_timeout == 2000000000);
	CHECK(b->idle_timeout == 60000000000);
	CHECK(b->frame_timeout == 30000000000);
	CHECK(b->max_connections == 10000);
	CHECK(b->max_per_client == 0);
	CHECK(b->balance == BALANCE_ROUNDROBIN);
	CHECK(b->retries == 2);
	CHECK(b->fail_threshold == 3);
	CHECK(b->fail_timeout == 10000000000);
	CHECK(b->health_interval == 0);
	CHECK(b->health_rise == 2);
	CHECK(b->health_fall == 3);
	CHECK_FALSE(b->has_check_frame);
	CHECK(b->acl.allow.count == 0);
	CHECK(cfg.l("nope") == nullptr);
}

TEST_CASE("config: global defaults", "[config]")
{
	Cfg cfg;
	REQUIRE(cfg.load("[listener a]\nlisten=127.0.0.1:1\nserver=127.0.0.1:2\n") == 0);
	REQUIRE(config_finish(&cfg.c) == 0);
	CHECK(cfg.c.log_level == LOG_LEVEL_INFO);
	CHECK(cfg.c.poller == CONFIG_POLLER_AUTO);
	CHECK(cfg.c.shards == 0);
	CHECK_FALSE(cfg.c.has_admin);
	CHECK(cfg.c.drain_timeout == 10000000000);
	CHECK(std::string(config_poller_name(cfg.c.poller)) == "auto");
	CHECK_FALSE(cfg.c.uring_write_batching);
	CHECK(cfg.c.uring_io == CONFIG_URING_IO_POLL);
	CHECK_FALSE(cfg.c.pin);
	CHECK(cfg.c.steer == CONFIG_STEER_HASH);
	CHECK(std::string(config_steer_name(cfg.c.steer)) == "hash");
	CHECK(cfg.c.user == nullptr);
}

TEST_CASE("config: max_buffer_memory is auto, a size or 0", "[config]")
{
	const char *listener = "[listener a]\nlisten=127.0.0.1:1\nserver=127.0.0.1:2\n";
	Cfg def;
	REQUIRE(def.load(listener) == 0);
	CHECK(def.c.max_buffer_memory == CONFIG_BUFFER_MEMORY_AUTO);
	Cfg size;
	REQUIRE(size.load(std::string("[frameproxy]\nmax_buffer_memory = 2MiB\n") +
			  listener) == 0);
	CHECK(size.c.max_buffer_memory == 2u * 1024 * 1024);
	Cfg off;
	REQUIRE(off.load(std::string("[frameproxy]\nmax_buffer_memory = 0\n") +
			 listener) == 0);
	CHECK(off.c.max_buffer_memory == 0);
	Cfg bad;
	CHECK(bad.load(std::string("[frameproxy]\nmax_buffer_memory = lots\n") +
		       listener) == -EINVAL);
	INFO(bad.errors());
	CHECK(bad.has("frameproxy.ini:2: key 'max_buffer_memory': invalid max_buffer_memory "
		      "'lots' (expected auto or a size, e.g. 256MiB; 0 = off)"));
}

TEST_CASE("config: uring_write_batching is on or off", "[config]")
{
	Cfg on;
	REQUIRE(on.load("[frameproxy]\nuring_write_batching = on\n"
			"[listener a]\nlisten=127.0.0.1:1\nserver=127.0.0.1:2\n") == 0);
	CHECK(on.c.uring_write_batching);
	Cfg bad;
	CHECK(bad.load("[frameproxy]\nuring_write_batching = yes\n"
		       "[listener a]\nlisten=127.0.0.1:1\nserver=127.0.0.1:2\n") == -EINVAL);
	INFO(bad.errors());
	CHECK(bad.has("frameproxy.ini:2: key 'uring_write_batching': invalid uring_write_batching 'yes' (expected on or off)"));
}

TEST_CASE("config: uring_io is poll, completion or auto", "[config]")
{
	Cfg on;
	REQUIRE(on.load("[frameproxy]\nuring_io = completion\n"
			"[listener a]\nlisten=127.0.0.1:1\nserver=127.0.0.1:2\n") == 0);
	CHECK(on.c.uring_io == CONFIG_URING_IO_COMPLETION);
	Cfg bad;
	CHECK(bad.load("[frameproxy]\nuring_io = ring\n"
		       "[listener a]\nlisten=127.0.0.1:1\nserver=127.0.0.1:2\n") == -EINVAL);
	INFO(bad.errors());
	CHECK(bad.has("frameproxy.ini:2: key 'uring_io': invalid uring_io 'ring' (expected poll, completion or auto)"));
}

TEST_CASE("config: each value error names file, line and key", "[config]")
{
	Cfg cfg;
	CHECK(cfg.load("[frameproxy]\n"                       // 1
		       "log_level = loud\n"                   // 2
		       "poller = kqueue\n"                    // 3
		       "shards = many\n"                      // 4
		       "drain_timeout = 10\n"                 // 5
		       "[listener a]\n"                       // 6
		       "listen = 127.0.0.1:9000\n"            // 7
		       "max_frame = 16XB\n"                   // 8
		       "idle_timeout = 5parsecs\n"            // 9
		       "buffer = 99999999999999999999999\n"   // 10
		       "connect_timeout = -1s\n"              // 11
		       "server = 127.0.0.1:9001 weight=0\n"   // 12
		       "server = 127.0.0.1:9002 weight=257\n" // 13
		       "server = 127.0.0.1:9003 color=red\n"  // 14
		       "allow = 10.0.0.0/8, 10.0.0.300/32\n"  // 15
		       "deny = 10.0.0.1/8\n"                  // 16
		       "balance = fastest\n"                  // 17
		       "retries = -1\n"                       // 18
		       "health_rise = 0\n"                    // 19
		       "check_frame = 0g\n"                   // 20
		       "listen2 = 1\n"                        // 21
		       "server = 127.0.0.1\n"                 // 22
		       "max_connections = 0\n"                // 23
		       "deny =\n"                              // 24
		       ) == -EINVAL);
	INFO(cfg.errors());
	CHECK(cfg.has("frameproxy.ini:2: key 'log_level': invalid log level 'loud' (expected debug, info, warn or error)"));
	CHECK(cfg.has("frameproxy.ini:3: key 'poller': invalid poller 'kqueue' (expected epoll, uring, auto or mixed)"));
	CHECK(cfg.has("frameproxy.ini:4: key 'shards': invalid shards 'many' (expected auto or 1..4096)"));
	CHECK(cfg.has("frameproxy.ini:5: key 'drain_timeout': invalid duration '10' (e.g. 250ms, 30s, 2m; a unit is required)"));
	CHECK(cfg.has("frameproxy.ini:8: key 'max_frame': invalid size '16XB' (e.g. 64KiB, 16MiB, 1000B)"));
	CHECK(cfg.has("frameproxy.ini:9: key 'idle_timeout': invalid duration '5parsecs' (e.g. 250ms, 30s, 2m; a unit is required)"));
	CHECK(cfg.has("frameproxy.ini:10: key 'buffer': size '99999999999999999999999': out of range"));
	CHECK(cfg.has("frameproxy.ini:11: key 'connect_timeout': duration '-1s': negative values are not allowed"));
	CHECK(cfg.has("frameproxy.ini:12: key 'server': server weight '0' must be between 1 and 256"));
	CHECK(cfg.has("frameproxy.ini:13: key 'server': server weight '257' must be between 1 and 256"));
	CHECK(cfg.has("frameproxy.ini:14: key 'server': unknown server option 'color=red' (expected weight=N or maxconn=N)"));
	CHECK(cfg.has("frameproxy.ini:15: key 'allow': invalid CIDR '10.0.0.300/32' (e.g. 10.0.0.0/8, 2001:db8::/32; no host bits past the prefix)"));
	CHECK(cfg.has("frameproxy.ini:16: key 'deny': invalid CIDR '10.0.0.1/8' (e.g. 10.0.0.0/8, 2001:db8::/32; no host bits past the prefix)"));
	CHECK(cfg.has("frameproxy.ini:17: key 'balance': invalid balance 'fastest' (expected roundrobin, leastconn, random2 or hash)"));
	CHECK(cfg.has("frameproxy.ini:18: key 'retries': invalid number '-1'"));
	CHECK(cfg.has("frameproxy.ini:19: key 'health_rise': '0' must be between 1 and 100"));
	CHECK(cfg.has("frameproxy.ini:20: key 'check_frame': invalid hex '0g' (expected pairs of hex digits)"));
	CHECK(cfg.has("frameproxy.ini:21: key 'listen2': unknown key in [listener a]"));
	CHECK(cfg.has("frameproxy.ini:22: key 'server': invalid address '127.0.0.1' (expected host:port, IPv6 as [addr]:port)"));
	CHECK(cfg.has("frameproxy.ini:23: key 'max_connections': '0' must be between 1 and 10000000"));
	CHECK(cfg.has("frameproxy.ini:24: key 'deny': empty list (give one or more CIDRs)"));
	CHECK(cfg.c.nerrors == 21); // all reported, not only the first
}

TEST_CASE("config: range errors name the limits", "[config]")
{
	Cfg cfg;
	CHECK(cfg.load("[listener a]\n"
		       "buffer = 512\n"
		       "max_frame = 4GiB\n"
		       "connect_timeout = 0\n"
		       "listen = 127.0.0.1:70000\n") == -EINVAL);
	INFO(cfg.errors());
	CHECK(cfg.has("frameproxy.ini:2: key 'buffer': size '512' must be between 1KiB and 1GiB"));
	CHECK(cfg.has("frameproxy.ini:3: key 'max_frame': size '4GiB' must be between 1B and 4294967295B"));
	CHECK(cfg.has("frameproxy.ini:4: key 'connect_timeout': duration '0' must be at least 1ms"));
	CHECK(cfg.has("frameproxy.ini:5: key 'listen': port out of range in '127.0.0.1:70000'"));
}

TEST_CASE("config: section errors name the section line", "[config]")
{
	Cfg cfg;
	CHECK(cfg.load("[frameproxy]\n"            // 1
		       "[listner x]\n"             // 2
		       "listen = 127.0.0.1:1\n"    // 3: ignored, no extra error
		       "[listener a]\n"            // 4
		       "listen = 127.0.0.1:9000\n" // 5
		       "[listener a]\n"            // 6
		       "max_frame = 16XB\n"        // 7: still checked
		       "[listener]\n"              // 8
		       "[listener bad.name]\n"     // 9
		       "[listener b]\n"            // 10
		       "server = 127.0.0.1:9\n"    // 11
		       "[listener c]\n"            // 12
		       ) == -EINVAL);
	CHECK(config_finish(&cfg.c) == -EINVAL);
	INFO(cfg.errors());
	CHECK(cfg.has("frameproxy.ini:2: unknown section [listner x] (expected [frameproxy] or [listener NAME])"));
	CHECK(cfg.has("frameproxy.ini:6: section [listener a]: duplicate listener name 'a' (first at line 4)"));
	CHECK(cfg.has("frameproxy.ini:7: key 'max_frame': invalid size '16XB' (e.g. 64KiB, 16MiB, 1000B)"));
	CHECK(cfg.has("frameproxy.ini:8: section [listener]: listener name must be 1-32 of A-Z a-z 0-9 _ -"));
	CHECK(cfg.has("frameproxy.ini:9: section [listener bad.name]: listener name must be 1-32 of A-Z a-z 0-9 _ -"));
	CHECK(cfg.has("frameproxy.ini:4: section [listener a]: no 'server' lines"));
	CHECK(cfg.has("frameproxy.ini:10: section [listener b]: missing key 'listen'"));
	CHECK(cfg.has("frameproxy.ini:12: section [listener c]: missing key 'listen'"));
	CHECK(cfg.has("frameproxy.ini:12: section [listener c]: no 'server' lines"));
	CHECK(cfg.c.nerrors == 9);
	CHECK(cfg.c.nlisteners == 3); // the duplicate is not kept
}

TEST_CASE("config: no listener at all", "[config]")
{
	Cfg cfg;
	CHECK(cfg.load("[frameproxy]\nlog_level = warn\n") == 0);
	CHECK(config_finish(&cfg.c) == -EINVAL);
	CHECK(cfg.has("frameproxy.ini: no [listener NAME] section"));

	Cfg none;
	CHECK(config_finish(&none.c) == -EINVAL);
	CHECK(none.has("no listener: give a config file or --listen and --server"));
}

TEST_CASE("config: syntax, duplicates, stray keys, long lines", "[config]")
{
	Cfg cfg;
	std::string longline = "allow = " + std::string(300, '1') + "\n";
	CHECK(cfg.load("log_level = info\n"             // 1: before any section
		       "[frameproxy]\n"                 // 2
		       "just some words\n"              // 3
		       "poller = epoll\n"               // 4
		       "poller = uring\n"               // 5
		       "[listener a\n"                  // 6
		       "[listener a]\n"                 // 7
		       "listen = 127.0.0.1:9000\n"      // 8
		       "also wrong\n"                   // 9
		       + longline +                     // 10
		       "server = 127.0.0.1:9001\n"      // 11
		       "server = 127.0.0.1:9002\n"      // 12: servers repeat
		       "allow = 10.0.0.0/8\n"           // 13
		       "allow = 11.0.0.0/8\n"           // 14: allow repeats
		       ) == -EINVAL);
	INFO(cfg.errors());
	CHECK(cfg.has("frameproxy.ini:1: key 'log_level': outside any section (put it under [frameproxy] or [listener NAME])"));
	CHECK(cfg.has("frameproxy.ini:3: expected 'key = value'"));
	CHECK(cfg.has("frameproxy.ini:5: key 'poller': set twice in [frameproxy] (first at line 4)"));
	CHECK(cfg.has("frameproxy.ini:6: section header without ']'"));
	CHECK(cfg.has("frameproxy.ini:9: expected 'key = value'"));
	CHECK(cfg.has("frameproxy.ini:10: line longer than 197 characters (split long allow/deny lists over repeated keys)"));
	CHECK(cfg.c.nerrors == 6);
	CHECK(cfg.c.poller == CONFIG_POLLER_EPOLL); // the first one stands
	REQUIRE(cfg.l("a") != nullptr);
	CHECK(cfg.l("a")->nservers == 2);
	CHECK(cfg.l("a")->acl.allow.count == 2);
	CHECK(config_finish(&cfg.c) == -EINVAL); // earlier errors still count
}

TEST_CASE("config: comments, blank lines, CRLF, BOM, indentation", "[config]")
{
	Cfg cfg;
	REQUIRE(cfg.load("\xef\xbb\xbf# comment\r\n"
			 "\r\n"
			 "  ; indented comment\r\n"
			 "  [listener a]\r\n"
			 "listen = 127.0.0.1:9000 ; why not\r\n"
			 "allow = 10.0.0.0/8,\r\n"
			 "\t  allow = 172.16.0.0/12\r\n"
			 "    server = 127.0.0.1:9001\r\n") == 0);
	INFO(cfg.errors());
	REQUIRE(config_finish(&cfg.c) == 0);
	const config_listener *a = cfg.l("a");
	REQUIRE(a != nullptr);
	CHECK(a->line == 4);
	CHECK(addr(a->listen) == "127.0.0.1:9000");
	// Indented lines are keys of their own, never continuations.
	CHECK(a->acl.allow.count == 2);
	CHECK(allowed(a, "172.16.5.5:1"));
	CHECK(a->nservers == 1);

	Cfg cont;
	CHECK(cont.load("[listener a]\n"
			"allow = 10.0.0.0/8,\n"
			"   172.16.0.0/12\n") == -EINVAL);
	CHECK(cont.has("frameproxy.ini:3: expected 'key = value'"));
}

TEST_CASE("config: cross-key checks", "[config]")
{
	Cfg cfg;
	CHECK(cfg.load("[listener a]\n"
		       "listen = 127.0.0.1:9000\n"
		       "server = 127.0.0.1:9001\n"
		       "max_frame = 2\n"
		       "check_frame = 010203\n"
		       "[listener b]\n"
		       "listen = 127.0.0.1:9000\n"
		       "server = 127.0.0.1:9001\n"
		       "[listener c]\n"
		       "listen = 127.0.0.1:0\n"
		       "server = 127.0.0.1:9001\n"
		       "[listener d]\n"
		       "listen = 127.0.0.1:0\n"
		       "server = 127.0.0.1:9001\n") == 0);
	CHECK(config_finish(&cfg.c) == -EINVAL);
	INFO(cfg.errors());
	CHECK(cfg.has("frameproxy.ini:1: section [listener a]: check_frame is larger than max_frame"));
	CHECK(cfg.has("frameproxy.ini:1: section [listener a]: check_frame is set but health_interval is 0 (checks off)"));
	CHECK(cfg.has("frameproxy.ini:6: section [listener b]: listen address 127.0.0.1:9000 is already used by [listener a]"));
	CHECK(cfg.c.nerrors == 3); // two :0 listeners do not clash
}

TEST_CASE("config: the error list is bounded", "[config]")
{
	Cfg cfg;
	std::string text = "[listener a]\n";
	for (int i = 0; i < 50; i++)
		text += "bogus" + std::to_string(i) + " = 1\n";
	CHECK(cfg.load(text) == -EINVAL);
	CHECK(cfg.c.nerrors == CONFIG_MAX_ERRORS);
	CHECK(cfg.c.errors_dropped == 50 - CONFIG_MAX_ERRORS);
	CHECK(config_error_count(&cfg.c) == 50);
	CHECK(std::string(config_error(&cfg.c, 0)) == "frameproxy.ini:2: key 'bogus0': unknown key in [listener a]");
	CHECK(config_error(&cfg.c, CONFIG_MAX_ERRORS) == nullptr);

	char *buf = nullptr;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	REQUIRE(out != nullptr);
	config_print_errors(&cfg.c, out);
	fclose(out);
	std::string printed(buf, len);
	free(buf);
	CHECK(printed.find("frameproxy.ini:33: key 'bogus31'") != std::string::npos);
	CHECK(printed.find("bogus32") == std::string::npos);
	const std::string tail = "\n... and 18 more errors\n";
	REQUIRE(printed.size() > tail.size());
	CHECK(printed.substr(printed.size() - tail.size()) == tail);
}

TEST_CASE("config: command-line overrides win over the file", "[config]")
{
	Cfg cfg;
	REQUIRE(cfg.load("[frameproxy]\n"
			 "log_level = info\n"
			 "[listener a]\n"
			 "listen = 127.0.0.1:9000\n"
			 "max_frame = 1MiB\n"
			 "server = 127.0.0.1:9001\n"
			 "server = 127.0.0.1:9002\n"
			 "allow = 10.0.0.0/8\n"
			 "[listener b]\n"
			 "listen = 127.0.0.1:9100\n"
			 "server = 127.0.0.1:9101\n") == 0);
	config &c = cfg.c;
	CHECK(config_apply_override(&c, "log_level", "error", "--log-level") == 0);
	CHECK(config_apply_override(&c, "poller", "epoll", "--poller") == 0);
	CHECK(config_apply_override(&c, "max_frame", "4MiB", "--max-frame") == 0);
	CHECK(config_apply_override(&c, "listen", "127.0.0.1:7000", "--listen") == 0);
	// The first flag server replaces the file's list, later ones add.
	CHECK(config_apply_override(&c, "server", "127.0.0.1:8001 weight=3", "--server") == 0);
	CHECK(config_apply_override(&c, "server", "127.0.0.1:8002", "--server") == 0);
	CHECK(config_apply_override(&c, "allow", "192.168.0.0/16", "--allow") == 0);
	CHECK(config_apply_override(&c, "listener.b.buffer", "1MiB", nullptr) == 0);
	REQUIRE(config_finish(&c) == 0);

	CHECK(c.log_level == LOG_LEVEL_ERROR);
	CHECK(c.poller == CONFIG_POLLER_EPOLL);
	const config_listener *a = cfg.l("a");
	CHECK(a->max_frame == 4u << 20);
	CHECK(addr(a->listen) == "127.0.0.1:7000");
	REQUIRE(a->nservers == 2);
	CHECK(addr(a->servers[0].addr) == "127.0.0.1:8001");
	CHECK(a->servers[0].weight == 3);
	CHECK(addr(a->servers[1].addr) == "127.0.0.1:8002");
	CHECK(allowed(a, "192.168.1.1:1"));
	CHECK_FALSE(allowed(a, "10.1.1.1:1")); // file's allow list replaced
	const config_listener *b = cfg.l("b");
	CHECK(b->buffer == 1u << 20);
	CHECK(b->max_frame == 16u << 20); // untouched
	CHECK(b->nservers == 1);
}

TEST_CASE("config: bad overrides name the flag", "[config]")
{
	Cfg cfg;
	CHECK(config_apply_override(&cfg.c, "max_frame", "16XB", "--max-frame") == -EINVAL);
	CHECK(config_apply_override(&cfg.c, "poller", "select", "--poller") == -EINVAL);
	CHECK(config_apply_override(&cfg.c, "server", "127.0.0.1:1 weight=999", "--server") == -EINVAL);
	CHECK(config_apply_override(&cfg.c, "frobnicate", "1", "--frobnicate") == -EINVAL);
	CHECK(config_apply_override(&cfg.c, "listener.x", "1", "--set") == -EINVAL);
	CHECK(config_apply_override(&cfg.c, "listener.x.idle_timeout", "soon", nullptr) == -EINVAL);
	INFO(cfg.errors());
	CHECK(cfg.has("--max-frame: invalid size '16XB' (e.g. 64KiB, 16MiB, 1000B)"));
	CHECK(cfg.has("--poller: invalid poller 'select' (expected epoll, uring, auto or mixed)"));
	CHECK(cfg.has("--server: server weight '999' must be between 1 and 256"));
	CHECK(cfg.has("--frobnicate: unknown key 'frobnicate'"));
	CHECK(cfg.has("--set: invalid key 'listener.x' (expected KEY or listener.NAME.KEY)"));
	CHECK(cfg.has("override 'listener.x.idle_timeout': invalid duration 'soon' (e.g. 250ms, 30s, 2m; a unit is required)"));
}

TEST_CASE("config: flags alone make a listener named default", "[config]")
{
	Cfg cfg;
	REQUIRE(config_apply_override(&cfg.c, "listen", "127.0.0.1:0", "--listen") == 0);
	REQUIRE(config_apply_override(&cfg.c, "server", "127.0.0.1:9", "--server") == 0);
	REQUIRE(config_finish(&cfg.c) == 0);
	REQUIRE(cfg.c.nlisteners == 1);
	CHECK(std::string(cfg.c.listeners[0].name) == "default");
	CHECK(cfg.c.listeners[0].line == 0);

	Cfg half;
	REQUIRE(config_apply_override(&half.c, "listener.edge.listen", "127.0.0.1:5", "--listen") == 0);
	CHECK(config_finish(&half.c) == -EINVAL);
	CHECK(half.has("listener 'edge' (command line): no 'server' lines"));
}

TEST_CASE("config: files on disk, and unreadable ones", "[config]")
{
	char path[] = "/tmp/frameproxy-config-test-XXXXXX";
	int fd = mkstemp(path);
	REQUIRE(fd >= 0);
	const char text[] = "[listener a]\nlisten = 127.0.0.1:1\nmax_frame = 2XB\n";
	REQUIRE(write(fd, text, sizeof(text) - 1) == (ssize_t)(sizeof(text) - 1));
	close(fd);
	Cfg cfg;
	CHECK(config_load_file(&cfg.c, path) == -EINVAL);
	CHECK(cfg.has(std::string(path) + ":3: key 'max_frame': invalid size '2XB' (e.g. 64KiB, 16MiB, 1000B)"));
	CHECK(config_finish(&cfg.c) == -EINVAL);
	CHECK(cfg.has(std::string(path) + ":1: section [listener a]: no 'server' lines"));
	unlink(path);

	Cfg missing;
	CHECK(config_load_file(&missing.c, "/nonexistent/frameproxy.ini") == -ENOENT);
	CHECK(missing.has("/nonexistent/frameproxy.ini: cannot read: No such file or directory"));
}

#ifdef FRAMEPROXY_SOURCE_ROOT
TEST_CASE("config: the example in docs/ is valid", "[config]")
{
	Cfg cfg;
	std::string path = std::string(FRAMEPROXY_SOURCE_ROOT) + "/docs/frameproxy.example.ini";
	int rc = config_load_file(&cfg.c, path.c_str());
	INFO(cfg.errors());
	REQUIRE(rc == 0);
	REQUIRE(config_finish(&cfg.c) == 0);
	CHECK(cfg.c.nlisteners >= 2);
}
#endif

namespace {

const char *listener_a = "[listener a]\nlisten=127.0.0.1:1\nserver=127.0.0.1:2\n";

} // namespace

TEST_CASE("config: poller mixed, pin, steer and user", "[config]")
{
	Cfg cfg;
	REQUIRE(cfg.load(std::string("[frameproxy]\n"
				     "poller = mixed\n"
				     "pin = on\n"
				     "steer = cpu\n"
				     "user = frameproxy\n") + listener_a) == 0);
	INFO(cfg.errors());
	REQUIRE(config_finish(&cfg.c) == 0);
	CHECK(cfg.c.poller == CONFIG_POLLER_MIXED);
	CHECK(std::string(config_poller_name(cfg.c.poller)) == "mixed");
	CHECK(cfg.c.pin);
	CHECK(cfg.c.steer == CONFIG_STEER_CPU);
	CHECK(std::string(config_steer_name(cfg.c.steer)) == "cpu");
	REQUIRE(cfg.c.user != nullptr);
	CHECK(std::string(cfg.c.user) == "frameproxy");
	// The other names, for completeness.
	CHECK(std::string(config_poller_name(CONFIG_POLLER_EPOLL)) == "epoll");
	CHECK(std::string(config_poller_name(CONFIG_POLLER_URING)) == "uring");
	CHECK(std::string(config_steer_name(CONFIG_STEER_HASH)) == "hash");

	// steer = hash is accepted too, and needs no pin.
	Cfg hash;
	REQUIRE(hash.load(std::string("[frameproxy]\nsteer = hash\n") + listener_a) == 0);
	REQUIRE(config_finish(&hash.c) == 0);
	CHECK(hash.c.steer == CONFIG_STEER_HASH);
	CHECK_FALSE(hash.c.pin);
}

TEST_CASE("config: pin takes the usual spellings of a boolean", "[config]")
{
	const char *yes[] = {"on", "true", "yes", "1"};
	const char *no[] = {"off", "false", "no", "0"};
	for (const char *v : yes) {
		Cfg cfg;
		INFO(v);
		REQUIRE(cfg.load(std::string("[frameproxy]\npin = ") + v + "\n" + listener_a) == 0);
		CHECK(cfg.c.pin);
	}
	for (const char *v : no) {
		Cfg cfg;
		INFO(v);
		// Start from on so that "off" visibly changes something.
		REQUIRE(config_apply_override(&cfg.c, "pin", "on", "--pin") == 0);
		REQUIRE(cfg.c.pin);
		REQUIRE(config_apply_override(&cfg.c, "pin", v, "--pin") == 0);
		CHECK_FALSE(cfg.c.pin);
	}
}

TEST_CASE("config: bad pin, steer, user and poller values name file, line and key", "[config]")
{
	Cfg cfg;
	CHECK(cfg.load("[frameproxy]\n"          // 1
		       "pin = maybe\n"           // 2
		       "steer = random\n"        // 3
		       "user = bob smith\n"      // 4
		       "poller = select\n"       // 5
		       "[listener a]\n"          // 6
		       "pin = on\n"              // 7: a global key, not a listener one
		       "listen = 127.0.0.1:1\n"  // 8
		       "server = 127.0.0.1:2\n"  // 9
		       ) == -EINVAL);
	INFO(cfg.errors());
	CHECK(cfg.has("frameproxy.ini:2: key 'pin': invalid pin 'maybe' (expected on, off, true, false, yes, no, 1 or 0)"));
	CHECK(cfg.has("frameproxy.ini:3: key 'steer': invalid steer 'random' (expected hash or cpu)"));
	CHECK(cfg.has("frameproxy.ini:4: key 'user': invalid user 'bob smith' (a user name, no spaces or control characters)"));
	CHECK(cfg.has("frameproxy.ini:5: key 'poller': invalid poller 'select' (expected epoll, uring, auto or mixed)"));
	CHECK(cfg.has("frameproxy.ini:7: key 'pin': unknown key in [listener a]"));
	CHECK(cfg.c.nerrors == 5);
	// Bad values leave the defaults alone.
	CHECK_FALSE(cfg.c.pin);
	CHECK(cfg.c.steer == CONFIG_STEER_HASH);
	CHECK(cfg.c.user == nullptr);
	CHECK(cfg.c.poller == CONFIG_POLLER_AUTO);

	Cfg empty;
	CHECK(empty.load("[frameproxy]\n"
			 "user =\n"
			 "pin =\n"
			 "steer = CPU\n"
			 "user = root\n") == -EINVAL);
	INFO(empty.errors());
	CHECK(empty.has("frameproxy.ini:2: key 'user': empty user name"));
	CHECK(empty.has("frameproxy.ini:3: key 'pin': invalid pin '' (expected on, off, true, false, yes, no, 1 or 0)"));
	CHECK(empty.has("frameproxy.ini:4: key 'steer': invalid steer 'CPU' (expected hash or cpu)"));
	CHECK(empty.has("frameproxy.ini:5: key 'user': set twice in [frameproxy] (first at line 2)"));
	CHECK(empty.c.nerrors == 4);
	CHECK(empty.c.user == nullptr);
}

TEST_CASE("config: user is checked for syntax only", "[config]")
{
	// A user that surely does not exist here is fine: the file may be
	// checked on another machine.
	Cfg cfg;
	REQUIRE(cfg.load(std::string("[frameproxy]\nuser = no-such-user-frameproxy-test\n") + listener_a) == 0);
	REQUIRE(config_finish(&cfg.c) == 0);
	REQUIRE(cfg.c.user != nullptr);
	CHECK(std::string(cfg.c.user) == "no-such-user-frameproxy-test");

	// A flag replaces the file's user (and the old string is freed: the
	// ASan build would report the leak).
	CHECK(config_apply_override(&cfg.c, "user", "_svc.frame$", "--user") == 0);
	CHECK(std::string(cfg.c.user) == "_svc.frame$");

	// Up to 255 bytes.
	std::string longest(255, 'u');
	CHECK(config_apply_override(&cfg.c, "user", longest.c_str(), "--user") == 0);
	CHECK(std::string(cfg.c.user) == longest);
	CHECK(config_apply_override(&cfg.c, "user", (longest + "u").c_str(), "--user") == -EINVAL);
	CHECK(config_apply_override(&cfg.c, "user", "tab\there", "--user") == -EINVAL);
	CHECK(config_apply_override(&cfg.c, "user", "bell\a", "--user") == -EINVAL);
	CHECK(config_apply_override(&cfg.c, "user", "", "--user") == -EINVAL);
	INFO(cfg.errors());
	CHECK(cfg.has("--user: user name longer than 255 bytes"));
	// Control characters are echoed escaped (see the terminal test below).
	CHECK(cfg.has("--user: invalid user 'tab\\x09here' (a user name, no spaces or control characters)"));
	CHECK(cfg.has("--user: invalid user 'bell\\x07' (a user name, no spaces or control characters)"));
	CHECK(cfg.has("--user: empty user name"));
	CHECK(cfg.c.nerrors == 4);
	CHECK(std::string(cfg.c.user) == longest); // the last good one stands
}

TEST_CASE("config: bad pin, steer and user flags name the flag", "[config]")
{
	Cfg cfg;
	CHECK(config_apply_override(&cfg.c, "pin", "sometimes", "--pin") == -EINVAL);
	CHECK(config_apply_override(&cfg.c, "steer", "rss", "--steer") == -EINVAL);
	CHECK(config_apply_override(&cfg.c, "user", "a b", "--user") == -EINVAL);
	CHECK(config_apply_override(&cfg.c, "poller", "kqueue", nullptr) == -EINVAL);
	INFO(cfg.errors());
	CHECK(cfg.has("--pin: invalid pin 'sometimes' (expected on, off, true, false, yes, no, 1 or 0)"));
	CHECK(cfg.has("--steer: invalid steer 'rss' (expected hash or cpu)"));
	CHECK(cfg.has("--user: invalid user 'a b' (a user name, no spaces or control characters)"));
	CHECK(cfg.has("override 'poller': invalid poller 'kqueue' (expected epoll, uring, auto or mixed)"));
	CHECK(cfg.c.nerrors == 4);

	// Good flags win over the file.
	Cfg ok;
	REQUIRE(ok.load(std::string("[frameproxy]\npoller = epoll\npin = off\nuser = alice\n") + listener_a) == 0);
	CHECK(config_apply_override(&ok.c, "poller", "mixed", "--poller") == 0);
	CHECK(config_apply_override(&ok.c, "pin", "yes", "--pin") == 0);
	CHECK(config_apply_override(&ok.c, "steer", "cpu", "--steer") == 0);
	CHECK(config_apply_override(&ok.c, "user", "bob", "--user") == 0);
	INFO(ok.errors());
	REQUIRE(config_finish(&ok.c) == 0);
	CHECK(ok.c.poller == CONFIG_POLLER_MIXED);
	CHECK(ok.c.pin);
	CHECK(ok.c.steer == CONFIG_STEER_CPU);
	CHECK(std::string(ok.c.user) == "bob");
	CHECK(ok.c.listeners[0].line == 5); // still the file's listener
}

TEST_CASE("config: steer = cpu needs pin = on", "[config]")
{
	SECTION("from a file: the steer line is named") {
		Cfg cfg;
		REQUIRE(cfg.load(std::string("[frameproxy]\n"   // 1
					     "shards = 4\n"     // 2
					     "steer = cpu\n")   // 3
				 + listener_a) == 0);
		CHECK(config_finish(&cfg.c) == -EINVAL);
		INFO(cfg.errors());
		CHECK(cfg.has("frameproxy.ini:3: key 'steer': steer = cpu needs pin = on"));
		CHECK(cfg.c.nerrors == 1);
	}
	SECTION("pin = off said out loud is no better") {
		Cfg cfg;
		REQUIRE(cfg.load(std::string("[frameproxy]\n"
					     "pin = off\n"
					     "steer = cpu\n") + listener_a) == 0);
		CHECK(config_finish(&cfg.c) == -EINVAL);
		INFO(cfg.errors());
		CHECK(cfg.has("frameproxy.ini:3: key 'steer': steer = cpu needs pin = on"));
	}
	SECTION("from a file on disk: the path is named") {
		char path[] = "/tmp/frameproxy-config-test-XXXXXX";
		int fd = mkstemp(path);
		REQUIRE(fd >= 0);
		const std::string text = std::string("[frameproxy]\n\n\nsteer = cpu\n") + listener_a;
		REQUIRE(write(fd, text.data(), text.size()) == (ssize_t)text.size());
		close(fd);
		Cfg cfg;
		CHECK(config_load_file(&cfg.c, path) == 0);
		CHECK(config_finish(&cfg.c) == -EINVAL);
		unlink(path);
		INFO(cfg.errors());
		CHECK(cfg.has(std::string(path) + ":4: key 'steer': steer = cpu needs pin = on"));
	}
	SECTION("from a flag: the flag is named") {
		Cfg cfg;
		REQUIRE(cfg.load(std::string("[frameproxy]\nsteer = hash\n") + listener_a) == 0);
		REQUIRE(config_apply_override(&cfg.c, "steer", "cpu", "--steer") == 0);
		CHECK(config_finish(&cfg.c) == -EINVAL);
		INFO(cfg.errors());
		CHECK(cfg.has("--steer: steer = cpu needs pin = on"));
		CHECK(cfg.c.nerrors == 1);
	}
	SECTION("the last setter is named") {
		Cfg cfg;
		REQUIRE(cfg.load(std::string("[frameproxy]\nsteer = cpu\n") + listener_a) == 0);
		REQUIRE(config_apply_override(&cfg.c, "steer", "cpu", "--steer") == 0);
		CHECK(config_finish(&cfg.c) == -EINVAL);
		INFO(cfg.errors());
		CHECK(cfg.has("--steer: steer = cpu needs pin = on"));
		CHECK_FALSE(cfg.has("frameproxy.ini:2: key 'steer': steer = cpu needs pin = on"));
	}
	SECTION("a pin flag satisfies a file's steer") {
		Cfg cfg;
		REQUIRE(cfg.load(std::string("[frameproxy]\nsteer = cpu\n") + listener_a) == 0);
		REQUIRE(config_apply_override(&cfg.c, "pin", "on", "--pin") == 0);
		INFO(cfg.errors());
		CHECK(config_finish(&cfg.c) == 0);
	}
	SECTION("a steer flag can take a file's cpu back") {
		Cfg cfg;
		REQUIRE(cfg.load(std::string("[frameproxy]\nsteer = cpu\n") + listener_a) == 0);
		REQUIRE(config_apply_override(&cfg.c, "steer", "hash", "--steer") == 0);
		INFO(cfg.errors());
		CHECK(config_finish(&cfg.c) == 0);
	}
	SECTION("a pin flag turned off breaks a file's steer") {
		Cfg cfg;
		REQUIRE(cfg.load(std::string("[frameproxy]\npin = on\nsteer = cpu\n") + listener_a) == 0);
		REQUIRE(config_apply_override(&cfg.c, "pin", "0", "--pin") == 0);
		CHECK(config_finish(&cfg.c) == -EINVAL);
		INFO(cfg.errors());
		CHECK(cfg.has("frameproxy.ini:3: key 'steer': steer = cpu needs pin = on"));
	}
}

namespace {

const char *reload_base = R"INI([frameproxy]
shards = 2
admin = 127.0.0.1:9100
user = alice
[listener api]
listen = 127.0.0.1:9000
server = 127.0.0.1:9001
[listener bulk]
listen = [::1]:9500
server = 127.0.0.1:9501
)INI";

// The base with `from` replaced by `to` (which must occur once).
std::string with(const std::string &from, const std::string &to)
{
	std::string text = reload_base;
	size_t at = text.find(from);
	REQUIRE(at != std::string::npos);
	REQUIRE(text.find(from, at + 1) == std::string::npos);
	return text.replace(at, from.size(), to);
}

struct Pair {
	Cfg a, b;
	char why[128];
	Pair(const std::string &old_text, const std::string &new_text)
	{
		REQUIRE(a.load(old_text) == 0);
		REQUIRE(config_finish(&a.c) == 0);
		REQUIRE(b.load(new_text) == 0);
		INFO(b.errors());
		REQUIRE(config_finish(&b.c) == 0);
		memset(why, 'x', sizeof(why) - 1);
		why[sizeof(why) - 1] = '\0';
	}
	bool same() { return config_same_sockets(&a.c, &b.c, why, sizeof(why)); }
};

} // namespace

TEST_CASE("config: same sockets when only relay settings change", "[config]")
{
	SECTION("identical") {
		Pair p(reload_base, reload_base);
		CHECK(p.same());
		CHECK(std::string(p.why) == ""); // cleared
	}
	SECTION("servers, limits, timeouts, poller, pin, log level") {
		Pair p(reload_base,
		       with("[listener api]\n", "[listener api]\nmax_frame = 1MiB\nidle_timeout = 5s\n"
						"server = 127.0.0.1:9009\nbalance = hash\n") +
			       "[frameproxy]\nlog_level = debug\npoller = mixed\npin = on\nsteer = cpu\n"
			       "drain_timeout = 1s\n");
		CHECK(p.same());
		CHECK(std::string(p.why) == "");
	}
	SECTION("the same address written differently") {
		// Addresses compare as resolved (localhost is 127.0.0.1, as in
		// the full-file test above), not as written.
		Pair p(reload_base, with("listen = 127.0.0.1:9000", "listen = localhost:9000"));
		CHECK(p.same());
		CHECK(std::string(p.why) == "");
	}
}

TEST_CASE("config: different sockets, with the reason", "[config]")
{
	struct Case {
		std::string from, to, why;
	};
	const Case cases[] = {
		{"listen = 127.0.0.1:9000", "listen = 127.0.0.1:9001",
		 "listener api: listen address changed (restart needed)"},
		{"listen = [::1]:9500", "listen = 127.0.0.1:9500",
		 "listener bulk: listen address changed (restart needed)"},
		{"shards = 2", "shards = 4", "shards changed from 2 to 4 (restart needed)"},
		{"shards = 2", "shards = auto", "shards changed from 2 to auto (restart needed)"},
		{"admin = 127.0.0.1:9100\n", "", "admin removed (restart needed)"},
		{"admin = 127.0.0.1:9100", "admin = 127.0.0.1:9101",
		 "admin address changed (restart needed)"},
		{"user = alice", "user = bob", "user changed from alice to bob (restart needed)"},
		{"user = alice\n", "", "user changed from alice to (none) (restart needed)"},
		{"[listener bulk]", "[listener batch]", "listener bulk: removed (restart needed)"},
		{"[listener bulk]\nlisten = [::1]:9500\nserver = 127.0.0.1:9501\n",
		 "[listener bulk]\nlisten = [::1]:9500\nserver = 127.0.0.1:9501\n"
		 "[listener extra]\nlisten = 127.0.0.1:9600\nserver = 127.0.0.1:9601\n",
		 "listener extra: added (restart needed)"},
	};
	for (const Case &c : cases) {
		INFO(c.from << " -> " << c.to);
		Pair p(reload_base, with(c.from, c.to));
		CHECK_FALSE(p.same());
		CHECK(std::string(p.why) == c.why);
	}
}

TEST_CASE("config: same sockets looks both ways, and at the order", "[config]")
{
	SECTION("admin and user appearing") {
		Pair p(with("admin = 127.0.0.1:9100\n", ""), reload_base);
		CHECK_FALSE(p.same());
		CHECK(std::string(p.why) == "admin added (restart needed)");
		Pair q(with("user = alice\n", ""), reload_base);
		CHECK_FALSE(q.same());
		CHECK(std::string(q.why) == "user changed from (none) to alice (restart needed)");
	}
	SECTION("listener order") {
		Pair p(reload_base,
		       "[frameproxy]\nshards = 2\nadmin = 127.0.0.1:9100\nuser = alice\n"
		       "[listener bulk]\nlisten = [::1]:9500\nserver = 127.0.0.1:9501\n"
		       "[listener api]\nlisten = 127.0.0.1:9000\nserver = 127.0.0.1:9001\n");
		CHECK_FALSE(p.same());
		CHECK(std::string(p.why) == "listener api: moved (listener order changed; restart needed)");
	}
	SECTION("the first difference is the one reported") {
		Pair p(reload_base, with("shards = 2\nadmin = 127.0.0.1:9100\nuser = alice",
					 "shards = 3\nuser = carol"));
		CHECK_FALSE(p.same());
		CHECK(std::string(p.why) == "shards changed from 2 to 3 (restart needed)");
	}
	SECTION("why may be short or absent") {
		Pair p(reload_base, with("shards = 2", "shards = 4"));
		CHECK_FALSE(config_same_sockets(&p.a.c, &p.b.c, nullptr, 0));
		char tiny[7];
		CHECK_FALSE(config_same_sockets(&p.a.c, &p.b.c, tiny, sizeof(tiny)));
		CHECK(std::string(tiny) == "shards");
		CHECK(config_same_sockets(&p.a.c, &p.a.c, nullptr, 0));
	}
}

TEST_CASE("config: admin given as a bare port listens on loopback", "[config]")
{
	Cfg a, b, c;
	REQUIRE(config_apply_override(&a.c, "admin", ":9100", "--admin") == 0);
	CHECK(addr(a.c.admin) == "127.0.0.1:9100");
	REQUIRE(config_apply_override(&b.c, "admin", "9101", "--admin") == 0);
	CHECK(addr(b.c.admin) == "127.0.0.1:9101");
	// A written-out address is taken as it is.
	REQUIRE(config_apply_override(&c.c, "admin", "[::1]:9102", "--admin") == 0);
	CHECK(addr(c.c.admin) == "[::1]:9102");
	Cfg bad;
	CHECK(config_apply_override(&bad.c, "admin", ":port", "--admin") == -EINVAL);
}

TEST_CASE("config: access_log is on by default, per listener", "[config]")
{
	Cfg cfg;
	REQUIRE(cfg.load("[listener a]\nlisten=127.0.0.1:1\nserver=127.0.0.1:2\n"
			 "[listener b]\nlisten=127.0.0.1:3\nserver=127.0.0.1:4\n"
			 "access_log = off\n") == 0);
	INFO(cfg.errors());
	REQUIRE(config_finish(&cfg.c) == 0);
	CHECK(cfg.l("a")->access_log);
	CHECK_FALSE(cfg.l("b")->access_log);
	REQUIRE(config_apply_override(&cfg.c, "listener.a.access_log", "no",
				      "--set") == 0);
	CHECK_FALSE(cfg.l("a")->access_log);

	Cfg bad;
	CHECK(bad.load("[listener a]\nlisten=127.0.0.1:1\nserver=127.0.0.1:2\n"
		       "access_log = sometimes\n") == -EINVAL);
	INFO(bad.errors());
	CHECK(bad.has("frameproxy.ini:4: key 'access_log': invalid access_log "
		      "'sometimes' (expected on, off, true, false, yes, no, 1 or 0)"));
}

TEST_CASE("config: what errors echo cannot drive the terminal", "[config]")
{
	Cfg cfg;
	CHECK(cfg.load("[listener a]\n"                           // 1
		       "idle_timeout = \x1b]0;pwned\x07\n"         // 2
		       "\x1b[2Jkey = 1\n"                          // 3
		       "max_frame = 1\xff\n"                       // 4
		       "buffer = \xc2\x9b" "31m\n"                 // 5: C1 CSI
		       "balance = caf\xc3\xa9 \xe2\x82\xac\n"      // 6: UTF-8 stays
		       "retries = \xc0\xaf\xed\xa0\x80\n"          // 7: overlong, surrogate
		       "health_rise = 1\xe2\x82\n"                 // 8: cut short
		       "[\x1b[31mred]\n"                           // 9
		       ) == -EINVAL);
	INFO(cfg.errors());
	CHECK(cfg.has("frameproxy.ini:2: key 'idle_timeout': invalid duration '\\x1b]0;pwned\\x07' (e.g. 250ms, 30s, 2m; a unit is required)"));
	CHECK(cfg.has("frameproxy.ini:3: key '\\x1b[2Jkey': unknown key in [listener a]"));
	CHECK(cfg.has("frameproxy.ini:4: key 'max_frame': invalid size '1\\xff' (e.g. 64KiB, 16MiB, 1000B)"));
	CHECK(cfg.has("frameproxy.ini:5: key 'buffer': invalid size '\\xc2\\x9b31m' (e.g. 64KiB, 16MiB, 1000B)"));
	CHECK(cfg.has("frameproxy.ini:6: key 'balance': invalid balance 'caf\xc3\xa9 \xe2\x82\xac' (expected roundrobin, leastconn, random2 or hash)"));
	CHECK(cfg.has("frameproxy.ini:7: key 'retries': invalid number '\\xc0\\xaf\\xed\\xa0\\x80'"));
	CHECK(cfg.has("frameproxy.ini:8: key 'health_rise': invalid number '1\\xe2\\x82'"));
	CHECK(cfg.has("frameproxy.ini:9: unknown section [\\x1b[31mred] (expected [frameproxy] or [listener NAME])"));
	CHECK(cfg.c.nerrors == 8);

	// Flags and --set can hold anything, a newline too.
	CHECK(config_apply_override(&cfg.c, "max_frame", "1\n2", "--max-frame") == -EINVAL);
	CHECK(config_apply_override(&cfg.c, "frob\x1b[0m", "1", "--set") == -EINVAL);
	CHECK(config_apply_override(&cfg.c, "listener.\x1b.x", "1", nullptr) == -EINVAL);
	CHECK(cfg.has("--max-frame: invalid size '1\\x0a2' (e.g. 64KiB, 16MiB, 1000B)"));
	CHECK(cfg.has("--set: unknown key 'frob\\x1b[0m'"));
	CHECK(cfg.has("override 'listener.\\x1b.x': invalid key 'listener.\\x1b.x' (expected KEY or listener.NAME.KEY)"));

	// And so can a file name.
	Cfg named;
	CHECK(config_load_string(&named.c, "evil\x1b[8m.ini", "[listener a]\nmax_frame = 1XB\n") == -EINVAL);
	CHECK(named.has("evil\\x1b[8m.ini:2: key 'max_frame': invalid size '1XB' (e.g. 64KiB, 16MiB, 1000B)"));

	// What --check prints: nothing below 0x20 but the newlines, no DEL.
	char path[] = "/tmp/frameproxy-config-test-XXXXXX";
	int fd = mkstemp(path);
	REQUIRE(fd >= 0);
	const std::string text = "[listener a\x7f]\nlisten = \x1b[2J\x1b[H\r\n";
	REQUIRE(write(fd, text.data(), text.size()) == (ssize_t)text.size());
	close(fd);
	Cfg disk;
	CHECK(config_load_file(&disk.c, path) == -EINVAL);
	unlink(path);
	char *buf = nullptr;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	REQUIRE(out != nullptr);
	config_print_errors(&disk.c, out);
	fclose(out);
	std::string printed(buf, len);
	free(buf);
	INFO(printed);
	CHECK(printed == std::string(path) + ":1: section [listener a\\x7f]: listener name must be 1-32 of A-Z a-z 0-9 _ -\n");
	for (unsigned char ch : printed)
		CHECK(((ch >= 0x20 || ch == '\n') && ch != 0x7f));
}

TEST_CASE("config: the INI reader's corners", "[config]")
{
	SECTION("key: value, inline comments, text after a header") {
		Cfg cfg;
		REQUIRE(cfg.load("[listener a] ; the api\n"
				 "listen: 127.0.0.1:1\n"
				 "server :127.0.0.1:2 ; weight=9 is a comment\n"
				 "check_frame = ;empty, a comment\n"
				 "health_interval\t=\t1s\x0b\r\n"
				 "\x0c\n") == 0);
		INFO(cfg.errors());
		REQUIRE(config_finish(&cfg.c) == 0);
		const config_listener *a = cfg.l("a");
		REQUIRE(a != nullptr);
		CHECK(addr(a->listen) == "127.0.0.1:1");
		REQUIRE(a->nservers == 1);
		CHECK(a->servers[0].weight == 1);
		CHECK(a->has_check_frame);
		CHECK(a->check_frame_len == 0);
		CHECK(a->health_interval == 1000000000);
	}
	SECTION("a ';' is a comment only after white space; '#' only first") {
		Cfg cfg;
		CHECK(cfg.load("[listener a]\n"     // 1
			       "balance =;x\n"      // 2
			       "retries = 2;x\n"    // 3
			       "health_rise = 2 # x\n" // 4
			       "= 5\n"              // 5
			       "fail_timeout ; = 1s\n" // 6
			       "# ignored = 1\n"    // 7
			       ) == -EINVAL);
		INFO(cfg.errors());
		CHECK(cfg.has("frameproxy.ini:2: key 'balance': invalid balance ';x' (expected roundrobin, leastconn, random2 or hash)"));
		CHECK(cfg.has("frameproxy.ini:3: key 'retries': invalid number '2;x'"));
		CHECK(cfg.has("frameproxy.ini:4: key 'health_rise': invalid number '2 # x'"));
		CHECK(cfg.has("frameproxy.ini:5: key '': unknown key in [listener a]"));
		CHECK(cfg.has("frameproxy.ini:6: expected 'key = value'"));
		CHECK(cfg.c.nerrors == 5);
	}
	SECTION("the longest line: 197 characters besides the newline") {
		const std::string ok(197, ';'), too_long(198, ';');
		Cfg cfg;
		CHECK(cfg.load("\xef\xbb\xbf  " + ok + "\n" // BOM and indentation do not count
			       + too_long + "\r\n"           // 2
			       + "\t" + too_long + "\n"      // 3
			       + too_long) == -EINVAL);      // 4: no newline, one more fits
		INFO(cfg.errors());
		CHECK(cfg.has("frameproxy.ini:2: line longer than 197 characters (split long allow/deny lists over repeated keys)"));
		CHECK(cfg.has("frameproxy.ini:3: line longer than 197 characters (split long allow/deny lists over repeated keys)"));
		CHECK(cfg.c.nerrors == 2);
		Cfg last;
		CHECK(last.load(too_long + ";") == -EINVAL);
		CHECK(last.has("frameproxy.ini:1: line longer than 197 characters (split long allow/deny lists over repeated keys)"));
	}
	SECTION("a BOM only at the very start") {
		Cfg cfg;
		CHECK(cfg.load("[listener a]\n\xef\xbb\xbflisten = 127.0.0.1:1\n") == -EINVAL);
		INFO(cfg.errors());
		CHECK(cfg.has("frameproxy.ini:2: key '\xef\xbb\xbflisten': unknown key in [listener a]"));
	}
}

TEST_CASE("config: every flag sets a key, and --help fits 80 columns", "[config]")
{
	config_flag f;
	size_t n = 0;
	std::string seen;
	for (; config_flag_get(n, &f); n++) {
		INFO(f.flag << " -> " << f.key);
		CHECK(std::string(f.flag).substr(0, 2) == "--");
		CHECK(seen.find(std::string(" ") + f.flag + " ") == std::string::npos);
		seen += std::string(" ") + f.flag + " ";
		Cfg cfg;
		config_apply_override(&cfg.c, f.key, "", f.flag);
		CHECK(cfg.errors().find("unknown key") == std::string::npos);
		CHECK(f.takes_arg == (std::string(f.flag) != "--pin"));
	}
	CHECK(n == 53);
	CHECK_FALSE(config_flag_get(n, &f));

	char *buf = nullptr;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	REQUIRE(out != nullptr);
	config_print_flags(out);
	fclose(out);
	std::string help(buf, len);
	free(buf);
	INFO(help);
	CHECK(help.find("  --max-frame SIZE            largest frame payload (default 16MiB)\n") != std::string::npos);
	CHECK(help.find("  --pin                       ") != std::string::npos);
	for (size_t at = 0, nl; (nl = help.find('\n', at)) != std::string::npos; at = nl + 1)
		CHECK(nl - at < 80);
}

TEST_CASE("config: server names and the resolver keys, with no DNS asked", "[config]")
{
	Cfg cfg;
	REQUIRE(cfg.load("[frameproxy]\n"
			 "resolvers = 127.0.0.1:5353, ::1\n"
			 "resolve_min = 2s\n"
			 "resolve_max = 1m\n"
			 "resolve_required = on\n"
			 "[listener a]\n"
			 "listen = 127.0.0.1:1\n"
			 "server = db.does-not-exist.invalid:5432 weight=3\n"
			 "server = _db._tcp.service.consul srv\n"
			 "server = 10.0.0.1:80\n") == 0);
	INFO(cfg.errors());
	REQUIRE(config_finish(&cfg.c) == 0);
	CHECK(std::string(cfg.c.resolvers) == "127.0.0.1:5353,[::1]:53");
	CHECK(cfg.c.resolve_min == 2000000000);
	CHECK(cfg.c.resolve_max == 60000000000);
	CHECK(cfg.c.resolve_required);
	const config_listener *a = cfg.l("a");
	REQUIRE(a->nservers == 1);
	REQUIRE(a->nnames == 2);
	CHECK(std::string(a->names[0].host) == "db.does-not-exist.invalid");
	CHECK(a->names[0].port == 5432);
	CHECK(a->names[0].weight == 3);
	CHECK(std::string(a->names[1].host) == "_db._tcp.service.consul");
	CHECK(a->names[1].srv);
	CHECK(a->names[1].port == 0);

	Cfg def;
	REQUIRE(def.load("[listener a]\nlisten=127.0.0.1:1\nserver=a.b:1\n") == 0);
	REQUIRE(config_finish(&def.c) == 0);
	CHECK(def.c.resolvers == nullptr);
	CHECK(def.c.resolve_min == 1000000000);
	CHECK(def.c.resolve_max == 300000000000);
	CHECK_FALSE(def.c.resolve_required);

	Cfg bad;
	bad.load("[frameproxy]\n"
		 "resolvers = 10.0.0.1:99999\n"                // 2
		 "resolve_min = 10s\n"
		 "resolve_max = 5s\n"
		 "[listener a]\n"
		 "listen = 127.0.0.1:1\n"
		 "server = _x._tcp.a.b:53 srv\n"               // 7
		 "server = bad..name:80\n"                     // 8
		 "server = no-port.example\n");                // 9
	config_finish(&bad.c);
	auto in = [](const Cfg &c, const char *m) {
		return c.errors().find(m) != std::string::npos;
	};
	INFO(bad.errors());
	CHECK(in(bad, "frameproxy.ini:2: key 'resolvers': invalid resolver '10.0.0.1:99999'"));
	CHECK(in(bad, "resolve_min is longer than resolve_max"));
	CHECK(in(bad, "frameproxy.ini:7: key 'server': '_x._tcp.a.b:53': an srv name takes no port"));
	CHECK(in(bad, "frameproxy.ini:8: key 'server': invalid host name 'bad..name'"));
	CHECK(in(bad, "frameproxy.ini:9: key 'server': invalid address 'no-port.example'"));
}

TEST_CASE("config: rpc keys land in the model, with their defaults", "[config][rpc]")
{
	Cfg def;
	REQUIRE(def.load("[listener a]\nlisten=127.0.0.1:1\nserver=127.0.0.1:2\n") == 0);
	REQUIRE(config_finish(&def.c) == 0);
	const config_listener *d = def.l("a");
	CHECK(d->mode == CONFIG_MODE_STREAM);
	CHECK(d->rpc.pool_size == 2);
	CHECK(d->rpc.max_inflight == 128);
	CHECK(d->rpc.max_held == 1024 * 1024);
	CHECK(d->rpc.upstream_max_inflight == 1024);
	CHECK(d->rpc.request_timeout == 30ll * 1000 * 1000 * 1000);
	CHECK_FALSE(d->rpc.retry);
	CHECK(d->rpc.tag.len == 0);
	CHECK(d->rpc.hash_key.len == 0);

	Cfg cfg;
	REQUIRE(cfg.load("[listener a]\nlisten=127.0.0.1:1\nserver=127.0.0.1:2\n"
			 "mode = rpc\npool_size = 4\nmax_inflight = 16\nmax_held = 64KiB\n"
			 "upstream_max_inflight = 100\nrequest_timeout = 2s\nretry = on\n"
			 "rpc_tag = 4:2\nbalance = hash\nhash_key = 8:8\n") == 0);
	INFO(cfg.errors());
	REQUIRE(config_finish(&cfg.c) == 0);
	const config_listener *l = cfg.l("a");
	CHECK(l->mode == CONFIG_MODE_RPC);
	CHECK(l->rpc.pool_size == 4);
	CHECK(l->rpc.max_inflight == 16);
	CHECK(l->rpc.max_held == 64 * 1024);
	CHECK(l->rpc.upstream_max_inflight == 100);
	CHECK(l->rpc.request_timeout == 2ll * 1000 * 1000 * 1000);
	CHECK(l->rpc.retry);
	CHECK(l->rpc.tag.offset == 4);
	CHECK(l->rpc.tag.len == 2);
	CHECK(l->rpc.hash_key.offset == 8);
	CHECK(l->rpc.hash_key.len == 8);
}

TEST_CASE("config: rpc-only keys in stream mode name file, line and key",
	  "[config][rpc]")
{
	Cfg cfg;
	REQUIRE(cfg.load("[listener a]\nlisten=127.0.0.1:1\nserver=127.0.0.1:2\n"
			 "max_inflight = 16\nretry = on\n") == 0);
	CHECK(config_finish(&cfg.c) < 0);
	INFO(cfg.errors());
	CHECK(cfg.has("frameproxy.ini:4: key 'max_inflight': only for mode = rpc "
		      "([listener a] is mode = stream)"));
	CHECK(config_error_count(&cfg.c) == 1);

	Cfg flag;
	REQUIRE(flag.load("[listener a]\nlisten=127.0.0.1:1\nserver=127.0.0.1:2\n") == 0);
	config_apply_override(&flag.c, "rpc_tag", "0:4", "--rpc-tag");
	CHECK(config_finish(&flag.c) < 0);
	INFO(flag.errors());
	CHECK(flag.has("--rpc-tag: only for mode = rpc ([listener a] is mode = stream)"));
}

TEST_CASE("config: rpc value and cross-key errors", "[config][rpc]")
{
	Cfg cfg;
	CHECK(cfg.load("[listener a]\nlisten=127.0.0.1:1\nserver=127.0.0.1:2\n" // 1-3
		       "mode = both\n"                   // 4
		       "pool_size = 65\n"                // 5
		       "max_inflight = 70000\n"          // 6
		       "max_held = 0\n"                  // 7
		       "upstream_max_inflight = 0\n"     // 8
		       "request_timeout = soon\n"        // 9
		       "retry = sometimes\n"             // 10
		       "rpc_tag = 1:9\n"                 // 11
		       "hash_key = 0:300\n") < 0);       // 12
	INFO(cfg.errors());
	CHECK(cfg.has("frameproxy.ini:4: key 'mode': invalid mode 'both' (expected stream or rpc)"));
	CHECK(cfg.has("frameproxy.ini:5: key 'pool_size': '65' must be between 1 and 64"));
	CHECK(cfg.has("frameproxy.ini:6: key 'max_inflight': '70000' must be between 1 and 65536"));
	CHECK(cfg.errors().find("frameproxy.ini:7: key 'max_held': size '0' must be between") !=
	      std::string::npos);
	CHECK(cfg.has("frameproxy.ini:8: key 'upstream_max_inflight': '0' must be between 1 and 1048576"));
	CHECK(cfg.errors().find("frameproxy.ini:9: key 'request_timeout': invalid duration") !=
	      std::string::npos);
	CHECK(cfg.errors().find("frameproxy.ini:10: key 'retry': invalid retry 'sometimes'") !=
	      std::string::npos);
	CHECK(cfg.has("frameproxy.ini:11: key 'rpc_tag': invalid field '1:9' (OFFSET:LEN, LEN 1..8)"));
	CHECK(cfg.has("frameproxy.ini:12: key 'hash_key': invalid field '0:300' (OFFSET:LEN, LEN 1..256)"));

	Cfg cross;
	REQUIRE(cross.load("[listener a]\nlisten=127.0.0.1:1\nserver=127.0.0.1:2\n"
			   "mode = rpc\nmax_frame = 100\nbuffer = 1KiB\n"
			   "rpc_tag = 98:4\nhash_key = 1020:2\n") == 0);
	CHECK(config_finish(&cross.c) < 0);
	INFO(cross.errors());
	CHECK(cross.has("frameproxy.ini:1: section [listener a]: rpc_tag ends at byte 102, past max_frame"));
	CHECK(cross.has("frameproxy.ini:1: section [listener a]: hash_key ends at byte 1022, past max_frame"));
	CHECK(cross.has("frameproxy.ini:1: section [listener a]: hash_key ends at byte 1022, past buffer"));
	CHECK(cross.has("frameproxy.ini:1: section [listener a]: hash_key needs balance = hash"));
}

TEST_CASE("config: accept_proxy, accept_proxy_from, send_proxy", "[config]")
{
	Cfg cfg;
	REQUIRE(cfg.load("[listener a]\nlisten=127.0.0.1:1\nserver=127.0.0.1:2\n"
			 "accept_proxy = any\naccept_proxy_from = 10.0.0.0/8, ::1\n"
			 "send_proxy = v2\n") == 0);
	REQUIRE(config_finish(&cfg.c) == 0);
	const config_listener *l = &cfg.c.listeners[0];
	CHECK(l->accept_proxy == PROXY_HEADER_ANY);
	CHECK(l->accept_proxy_from.allow.count == 2);
	CHECK(l->send_proxy == PROXY_HEADER_V2);

	Cfg def;
	REQUIRE(def.load("[listener a]\nlisten=127.0.0.1:1\nserver=127.0.0.1:2\n") == 0);
	REQUIRE(config_finish(&def.c) == 0);
	CHECK(def.c.listeners[0].accept_proxy == PROXY_HEADER_OFF);
	CHECK(def.c.listeners[0].accept_proxy_from.allow.count == 0);
	CHECK(def.c.listeners[0].send_proxy == PROXY_HEADER_OFF);

	Cfg bad;
	CHECK(bad.load("[listener a]\nlisten=127.0.0.1:1\nserver=127.0.0.1:2\n"
		       "accept_proxy = v3\nsend_proxy = any\n"
		       "accept_proxy_from = 10.0.0.1/8\n") < 0);
	INFO(bad.errors());
	CHECK(bad.has("frameproxy.ini:4: key 'accept_proxy': invalid accept_proxy "
		      "'v3' (expected off, v1, v2 or any)"));
	CHECK(bad.has("frameproxy.ini:5: key 'send_proxy': invalid send_proxy "
		      "'any' (expected off, v1 or v2)"));
	CHECK(bad.errors().find("frameproxy.ini:6: key 'accept_proxy_from': invalid "
				"CIDR '10.0.0.1/8'") != std::string::npos);

	// A list of trusted peers with no header to trust them for.
	Cfg useless;
	REQUIRE(useless.load("[listener a]\nlisten=127.0.0.1:1\nserver=127.0.0.1:2\n"
			     "accept_proxy_from = 10.0.0.0/8\n") == 0);
	CHECK(config_finish(&useless.c) < 0);
	INFO(useless.errors());
	CHECK(useless.has("frameproxy.ini:1: section [listener a]: accept_proxy_from "
			  "is set but accept_proxy is off (no header is read)"));
}

TEST_CASE("config: send_proxy is refused in rpc mode, naming file, line and key",
	  "[config][rpc]")
{
	Cfg cfg;
	REQUIRE(cfg.load("[listener a]\nlisten=127.0.0.1:1\nserver=127.0.0.1:2\n"
			 "mode = rpc\nsend_proxy = v1\n") == 0);
	CHECK(config_finish(&cfg.c) < 0);
	INFO(cfg.errors());
	CHECK(cfg.has("frameproxy.ini:5: key 'send_proxy': not available in mode = "
		      "rpc ([listener a]): its upstream connections are shared by "
		      "many clients"));
	CHECK(config_error_count(&cfg.c) == 1);

	Cfg flag;
	REQUIRE(flag.load("[listener a]\nlisten=127.0.0.1:1\nserver=127.0.0.1:2\n"
			  "mode = rpc\n") == 0);
	config_apply_override(&flag.c, "send_proxy", "v2", "--send-proxy");
	CHECK(config_finish(&flag.c) < 0);
	INFO(flag.errors());
	CHECK(flag.errors().find("--send-proxy: not available in mode = rpc") !=
	      std::string::npos);

	// accept_proxy is fine in rpc mode, and send_proxy = off too.
	Cfg ok;
	REQUIRE(ok.load("[listener a]\nlisten=127.0.0.1:1\nserver=127.0.0.1:2\n"
			"mode = rpc\naccept_proxy = v2\nsend_proxy = off\n") == 0);
	CHECK(config_finish(&ok.c) == 0);
}
