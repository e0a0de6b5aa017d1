// Stacks: pooling and reuse, giving touched pages back, and the guard page.
#include "helpers.hpp"

#include <cstring>
#include <string>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

TEST_CASE("freed stacks are reused from the pool", "[stack]")
{
	SchedScope scope;
	Bodies b;
	b.spawn([] {});
	sched_run();
	CHECK(stats().stacks_mapped == 1);
	CHECK(stats().stacks_reused == 0);
	for (int i = 0; i < 10; i++) {
		b.spawn([] {});
		sched_run();
	}
	CHECK(stats().stacks_mapped == 1);
	CHECK(stats().stacks_reused == 10);
}

TEST_CASE("only default-size stacks are pooled, up to stack_pool_max", "[stack]")
{
	sched_config cfg = {};
	cfg.stack_pool_max = 2;
	SchedScope scope(&cfg);
	Bodies b;
	for (int i = 0; i < 5; i++)
		b.spawn([] {});
	b.spawn([] {}, "big", 256 * 1024);
	sched_run();
	CHECK(stats().stacks_mapped == 6);
	for (int i = 0; i < 5; i++)
		b.spawn([] {});
	b.spawn([] {}, "big", 256 * 1024);
	sched_run();
	CHECK(stats().stacks_reused == 2);
	CHECK(stats().stacks_mapped == 6 + 4);
}

TEST_CASE("a configured stack size is usable", "[stack]")
{
	sched_config cfg = {};
	cfg.stack_size = 256 * 1024;
	SchedScope scope(&cfg);
	Bodies b;
	size_t used = 0;
	b.spawn([&] {
		volatile char big[160 * 1024];
		std::memset((char *)big, 1, sizeof(big));
		used = sizeof(big) - (big[sizeof(big) - 1] == 1 ? 0 : 1);
	});
	sched_run();
	CHECK(used == 160 * 1024);
}

TEST_CASE("a pooled stack keeps no pages below its top page", "[stack]")
{
	SchedScope scope;
	Bodies b;
	uintptr_t lo = 0, hi = 0;  // addresses only: the frame is gone by then
	b.spawn([&] {
		volatile char buf[32 * 1024];
		std::memset((char *)buf, 7, sizeof(buf));
		lo = (uintptr_t)buf;
		hi = lo + sizeof(buf);
	});
	sched_run();
	REQUIRE(lo != 0);
	const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	// Whole pages inside the buffer, all below the top page of the stack.
	char *start = (char *)((lo + page - 1) & ~(page - 1));
	char *end = (char *)(hi & ~(page - 1));
	REQUIRE(end > start);
	std::vector<unsigned char> vec((end - start) / page);
	REQUIRE(mincore(start, end - start, vec.data()) == 0);  // still mapped: pooled
	size_t resident = 0;
	for (unsigned char v : vec)
		resident += v & 1;
	CHECK(resident == 0);
	CHECK(stats().stacks_mapped == 1);
}

namespace {

volatile int depth_limit = 1 << 30;

int recurse(int n)
{
	volatile char frame[256];
	frame[0] = (char)n;
	if (n >= depth_limit)
		return frame[0];
	return recurse(n + 1) + frame[0];
}

// Runs in a fork()ed child: overflow a small stack on purpose.
[[noreturn]] void overflow_child(int err_fd)
{
	dup2(err_fd, STDERR_FILENO);
	alarm(20);
	signal(SIGSEGV, SIG_DFL);  // drop Catch's handler: the child is not a test run
	if (sched_init(nullptr) != 0)
		_exit(3);
	coro_opts opts = {};
	opts.name = "deep-recursion";
	opts.stack_size = 16 * 1024;
	coro_spawn([](void *) { recurse(0); }, nullptr, &opts);
	sched_run();
	_exit(0);  // not reached if the guard page works
}

}  // namespace

TEST_CASE("overflowing into the guard page names the coroutine and ends the process", "[stack]")
{
	int fds[2];
	REQUIRE(pipe(fds) == 0);
	fflush(nullptr);
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		overflow_child(fds[1]);
	}
	close(fds[1]);
	std::string err;
	char buf[512];
	ssize_t n;
	while ((n = read(fds[0], buf, sizeof(buf))) > 0)
		err.append(buf, (size_t)n);
	close(fds[0]);
	int status = 0;
	REQUIRE(waitpid(pid, &status, 0) == pid);
	INFO("child stderr: " << err);
	CHECK(err.find("coroutine stack overflow") != std::string::npos);
	CHECK(err.find("deep-recursion") != std::string::npos);
	CHECK_FALSE((WIFEXITED(status) && WEXITSTATUS(status) == 0));
	CHECK(WIFSIGNALED(status));
	if (WIFSIGNALED(status))
		CHECK(WTERMSIG(status) == SIGSEGV);
}

TEST_CASE("a SIGSEGV outside any guard page keeps its default action", "[stack]")
{
	fflush(nullptr);
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		int null_fd = open("/dev/null", O_WRONLY);
		dup2(null_fd, STDERR_FILENO);
		alarm(20);
		signal(SIGSEGV, SIG_DFL);
		if (sched_init(nullptr) != 0)
			_exit(3);
		raise(SIGSEGV);  // si_addr is not in a guard page
		_exit(0);
	}
	int status = 0;
	REQUIRE(waitpid(pid, &status, 0) == pid);
	CHECK(WIFSIGNALED(status));
	if (WIFSIGNALED(status))
		CHECK(WTERMSIG(status) == SIGSEGV);
}
