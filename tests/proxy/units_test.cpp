// units: sizes and durations as written in the config and on the command line.
#include <catch2/catch.hpp>

#include <cerrno>
#include <cstdint>
#include <string>

#include "proxy/units.h"

static uint64_t size_of(const char *text)
{
	uint64_t v = 12345;
	int rc = units_parse_size(text, &v);
	INFO("text: " << text);
	REQUIRE(rc == 0);
	return v;
}

static int size_err(const char *text)
{
	uint64_t v = 777;
	int rc = units_parse_size(text, &v);
	CHECK(v == 777); // untouched on error
	return rc;
}

static int64_t dur_of(const char *text)
{
	int64_t v = -1;
	int rc = units_parse_duration(text, &v);
	INFO("text: " << text);
	REQUIRE(rc == 0);
	return v;
}

static int dur_err(const char *text)
{
	int64_t v = 777;
	int rc = units_parse_duration(text, &v);
	CHECK(v == 777);
	return rc;
}

TEST_CASE("sizes: IEC and SI units, case-insensitive", "[units]")
{
	CHECK(size_of("512") == 512);
	CHECK(size_of("0") == 0);
	CHECK(size_of("512B") == 512);
	CHECK(size_of("64KiB") == 64 * 1024);
	CHECK(size_of("16MiB") == 16ull << 20);
	CHECK(size_of("1GiB") == 1ull << 30);
	CHECK(size_of("2TiB") == 2ull << 40);
	CHECK(size_of("10KB") == 10000);
	CHECK(size_of("3MB") == 3000000);
	CHECK(size_of("1GB") == 1000000000);
	CHECK(size_of("1TB") == 1000000000000ull);
	CHECK(size_of("16mib") == 16ull << 20);
	CHECK(size_of("16MIB") == 16ull << 20);
	CHECK(size_of("10kb") == 10000);
	CHECK(size_of("16 MiB") == 16ull << 20);
	CHECK(size_of("007KiB") == 7 * 1024);
}

TEST_CASE("sizes: garbage, negative and overflow are told apart", "[units]")
{
	CHECK(size_err("") == -EINVAL);
	CHECK(size_err("MiB") == -EINVAL);
	CHECK(size_err("16XB") == -EINVAL);
	CHECK(size_err("16M") == -EINVAL);  // ambiguous family
	CHECK(size_err("16K") == -EINVAL);
	CHECK(size_err("1.5MiB") == -EINVAL);
	CHECK(size_err("16MiBs") == -EINVAL);
	CHECK(size_err("0x10") == -EINVAL);
	CHECK(size_err("+5") == -EINVAL);
	CHECK(size_err("-5") == -EDOM);
	CHECK(size_err("-5MiB") == -EDOM);
	CHECK(size_err("18446744073709551616") == -ERANGE);   // 2^64
	CHECK(size_err("99999999999999999999999") == -ERANGE);
	CHECK(size_err("17179869184GiB") == -ERANGE);          // 2^34 GiB = 2^64
	CHECK(size_of("18446744073709551615") == UINT64_MAX);
	CHECK(size_of("16777215TiB") == 16777215ull << 40);
	CHECK(size_err("16777216TiB") == -ERANGE);
	// Garbage wins over range so the message points at the typo.
	CHECK(size_err("99999999999999999999999XB") == -EINVAL);
}

TEST_CASE("durations: units, compound, and the bare zero", "[units]")
{
	CHECK(dur_of("0") == 0);
	CHECK(dur_of("000") == 0);
	CHECK(dur_of("0s") == 0);
	CHECK(dur_of("250ms") == 250000000);
	CHECK(dur_of("30s") == 30000000000);
	CHECK(dur_of("2m") == 120000000000);
	CHECK(dur_of("1h") == 3600000000000);
	CHECK(dur_of("500us") == 500000);
	CHECK(dur_of("500\xc2\xb5s") == 500000);
	CHECK(dur_of("7ns") == 7);
	CHECK(dur_of("1m30s") == 90000000000);
	CHECK(dur_of("1h 2m 3s") == 3723000000000);
	CHECK(dur_of("30S") == 30000000000);
	CHECK(dur_of("250MS") == 250000000);
	CHECK(dur_of("30 s") == 30000000000);
}

TEST_CASE("durations: bare numbers, garbage, negative, overflow", "[units]")
{
	CHECK(dur_err("30") == -EINVAL);   // seconds or ms? say which
	CHECK(dur_err("") == -EINVAL);
	CHECK(dur_err("s") == -EINVAL);
	CHECK(dur_err("5x") == -EINVAL);
	CHECK(dur_err("1.5s") == -EINVAL);
	CHECK(dur_err("5 seconds") == -EINVAL);
	CHECK(dur_err("1m30") == -EINVAL); // trailing number without unit
	CHECK(dur_err("-5s") == -EDOM);
	CHECK(dur_err("-0") == -EDOM);
	// int64 ns holds about 292 years = 2562047 hours.
	CHECK(dur_of("2562047h") == 2562047LL * 3600000000000LL);
	CHECK(dur_err("2562048h") == -ERANGE);
	CHECK(dur_err("9223372036854775808ns") == -ERANGE);
	CHECK(dur_of("9223372036854775807ns") == INT64_MAX);
	CHECK(dur_err("2562047h 2562047h") == -ERANGE); // sum overflows
	CHECK(dur_err("99999999999999999999999s") == -ERANGE);
}

TEST_CASE("formatting is exact and parses back", "[units]")
{
	char buf[64];
	const uint64_t sizes[] = { 0, 1, 1000, 1024, 1536, 65536, 16ull << 20,
				   (1ull << 30) + 1, 3ull << 40, UINT64_MAX };
	for (uint64_t s : sizes) {
		units_format_size(buf, sizeof(buf), s);
		uint64_t back = 0;
		INFO("formatted: " << buf);
		REQUIRE(units_parse_size(buf, &back) == 0);
		CHECK(back == s);
	}
	units_format_size(buf, sizeof(buf), 16ull << 20);
	CHECK(std::string(buf) == "16MiB");
	units_format_size(buf, sizeof(buf), 1500);
	CHECK(std::string(buf) == "1500B");

	const int64_t durs[] = { 0, 1, 1000, 1500000000, 2000000000,
				 90000000000, 3600000000000, INT64_MAX };
	for (int64_t d : durs) {
		units_format_duration(buf, sizeof(buf), d);
		int64_t back = -1;
		INFO("formatted: " << buf);
		REQUIRE(units_parse_duration(buf, &back) == 0);
		CHECK(back == d);
	}
	units_format_duration(buf, sizeof(buf), 2000000000);
	CHECK(std::string(buf) == "2s");
	units_format_duration(buf, sizeof(buf), 1500000000);
	CHECK(std::string(buf) == "1500ms");
	CHECK(std::string(units_strerror(-ERANGE)) == "out of range");
}
