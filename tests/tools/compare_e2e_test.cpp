// tools/compare end to end: the real script ($COMPARE) on the build it runs
// in ($BUILD_ROOT), restricted to one workload, `direct`, `epoll` and
// `rpc-epoll` (run when that frameproxy has rpc mode, else reported as
// skipped), and a shard sweep over 1 and 2 shards; then the same run
// interrupted the way Ctrl-C does it (SIGINT to its process group).
//
// The test process makes itself a child subreaper: whatever compare
// started and left running is reparented to it when compare exits, so it
// is found here (reported, then killed and reaped), shards included.
#include <catch2/catch.hpp>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include "proc.hpp"

namespace {

using tooltest::exe;
using tooltest::now_ms;

std::string slurp(const std::string &path)
{
	std::ifstream f(path, std::ios::binary);
	std::stringstream ss;
	ss << f.rdbuf();
	return ss.str();
}

bool on_path(const char *name)
{
	const char *path = std::getenv("PATH");
	std::stringstream ss(path ? path : "");
	std::string dir;
	while (std::getline(ss, dir, ':'))
		if (!dir.empty() && access((dir + "/" + name).c_str(), X_OK) == 0)
			return true;
	return false;
}

// A scratch directory, removed with everything in it.
struct TempDir {
	std::string path;
	TempDir()
	{
		const char *t = std::getenv("TMPDIR");
		std::string tmpl = std::string(t && *t ? t : "/tmp") + "/compare-test.XXXXXX";
		std::vector<char> buf(tmpl.begin(), tmpl.end());
		buf.push_back('\0');
		REQUIRE(mkdtemp(buf.data()) != nullptr);
		path = buf.data();
	}
	~TempDir()
	{
		std::string cmd = "rm -rf '" + path + "'";
		if (std::system(cmd.c_str()) != 0)
			std::fprintf(stderr, "could not remove %s\n", path.c_str());
	}
};

// tools/compare with stdout and stderr in files, in a process group of
// its own (so a "Ctrl-C" can reach the whole group); killed with its
// group when dropped unfinished.
class Compare {
public:
	Compare(const std::vector<std::string> &args, const std::string &dir)
		: out_path(dir + "/compare.out"), err_path(dir + "/compare.err")
	{
		std::vector<std::string> argv = {exe("COMPARE"), "--build",
						 exe("BUILD_ROOT")};
		argv.insert(argv.end(), args.begin(), args.end());
		std::string tmp = dir + "/tmp";
		REQUIRE(mkdir(tmp.c_str(), 0700) == 0);
		pid_ = fork();
		REQUIRE(pid_ >= 0);
		if (pid_ == 0) {
			setpgid(0, 0);
			int in = open("/dev/null", O_RDONLY);
			int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
			int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
			if (in < 0 || out < 0 || err < 0)
				_exit(126);
			dup2(in, 0);
			dup2(out, 1);
			dup2(err, 2);
			setenv("TMPDIR", tmp.c_str(), 1);
			std::vector<char *> v;
			for (const auto &a : argv)
				v.push_back(const_cast<char *>(a.c_str()));
			v.push_back(nullptr);
			execv(v[0], v.data());
			_exit(127);
		}
		setpgid(pid_, pid_);  // also here: no race with the signal below
	}
	~Compare()
	{
		if (pid_ > 0) {
			kill(-pid_, SIGKILL);
			waitpid(pid_, nullptr, 0);
		}
	}
	Compare(const Compare &) = delete;
	Compare &operator=(const Compare &) = delete;

	// Exit status (128 + N when killed by signal N), or -1 on timeout.
	int wait_exit(int timeout_ms)
	{
		int64_t deadline = now_ms() + timeout_ms;
		while (pid_ > 0) {
			int status;
			if (waitpid(pid_, &status, WNOHANG) == pid_) {
				pid_ = -1;
				return WIFEXITED(status) ? WEXITSTATUS(status)
							 : 128 + WTERMSIG(status);
			}
			if (now_ms() > deadline)
				return -1;
			usleep(20000);
		}
		return -1;
	}
	// Wait until `what` is in its stderr (or it exits, or the timeout).
	bool wait_err(const std::string &what, int timeout_ms)
	{
		int64_t deadline = now_ms() + timeout_ms;
		while (now_ms() < deadline) {
			if (slurp(err_path).find(what) != std::string::npos)
				return true;
			siginfo_t info;
			info.si_pid = 0;
			if (waitid(P_PID, (id_t)pid_, &info, WEXITED | WNOHANG | WNOWAIT) != 0 ||
			    info.si_pid != 0)
				return false;  // exited (not reaped yet)
			usleep(50000);
		}
		return false;
	}
	pid_t pid() const { return pid_; }
	std::string out() const { return slurp(out_path); }
	std::string err() const { return slurp(err_path); }

private:
	std::string out_path, err_path;
	pid_t pid_ = -1;
};

// Our children still running (compare's leftovers, reparented to us: we are
// a subreaper); each is described, then killed and reaped. Zombies are
// reaped on the way.
std::vector<std::string> leftovers()
{
	std::vector<std::string> found;
	while (waitpid(-1, nullptr, WNOHANG) > 0) {
	}
	DIR *d = opendir("/proc");
	REQUIRE(d != nullptr);
	std::vector<pid_t> pids;
	while (struct dirent *e = readdir(d)) {
		char *end;
		long pid = std::strtol(e->d_name, &end, 10);
		if (*end || pid <= 0)
			continue;
		std::string stat = slurp("/proc/" + std::string(e->d_name) + "/stat");
		size_t rp = stat.rfind(')');
		if (rp == std::string::npos || rp + 4 >= stat.size())
			continue;
		char state = stat[rp + 2];
		long ppid = std::strtol(stat.c_str() + rp + 4, nullptr, 10);
		if (ppid != (long)getpid() || state == 'Z')
			continue;
		std::string cmd = slurp("/proc/" + std::string(e->d_name) + "/cmdline");
		for (char &c : cmd)
			if (c == '\0')
				c = ' ';
		found.push_back(std::to_string(pid) + ": " + cmd);
		pids.push_back((pid_t)pid);
	}
	closedir(d);
	for (pid_t p : pids) {
		kill(p, SIGKILL);
		waitpid(p, nullptr, 0);
	}
	return found;
}

std::vector<std::string> split(const std::string &s, char sep)
{
	std::vector<std::string> v;
	std::string cur;
	for (char c : s) {
		if (c == sep) {
			v.push_back(cur);
			cur.clear();
		} else {
			cur += c;
		}
	}
	v.push_back(cur);
	return v;
}

double num(const std::string &s)
{
	if (s.empty() || s == "FAIL")
		return -1;
	return std::strtod(s.c_str(), nullptr);
}

// Whether $BUILD_ROOT's frameproxy accepts the rpc targets' settings, asked
// the way tools/compare is documented to ask it.
bool frameproxy_has_rpc()
{
	tooltest::Proc check({exe("BUILD_ROOT") + "/proxy/frameproxy", "--check",
			      "--mode", "rpc", "--pool-size", "2", "--listen",
			      "127.0.0.1:0", "--server", "127.0.0.1:9"});
	check.read_until(nullptr, 10000);
	return check.wait_exit(10000) == 0;
}

const std::vector<std::string> kTiny = {
	"--quick", "--duration", "2", "--rounds", "1", "--workloads", "small-d1",
	"--targets", "direct,epoll", "--shards", "1,2"};

}  // namespace

TEST_CASE("compare: a tiny run with the shard sweep writes CSV, summary, plots and leaves nothing running",
	  "[compare]")
{
	REQUIRE(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
	TempDir dir;
	std::string out = dir.path + "/out";
	const bool rpc = frameproxy_has_rpc();
	std::vector<std::string> args = kTiny;
	for (size_t i = 0; i + 1 < args.size(); i++)
		if (args[i] == "--targets")
			args[i + 1] = "direct,epoll,rpc-epoll";
	args.insert(args.end(), {"--idle", "100", "--out", out});
	int code;
	std::string err;
	{
		Compare run(args, dir.path);
		code = run.wait_exit(90000);
		err = run.err();
	}
	std::vector<std::string> left = leftovers();
	INFO("compare's stderr:\n" << err);
	REQUIRE(code == 0);
	for (const auto &l : left)
		FAIL_CHECK("left running: " << l);
	CHECK(left.empty());

	std::vector<std::string> lines = split(slurp(out + "/results.csv"), '\n');
	REQUIRE(lines.size() >= 2);
	// The original twelve columns first, in their order; new ones after.
	CHECK(lines[0] == "round,phase,workload,target,poller,shards,frames_per_s,"
			  "p50_us,p99_us,cpu_us_per_frame,syscalls_per_frame,noisy,"
			  "machine_cpu_us_per_frame,machine_cpu_us_per_frame_minus_direct,"
			  "upstream_connections");
	std::map<std::string, std::vector<std::string>> rows;
	for (size_t i = 1; i < lines.size(); i++) {
		if (lines[i].empty())
			continue;
		std::vector<std::string> f = split(lines[i], ',');
		REQUIRE(f.size() == 15);
		INFO("row: " << lines[i]);
		CHECK(f[0] == "1");
		CHECK(f[2] == "small-d1");
		rows[f[1] + "/" + f[3] + "/" + f[5]] = f;
	}
	std::vector<std::string> want = {"compare/direct/", "compare/epoll/1",
					 "sweep/direct/", "sweep/epoll/1",
					 "sweep/epoll/2"};
	if (rpc) {
		want.push_back("compare/rpc-epoll/1");
	} else {
		// One line says why, and the run goes on without it.
		CHECK(err.find("rpc-epoll: ") != std::string::npos);
		CHECK(err.find("has no rpc mode") != std::string::npos);
		WARN("this frameproxy has no rpc mode: rpc-epoll was checked as skipped");
	}
	CHECK(rows.size() == want.size());
	for (const auto &k : want) {
		INFO("row " << k);
		REQUIRE(rows.count(k) == 1);
		const auto &f = rows[k];
		CHECK(num(f[6]) > 0);  // frames/s
		CHECK(num(f[7]) > 0);  // p50
		CHECK(num(f[8]) >= num(f[7]));  // p99
		CHECK((f[11] == "0" || f[11] == "1"));
		CHECK(num(f[12]) > 0);  // machine CPU us/frame
		if (f[3] == "rpc-epoll") {
			// A pool of 2 for one shard and one server, however many
			// clients (small-d1: 50).
			CHECK(num(f[14]) >= 1);
			CHECK(num(f[14]) <= 2);
		} else {
			// One per client connection, through a proxy or not.
			CHECK(num(f[14]) == 50);
		}
		if (f[3] == "epoll" || f[3] == "rpc-epoll") {
			CHECK(f[4] == "epoll");
			CHECK(num(f[9]) > 0);   // shard CPU us/frame
			CHECK(num(f[10]) > 0);  // syscalls/frame
			// minus direct's of the same round: a number (of either sign)
			CHECK(!f[13].empty());
			CHECK(f[13].find_first_not_of("-0123456789.") == std::string::npos);
		} else {
			CHECK(f[9].empty());
			CHECK(f[10].empty());
			CHECK(f[13].empty());
		}
	}

	std::string summary = slurp(out + "/summary.md");
	CHECK(summary.find("## Comparison") != std::string::npos);
	CHECK(summary.find("## Shard sweep") != std::string::npos);
	CHECK(summary.find("#### small-d1") != std::string::npos);
	CHECK(summary.find("| epoll | 2 |") != std::string::npos);
	CHECK(summary.find("| machine CPU us/frame | machine CPU us/frame minus direct |"
			   " upstream connections |") != std::string::npos);
	CHECK((summary.find("| small-d1 | rpc-epoll |") != std::string::npos) == rpc);
	CHECK(summary.find("## Failures") == std::string::npos);

	std::string idle = slurp(out + "/idle.csv");
	CHECK(idle.find("\nepoll,100,") != std::string::npos);
	CHECK((idle.find("\nrpc-epoll,100,") != std::string::npos) == rpc);

	if (on_path("gnuplot")) {
		for (const char *png : {"/throughput.png", "/p99.png"}) {
			INFO(png);
			std::string data = slurp(out + png);
			CHECK(data.size() > 1000);
			CHECK(data.compare(0, 4, "\x89PNG") == 0);
		}
	} else {
		CHECK(err.find("gnuplot: not installed") != std::string::npos);
		WARN("gnuplot is not installed: the plots were not checked");
	}
}

TEST_CASE("compare: Ctrl-C stops every process it started, shards included",
	  "[compare]")
{
	REQUIRE(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
	TempDir dir;
	std::vector<std::string> args = kTiny;
	args.insert(args.end(), {"--duration", "4", "--idle", "0", "--out",
				 dir.path + "/out"});
	int code;
	std::string err;
	{
		Compare run(args, dir.path);
		// After the first run every proxy of the plan is up: the
		// comparison's, and the sweep's with 1 and 2 shards.
		bool started = run.wait_err("[1/5 ", 60000);
		INFO("compare's stderr:\n" << run.err());
		REQUIRE(started);
		REQUIRE(kill(-run.pid(), SIGINT) == 0);  // as a terminal's Ctrl-C
		code = run.wait_exit(30000);
		err = run.err();
	}
	std::vector<std::string> left = leftovers();
	INFO("compare's stderr:\n" << err);
	CHECK(code == 130);
	CHECK(err.find("interrupted by SIGINT") != std::string::npos);
	for (const auto &l : left)
		FAIL_CHECK("left running: " << l);
	CHECK(left.empty());
	// Its temp dir is gone too.
	DIR *d = opendir((dir.path + "/tmp").c_str());
	REQUIRE(d != nullptr);
	int entries = 0;
	while (struct dirent *e = readdir(d))
		if (std::strcmp(e->d_name, ".") && std::strcmp(e->d_name, ".."))
			entries++;
	closedir(d);
	CHECK(entries == 0);
}

TEST_CASE("compare: --help names the rpc targets and the upstream connections column",
	  "[compare]")
{
	tooltest::Proc help({exe("COMPARE"), "--help"});
	const std::string &out = help.read_until(nullptr, 20000);
	CHECK(help.wait_exit(10000) == 0);
	for (const char *want : {"rpc-epoll, rpc-uring, rpc-uring-batch", "--mode rpc",
				 "--pool-size 2", "upstream conns", "upstream_connections"}) {
		INFO(want);
		CHECK(out.find(want) != std::string::npos);
	}
}
