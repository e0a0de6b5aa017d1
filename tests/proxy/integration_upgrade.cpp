// Integration tests: binary upgrades (SIGUSR2, shard/upgrade.h). The
// supervisor runs the binary now at its path with --check, then starts it
// with the listening and admin sockets inherited; the new supervisor's
// shards take the old shards' connections over their handoff channels and
// the old supervisor exits. Two builds that report different versions
// ($FRAMEPROXY and $FRAMEPROXY_NEXT) are copied into the test's directory
// and renamed in turn over the one path the proxy runs from, as a package
// manager would.
#include <cstdlib>

#include "tests/proxy/harness.hpp"
#include "tests/proxy/pipeline.hpp"

using namespace itest;

namespace {

const milliseconds T5(5000);

// A private copy of each build, so the rename over the running path
// never touches the build tree.
struct Builds {
	std::string dir = tmp().path() + "/upgrade-" + std::to_string(getpid());
	std::string path = dir + "/frameproxy";
	std::string current = dir + "/frameproxy.current";
	std::string next = dir + "/frameproxy.next";

	Builds()
	{
		REQUIRE(mkdir(dir.c_str(), 0700) == 0);
		copy(binary("FRAMEPROXY"), current);
		copy(binary("FRAMEPROXY_NEXT"), next);
		install(current);
	}

	~Builds()
	{
		for (const std::string &f : {path, current, next, path + ".new",
					     dir + "/admin.sock"})
			::unlink(f.c_str());
		::rmdir(dir.c_str());
	}

	static void copy(const std::string &from, const std::string &to)
	{
		write_file(to, read_file(from));
		REQUIRE(chmod(to.c_str(), 0755) == 0);
	}

	// Replaces the file at `path` in one rename: the running binary keeps
	// its inode, the next exec finds the new one.
	void install(const std::string &from) const
	{
		copy(from, path + ".new");
		REQUIRE(rename((path + ".new").c_str(), path.c_str()) == 0);
	}

	void install_script(const std::string &body) const
	{
		write_file(path + ".new", "#!/bin/sh\n" + body + "\n");
		REQUIRE(chmod((path + ".new").c_str(), 0755) == 0);
		REQUIRE(rename((path + ".new").c_str(), path.c_str()) == 0);
	}
};

// The version string a build prints for --version ("frameproxy X").
std::string version_of(const std::string &exe)
{
	Process p({exe, "--version"}, "version");
	REQUIRE(p.wait_exit(T5));
	std::string out = p.out();
	const std::string prefix = "frameproxy ";
	REQUIRE(out.compare(0, prefix.size(), prefix) == 0);
	return out.substr(prefix.size(), out.find('\n') - prefix.size());
}

bool stats_report(uint16_t admin, pid_t pid, const std::string &version)
{
	std::string stats = http_get(admin, "/stats");
	return stats.find("\"pid\":" + std::to_string(pid) + ",") != std::string::npos &&
	       stats.find("\"version\":\"" + version + "\"") != std::string::npos;
}




} // namespace

TEST_CASE("upgrade: ten binary upgrades in a row under verified load cut nothing",
	  "[upgrade]")
{
	Builds builds;
	const std::string versions[2] = {version_of(builds.current),
					 version_of(builds.next)};
	REQUIRE(versions[0] != versions[1]);
	Echo echo;
	Proxy proxy({"--server", echo.addr(), "--shards", "2", "--admin", "127.0.0.1:0",
		     "--idle-timeout", "60s"}, "default", builds.path);
	REQUIRE(proxy.wait_ready());
	const uint16_t admin = proxy.admin_port();
	REQUIRE(admin != 0);
	REQUIRE(stats_report(admin, proxy.proc().pid(), versions[0]));
	Pipeline load(proxy.port(), 100, 8, 512);
	REQUIRE(load.stats().connected == 100);
	std::vector<Conn> idle = idle_conns(proxy.port(), 100);

	const size_t upgrades = 10;
	std::vector<pid_t> old_pids;
	for (size_t i = 1; i <= upgrades; i++) {
		const std::string &want = versions[i % 2];
		builds.install(i % 2 ? builds.next : builds.current);
		auto t0 = Clock::now();
		load.run([&] { return ms_since(t0) > 300; });
		pid_t old = proxy.supervisor_pid();
		old_pids.push_back(old);
		REQUIRE(::kill(old, SIGUSR2) == 0);
		// The load keeps running through the whole upgrade.
		t0 = Clock::now();
		load.run([&] {
			return count_records(proxy, "upgrade complete") == i || ms_since(t0) > 20000;
		});
		INFO("upgrade " << i << "\n" << proxy.log_tail(30));
		REQUIRE(count_records(proxy, "upgrade complete") == i);
		pid_t now = proxy.supervisor_pid();
		CHECK(now != old);
		t0 = Clock::now();
		load.run([&] { return Process::ended_of(old) || ms_since(t0) > 20000; });
		CHECK(Process::ended_of(old));
		CHECK(stats_report(admin, now, want));
		CHECK(roundtrips_ok(idle, "after upgrade " + std::to_string(i)) == idle.size());
	}
	load.finish(milliseconds(10000));
	const PipelineStats &st = load.stats();
	INFO(load.summary() << "\n" << proxy.log_tail(30));
	CHECK(load.live() == 100);
	CHECK(st.resets == 0);
	CHECK(st.eofs == 0);
	CHECK(st.errors == 0);
	CHECK(st.partial == 0);
	CHECK(st.mismatched == 0);
	CHECK(st.replied == st.sent);
	CHECK(st.sent > 100 * 8 * upgrades);
	CHECK(count_records(proxy, "upgrade failed: keeping the running binary") == 0);
	CHECK(count_records(proxy, "shard died") == 0);
	// Every old supervisor and every old shard is gone: of the shards
	// logged, only the two last ones still run.
	for (pid_t pid : old_pids)
		CHECK(Process::ended_of(pid));
	std::map<unsigned, pid_t> serving = proxy.shard_pids();
	REQUIRE(serving.size() == 2);
	for (auto &r : proxy.records("shard started")) {
		pid_t pid = (pid_t)atoi(r.get("pid").c_str());
		bool current = pid == serving[0] || pid == serving[1];
		CHECK(wait_until([&] { return Process::ended_of(pid) != current; }, T5));
	}
	// Nothing was refused while the sockets changed hands.
	Conn fresh = Conn::connect(proxy.port());
	REQUIRE(fresh.valid());
	CHECK(fresh.roundtrip("after ten upgrades"));
	// Each connection is counted once, when it really ends.
	load.close_all();
	idle.clear();
	fresh.close();
	CHECK(proxy.wait_access_count(201, milliseconds(10000)));
	std::this_thread::sleep_for(milliseconds(300));
	CHECK(count_records(proxy, "access") == 201);
	for (auto &r : proxy.records("access"))
		CHECK(r.get("reason") == "client_eof");
}

TEST_CASE("upgrade: a binary whose --check fails is not started; the running one serves on",
	  "[upgrade]")
{
	Builds builds;
	Echo echo;
	Proxy proxy({"--server", echo.addr(), "--shards", "2", "--admin", "127.0.0.1:0"},
		    "default", builds.path);
	REQUIRE(proxy.wait_ready());
	std::vector<Conn> conns = idle_conns(proxy.port(), 10);
	const std::map<unsigned, pid_t> shards = proxy.shard_pids();

	builds.install_script("echo 'frameproxy: no such key' >&2; exit 3");
	proxy.proc().signal(SIGUSR2);
	LogRecord failed;
	REQUIRE(proxy.wait_record([](const LogRecord &r) {
		return r.is("msg", "upgrade failed: keeping the running binary");
	}, T5, &failed));
	CHECK(failed.get("reason").find("--check failed") != std::string::npos);
	CHECK(failed.get("reason").find("(status 3)") != std::string::npos);
	// What --check printed reaches the operator: its stderr is ours.
	CHECK(proxy.proc().err().find("frameproxy: no such key") != std::string::npos);
	CHECK(failed.get("binary") == builds.path);
	CHECK(proxy.proc().running());
	CHECK(proxy.shard_pids() == shards);
	CHECK(count_records(proxy, "upgrading: new supervisor started") == 0);
	CHECK(roundtrips_ok(conns, "after the failed check") == conns.size());
	Conn fresh = Conn::connect(proxy.port());
	REQUIRE(fresh.valid());
	CHECK(fresh.roundtrip("new connection"));

	// A good binary afterwards upgrades as usual.
	builds.install(builds.next);
	proxy.proc().signal(SIGUSR2);
	CHECK(proxy.wait_record([](const LogRecord &r) {
		return r.is("msg", "upgrade complete");
	}, milliseconds(20000)));
	CHECK(proxy.proc().wait_exit(milliseconds(20000)));
	CHECK(roundtrips_ok(conns, "after the upgrade") == conns.size());
	CHECK(stats_report(proxy.admin_port(), proxy.supervisor_pid(),
			   version_of(builds.next)));
}

TEST_CASE("upgrade: a new binary that never gets ready is killed at upgrade_timeout, "
	  "one that exits is noticed at once", "[upgrade]")
{
	Builds builds;
	Echo echo;
	Proxy proxy({"--server", echo.addr(), "--shards", "2", "--upgrade-timeout", "1s"},
		    "default", builds.path);
	REQUIRE(proxy.wait_ready());
	std::vector<Conn> conns = idle_conns(proxy.port(), 10);
	const std::map<unsigned, pid_t> shards = proxy.shard_pids();

	// Passes --check, then hangs instead of starting shards.
	builds.install_script("for a; do [ \"$a\" = --check ] && exit 0; done; exec sleep 60");
	auto t0 = Clock::now();
	proxy.proc().signal(SIGUSR2);
	LogRecord started, failed;
	REQUIRE(proxy.wait_record([](const LogRecord &r) {
		return r.is("msg", "upgrading: new supervisor started");
	}, T5, &started));
	REQUIRE(proxy.wait_record([](const LogRecord &r) {
		return r.is("msg", "upgrade failed: keeping the running binary");
	}, T5, &failed));
	CHECK(failed.get("reason") == "the new shards were not ready within upgrade_timeout");
	CHECK(ms_since(t0) >= 900);
	CHECK(ms_since(t0) < 4000);
	pid_t hung = (pid_t)atoi(started.get("pid").c_str());
	REQUIRE(hung > 0);
	CHECK(wait_until([&] { return Process::ended_of(hung); }, T5));
	CHECK(proxy.proc().running());
	CHECK(proxy.shard_pids() == shards);
	CHECK(roundtrips_ok(conns, "after the timeout") == conns.size());

	// Passes --check, then exits at once: no wait for the timeout.
	builds.install_script("for a; do [ \"$a\" = --check ] && exit 0; done; exit 7");
	t0 = Clock::now();
	proxy.proc().signal(SIGUSR2);
	REQUIRE(proxy.wait_record([](const LogRecord &r) {
		return r.is("msg", "upgrade failed: keeping the running binary") &&
		       r.get("reason").find("the new supervisor exited") != std::string::npos;
	}, T5, &failed));
	CHECK(failed.get("reason") == "the new supervisor exited (status 7)");
	CHECK(ms_since(t0) < 900);
	CHECK(proxy.proc().running());
	CHECK(proxy.shard_pids() == shards);
	CHECK(roundtrips_ok(conns, "after the exit") == conns.size());
}

TEST_CASE("upgrade: frameproxy ctl upgrade (POST /upgrade) upgrades; one under way "
	  "refuses the next", "[upgrade]")
{
	Builds builds;
	Echo echo;
	const std::string sock = builds.dir + "/admin.sock";
	Proxy proxy({"--server", echo.addr(), "--shards", "2", "--admin", "unix:" + sock},
		    "default", builds.path);
	REQUIRE(proxy.wait_ready());
	std::vector<Conn> conns = idle_conns(proxy.port(), 10);
	builds.install(builds.next);
	const pid_t old = proxy.proc().pid();

	Process first({binary("FRAMEPROXY"), "ctl", "--admin", "unix:" + sock, "upgrade"},
		      "ctl-upgrade");
	REQUIRE(first.wait_exit(T5));
	INFO(first.out() << first.err());
	CHECK(first.exit_code() == 0);
	CHECK(first.out().find("upgrading") != std::string::npos);
	// The check is still running (or the new one starting): refused.
	Process second({binary("FRAMEPROXY"), "ctl", "--admin", "unix:" + sock, "upgrade"},
		       "ctl-upgrade-again");
	REQUIRE(second.wait_exit(T5));
	INFO(second.out() << second.err());
	CHECK(second.exit_code() == 1);
	CHECK(second.err().find("409") != std::string::npos);
	CHECK(second.err().find("upgrade") != std::string::npos);

	REQUIRE(proxy.wait_record([](const LogRecord &r) {
		return r.is("msg", "upgrade complete");
	}, milliseconds(20000)));
	CHECK(wait_until([&] { return Process::ended_of(old); }, milliseconds(20000)));
	CHECK(roundtrips_ok(conns, "after ctl upgrade") == conns.size());
	// The new supervisor answers on the same socket, and writes are still
	// allowed there (it is a Unix socket).
	Process stats({binary("FRAMEPROXY"), "ctl", "--admin", "unix:" + sock, "--json", "stats"},
		      "ctl-stats");
	REQUIRE(stats.wait_exit(T5));
	CHECK(stats.exit_code() == 0);
	CHECK(stats.out().find("\"version\":\"" + version_of(builds.next) + "\"") !=
	      std::string::npos);
	Process reload({binary("FRAMEPROXY"), "ctl", "--admin", "unix:" + sock, "reload"},
		       "ctl-reload");
	REQUIRE(reload.wait_exit(T5));
	CHECK(reload.exit_code() == 0);
}
