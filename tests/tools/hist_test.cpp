// The latency histogram: bucket geometry, percentiles against distributions
// whose exact quantiles we compute by sorting, and the 1% precision bound.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "tools/lib/hist.h"

namespace {

std::unique_ptr<hist> make_hist()
{
	std::unique_ptr<hist> h(new hist);
	hist_init(h.get());
	return h;
}

// Exact percentile with the same rank rule as hist_percentile.
int64_t exact_percentile(std::vector<int64_t> sorted, double p)
{
	double exact = p / 100.0 * (double)sorted.size();
	size_t rank = (size_t)std::ceil(exact);
	if (rank == 0)
		rank = 1;
	return sorted[rank - 1];
}

void check_against_exact(hist *h, std::vector<int64_t> samples)
{
	for (int64_t v : samples)
		hist_record(h, v);
	std::sort(samples.begin(), samples.end());
	for (double p : {1.0, 10.0, 50.0, 90.0, 99.0, 99.9, 99.99}) {
		int64_t want = exact_percentile(samples, p);
		int64_t got = hist_percentile(h, p);
		INFO("p" << p << " want " << want << " got " << got);
		// Within one bucket of the exact sample: < 1% relative.
		CHECK(std::llabs(got - want) <= want / 100 + 1);
	}
	CHECK(hist_percentile(h, 100.0) == samples.back());
	CHECK(h->count == samples.size());
}

} // namespace

TEST_CASE("hist buckets tile the range with < 1% width", "[hist]")
{
	CHECK(hist_bucket_of(0) == 0);
	CHECK(hist_bucket_of(127) == 127);
	CHECK(hist_bucket_of(128) == 128);
	for (size_t i = 0; i + 1 < HIST_BUCKETS; i++) {
		INFO("bucket " << i);
		REQUIRE(hist_bucket_high(i) + 1 == hist_bucket_low(i + 1));
		REQUIRE(hist_bucket_of(hist_bucket_low(i)) == i);
		REQUIRE(hist_bucket_of(hist_bucket_high(i)) == i);
		int64_t width = hist_bucket_high(i) - hist_bucket_low(i) + 1;
		// Width relative to the smallest value in the bucket.
		REQUIRE((double)width <= std::max(1.0, hist_bucket_low(i) / 128.0));
	}
	// 1 us .. 60 s is inside the bucketed range.
	CHECK(hist_bucket_of(60ll * 1000000000ll) < HIST_BUCKETS - 1);
}

TEST_CASE("hist empty and single values", "[hist]")
{
	auto h = make_hist();
	CHECK(hist_percentile(h.get(), 50) == 0);
	CHECK(hist_mean(h.get()) == 0.0);
	hist_record(h.get(), 123456);
	for (double p : {0.0, 50.0, 99.9, 100.0})
		CHECK(hist_percentile(h.get(), p) == 123456);
	hist_record(h.get(), -5);  // clock oddities never go negative
	CHECK(hist_percentile(h.get(), 0) == 0);
}

TEST_CASE("hist uniform distribution 1 us .. 100 ms", "[hist]")
{
	auto h = make_hist();
	std::vector<int64_t> samples;
	for (int64_t us = 1; us <= 100000; us++)
		samples.push_back(us * 1000);
	check_against_exact(h.get(), samples);
	// Closed form for the uniform case, too.
	CHECK(std::llabs(hist_percentile(h.get(), 50) - 50000000) <= 500000);
	CHECK(std::llabs(hist_percentile(h.get(), 99) - 99000000) <= 990000);
	CHECK(hist_mean(h.get()) == Approx(50000.5 * 1000));
}

TEST_CASE("hist exponential and lognormal distributions", "[hist]")
{
	std::mt19937_64 rng(42);
	SECTION("exponential, mean 200 us") {
		std::exponential_distribution<double> d(1.0 / 200000.0);
		std::vector<int64_t> samples;
		for (int i = 0; i < 200000; i++)
			samples.push_back((int64_t)d(rng) + 1000);
		auto h = make_hist();
		check_against_exact(h.get(), samples);
	}
	SECTION("lognormal spanning microseconds to seconds") {
		std::lognormal_distribution<double> d(std::log(300000.0), 2.0);
		std::vector<int64_t> samples;
		for (int i = 0; i < 200000; i++) {
			double v = std::min(d(rng), 60e9);
			samples.push_back(std::max<int64_t>(1000, (int64_t)v));
		}
		auto h = make_hist();
		check_against_exact(h.get(), samples);
	}
}

TEST_CASE("hist merge equals recording everything in one", "[hist]")
{
	auto a = make_hist(), b = make_hist(), all = make_hist();
	for (int64_t v = 1000; v < 2000000; v += 997) {
		hist_record((v / 997) % 2 ? a.get() : b.get(), v);
		hist_record(all.get(), v);
	}
	hist_merge(a.get(), b.get());
	CHECK(a->count == all->count);
	CHECK(a->min == all->min);
	CHECK(a->max == all->max);
	for (double p : {50.0, 90.0, 99.0, 99.9})
		CHECK(hist_percentile(a.get(), p) == hist_percentile(all.get(), p));
}

TEST_CASE("hist values beyond the range keep an exact max", "[hist]")
{
	auto h = make_hist();
	hist_record(h.get(), 5000);
	int64_t huge = (int64_t)1 << 50;
	hist_record(h.get(), huge);
	CHECK(hist_percentile(h.get(), 100) == huge);
	CHECK(hist_percentile(h.get(), 99.9) == huge);
	CHECK(std::llabs(hist_percentile(h.get(), 50) - 5000) <= 50);
}
