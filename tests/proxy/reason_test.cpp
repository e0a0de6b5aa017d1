// Close reasons: the names access lines and metrics labels use, in the order
// of the per-listener counters (dashboards and the integration tests read
// them by name, the slot by index).
#include <catch2/catch.hpp>

#include <set>
#include <string>

extern "C" {
#include "proxy/reason.h"
}

TEST_CASE("reason: names in counter order", "[reason]")
{
	const char *const want[] = {
		"client_eof", "upstream_eof", "oversize", "upstream_oversize",
		"idle_timeout", "frame_timeout", "connect_failed", "no_upstream",
		"denied", "client_limit", "client_reset", "upstream_reset",
		"client_truncated", "upstream_truncated", "drain", "shutdown",
		"no_memory", "internal_error", "upstream_lost", "request_timeout",
		"bad_request", "bad_proxy_header", "tls_handshake",
		"upstream_tls_handshake", "queue_timeout", "overload",
	};

	REQUIRE(REASON_COUNT == sizeof(want) / sizeof(want[0]));
	for (int i = 0; i < REASON_COUNT; i++) {
		INFO("reason " << i);
		CHECK(std::string(reason_name((reason_code)i)) == want[i]);
	}
	CHECK(std::string(reason_name(REASON_client_eof)) == "client_eof");
	CHECK(std::string(reason_name(REASON_internal_error)) == "internal_error");
}

TEST_CASE("reason: names are distinct, out of range is unknown", "[reason]")
{
	std::set<std::string> seen;

	for (int i = 0; i < REASON_COUNT; i++)
		seen.insert(reason_name((reason_code)i));
	CHECK(seen.size() == (size_t)REASON_COUNT);
	CHECK(std::string(reason_name(REASON_NONE)) == "unknown");
	CHECK(std::string(reason_name((reason_code)(REASON_COUNT + 5))) == "unknown");
}
