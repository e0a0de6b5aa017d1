// A Catch2 listener for the integration tests: when an assertion fails, print
// the end of every live child's output (the proxy's log says why), once per
// test case, and keep the temp directory with the full logs.
#define CATCH_CONFIG_EXTERNAL_INTERFACES
#include "tests/proxy/harness.hpp"

namespace {

struct ChildOutputOnFailure : Catch::TestEventListenerBase {
	using TestEventListenerBase::TestEventListenerBase;

	bool dumped = false;

	void testCaseStarting(Catch::TestCaseInfo const &info) override
	{
		dumped = false;
		// Ignoring SIGPIPE: a proxy that closes on us must show up as an
		// error code, not kill the test binary.
		signal(SIGPIPE, SIG_IGN);
		fprintf(stderr, "[itest] %s (poller %s)\n", info.name.c_str(),
			itest::poller().c_str());
	}

	bool assertionEnded(Catch::AssertionStats const &stats) override
	{
		if (stats.assertionResult.isOk())
			return true;
		itest::any_failure() = true;
		if (dumped)
			return true;
		dumped = true;
		std::lock_guard<std::mutex> lock(itest::registry_mutex());
		for (auto *p : itest::registry()) {
			fprintf(stderr, "----- %s (pid %d): %s\n", p->name().c_str(),
				(int)p->pid(), p->command_line().c_str());
			fprintf(stderr, "----- stderr tail (%s)\n%s", p->err_path().c_str(),
				itest::tail(p->err(), 25).c_str());
			fprintf(stderr, "----- stdout tail (%s)\n%s", p->out_path().c_str(),
				itest::tail(p->out(), 5).c_str());
		}
		return true;
	}
};

} // namespace

CATCH_REGISTER_LISTENER(ChildOutputOnFailure)
