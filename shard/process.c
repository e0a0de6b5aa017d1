#include "shard/process.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "shard/shard.h"

uint32_t shard_cpu_count(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n > 0 ? (uint32_t)n : 1;
}

long process_raise_nofile(void)
{
	struct rlimit lim;

	if (getrlimit(RLIMIT_NOFILE, &lim) < 0)
		return -errno;
	if (lim.rlim_cur == lim.rlim_max)
		return (long)lim.rlim_cur;
	lim.rlim_cur = lim.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &lim) < 0)
		return -errno;
	return (long)lim.rlim_cur;
}

int process_drop_to(const char *user, char *why, size_t why_len)
{
	struct passwd pw, *found = NULL;
	char buf[4096];
	int rc = getpwnam_r(user, &pw, buf, sizeof(buf), &found);

	if (rc != 0 || !found) {
		snprintf(why, why_len, "no such user");
		return rc ? -rc : -ENOENT;
	}
	/* Already that user (a binary upgrade's new supervisor runs as the
	 * user the old one dropped to): nothing to drop, and no right to. */
	if (getuid() == pw.pw_uid && geteuid() == pw.pw_uid &&
	    getgid() == pw.pw_gid && pw.pw_uid != 0)
		return 0;
	/* Groups first: after setuid we may no longer change them. */
	if (initgroups(user, pw.pw_gid) < 0 || setgid(pw.pw_gid) < 0 ||
	    setuid(pw.pw_uid) < 0) {
		rc = -errno;
		snprintf(why, why_len, "%s", strerror(errno));
		return rc;
	}
	/* A process that could get root back has not dropped anything. */
	if (pw.pw_uid != 0 && setuid(0) == 0) {
		snprintf(why, why_len, "could regain root after setuid");
		return -EPERM;
	}
	return 0;
}

int process_pin(int cpu)
{
	cpu_set_t allowed, one;

	if (sched_getaffinity(0, sizeof(allowed), &allowed) < 0)
		return -errno;
	int count = CPU_COUNT(&allowed);
	if (count <= 0)
		return -EINVAL;
	/* The cpu-th allowed CPU, so a restricted cpuset still spreads. */
	int want = cpu % count, seen = 0;
	for (int c = 0; c < CPU_SETSIZE; c++) {
		if (!CPU_ISSET(c, &allowed))
			continue;
		if (seen++ != want)
			continue;
		CPU_ZERO(&one);
		CPU_SET(c, &one);
		return sched_setaffinity(0, sizeof(one), &one) < 0 ? -errno : 0;
	}
	return -EINVAL;
}

void process_notify(const char *state)
{
	if (getenv("NOTIFY_SOCKET"))
		sd_notify(0, state);
}
