/*
 * The supervisor: forks the shards, replaces the ones that die, rolls them
 * over on reload, drains them on stop and serves the admin endpoint.
 *
 * It runs a plain poll(2) loop, not the coroutine scheduler: it forks, and a
 * child must start from a clean process, not from the middle of a parent's
 * coroutine. Nothing here touches a shard's traffic; the supervisor only
 * sends signals and reads the metrics mapping.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/signalfd.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shard/admin.h"
#include "shard/servers.h"
#include "sched/sched.h"
#include "shard/metrics.h"
#include "shard/process.h"
#include "shard/shard.h"
#include "shard/sockets.h"
#include "shard/strbuf.h"
#include "shard/upgrade.h"

#define MS (1000 * 1000LL)
#define SEC (1000 * MS)
/* While a shard is starting, how often to look whether it is ready. */
#define SUPERVISOR_READY_TICK_NS (2 * MS)
/* Two crashes of one shard closer than this count as repeated. */
#define SUPERVISOR_CRASH_WINDOW_NS (10 * SEC)
#define SUPERVISOR_BACKOFF_FIRST_NS (100 * MS)
#define SUPERVISOR_BACKOFF_MAX_NS (10 * SEC)
/* Beyond its own deadline, how long a stopping shard gets before SIGKILL. */
#define SUPERVISOR_KILL_GRACE_NS (2 * SEC)
#define SUPERVISOR_MAX_POLLFDS 80

/* Binary upgrade, as this supervisor sees it (shard/upgrade.h). */
typedef enum upgrade_phase {
	UPGRADE_NONE,
	UPGRADE_CHECKING,    /* old: the new binary's --check runs */
	UPGRADE_STARTING,    /* old: the new supervisor starts its shards */
	UPGRADE_INHERITED,   /* new: started by an upgrade, not yet confirmed */
} upgrade_phase;

typedef enum proc_role {
	PROC_SERVING,    /* the current shard of its seat */
	PROC_INCOMING,   /* reload: started, not yet serving */
	PROC_RETIRING,   /* reload: replaced, finishing its connections */
	PROC_STOPPING,   /* SIGTERM sent */
} proc_role;

typedef struct shard_proc {
	pid_t pid;
	uint32_t index;
	uint32_t generation;
	proc_role role;
	shard_slot *slot;
	int64_t started_ns;
	int64_t kill_at;             /* 0 = none */
	int control;                 /* our end of its control socket, or -1 */
	/* Incoming with handoff: the other end of its channel, for the shard
	 * it replaces (sent when that one retires), or -1. */
	int handoff_peer;
} shard_proc;

/* What the supervisor knows about one shard index across its processes. */
typedef struct shard_seat {
	int64_t respawn_at;          /* 0 = nothing scheduled */
	uint32_t crashes;            /* consecutive, within the window */
	int64_t last_crash_ns;
} shard_seat;

typedef struct supervisor {
	shard_settings settings;     /* updated by reload */
	const shard_ops *ops;
	void *ctx;
	uint32_t shards;
	shard_sockets sockets;
	shard_metrics metrics;
	shard_health_board *health;  /* shared active-health results */
	shard_name_board *names;     /* shared server-name answers */
	shard_server_board *servers; /* servers' admin state (POST /servers) */
	admin_server admin;
	bool admin_open;
	int signal_fd;
	shard_proc *procs;
	uint32_t proc_count;
	uint32_t proc_cap;
	shard_seat *seats;
	uint32_t generation;
	bool ready_once;             /* every shard was READY once */
	bool rolling;
	uint32_t roll_next;          /* seat the reload replaces next */
	bool reload_again;           /* SIGHUP during a roll */
	bool upgrade_wanted;         /* POST /upgrade: run_due starts it */
	bool stopping;
	int exit_code;
	uint64_t reloads;
	uint64_t restarts;
	int64_t started_unix_ns;
	char exe[PATH_MAX];          /* the binary at start ("": unknown) */
	upgrade_phase upgrade;
	pid_t upgrade_pid;           /* old: --check or the new supervisor */
	int64_t upgrade_deadline;
	int upgrade_sock;            /* to the other supervisor, or -1 */
	bool upgrade_ready_sent;     /* new: READY is with the old one */
	pid_t upgrade_old_pid;       /* new: the supervisor it replaces */
	int inherited_admin;         /* new: the old admin socket, or -1 */
	bool handed_over;            /* old: the new supervisor has taken over */
} supervisor;

static void sup_log(supervisor *sup, shard_log_level level, const char *msg,
		    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static servers_view servers_of(supervisor *sup);

/* Values go to ops->log as they are: quoting them is the writer's job. */
static void sup_log(supervisor *sup, shard_log_level level, const char *msg,
		    const char *fmt, ...)
{
	va_list ap;

	if (!sup->ops->log)
		return;
	va_start(ap, fmt);
	sup->ops->log(sup->ctx, level, msg, fmt, ap);
	va_end(ap);
}

/* --- processes ------------------------------------------------------------ */

static shard_proc *proc_add(supervisor *sup)
{
	if (sup->proc_count == sup->proc_cap) {
		uint32_t cap = sup->proc_cap ? sup->proc_cap * 2 : 8;
		shard_proc *grown = realloc(sup->procs, cap * sizeof(*grown));
		if (!grown)
			return NULL;
		sup->procs = grown;
		sup->proc_cap = cap;
	}
	shard_proc *p = &sup->procs[sup->proc_count++];
	*p = (shard_proc){.control = -1, .handoff_peer = -1};
	return p;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void proc_remove(supervisor *sup, shard_proc *p)
{
	close_fd(&p->control);
	close_fd(&p->handoff_peer);
	*p = sup->procs[--sup->proc_count];
}

static shard_proc *proc_find(supervisor *sup, pid_t pid)
{
	for (uint32_t i = 0; i < sup->proc_count; i++)
		if (sup->procs[i].pid == pid)
			return &sup->procs[i];
	return NULL;
}

static shard_proc *proc_in_role(supervisor *sup, uint32_t index, proc_role role)
{
	for (uint32_t i = 0; i < sup->proc_count; i++)
		if (sup->procs[i].index == index && sup->procs[i].role == role)
			return &sup->procs[i];
	return NULL;
}

static poll_kind poller_for(const supervisor *sup, uint32_t index)
{
	return sup->ops->poller ? sup->ops->poller(sup->ctx, index) : POLL_AUTO;
}

static int pinned_cpu(const supervisor *sup, uint32_t index)
{
	return sup->settings.pin ? (int)(index % shard_cpu_count()) : -1;
}

/* In the child, before the application runs: a clean signal state, no
 * supervisor fds, its own CPU. */
static void child_prepare(supervisor *sup, uint32_t index, pid_t parent)
{
	sigset_t all;

	/* If the supervisor is killed outright, drain rather than linger. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != parent)
		_exit(1);
	/* The terminal's ^C and SIGHUP reach the supervisor, which decides;
	 * shards only take orders (SIGTERM, SIGUSR1) from it. */
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGCHLD, SIG_DFL);
	sigemptyset(&all);
	sigaddset(&all, SIGCHLD);
	sigaddset(&all, SIGINT);
	sigaddset(&all, SIGHUP);
	sigprocmask(SIG_UNBLOCK, &all, NULL);
	close(sup->signal_fd);
	close_fd(&sup->upgrade_sock);
	/* The other shards' control sockets and channels are not its own. */
	for (uint32_t i = 0; i < sup->proc_count; i++) {
		close_fd(&sup->procs[i].control);
		close_fd(&sup->procs[i].handoff_peer);
	}
	if (sup->admin_open)
		admin_close(&sup->admin);
	sockets_close_others(&sup->sockets, index);
	int cpu = pinned_cpu(sup, index);
	if (cpu >= 0)
		process_pin(cpu);
}

/* The child's ends of its control socket and handoff channel. */
typedef struct child_fds {
	int control;
	int handoff;
} child_fds;

static void child_run(supervisor *sup, uint32_t index, shard_slot *slot,
		      pid_t parent, child_fds fds)
{
	child_prepare(sup, index, parent);
	slot->pid = getpid();
	shard_context context = {
		.index = index,
		.shards = sup->shards,
		.generation = sup->generation,
		.poller = poller_for(sup, index),
		.listen_fds = sockets_of(&sup->sockets, index),
		.listener_count = sup->sockets.listener_count,
		.slot = slot,
		.health = sup->health,
		.servers = sup->servers,
		.control_fd = fds.control,
		.handoff_fd = fds.handoff,
		.names = sup->names,
	};
	/* exit(), not _exit(): LeakSanitizer and stdio run at exit. */
	exit(sup->ops->run(sup->ctx, &context));
}

/*
 * Its control socket, and with `handoff` the channel between it and the
 * shard it replaces: one end each, ours kept in `p`. Datagrams, so that a
 * message and its fds arrive together and apart from the next. 0 or -errno.
 */
static int child_sockets(shard_proc *p, bool handoff, child_fds *child)
{
	int ctl[2], ho[2] = {-1, -1};

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctl) < 0)
		return -errno;
	if (handoff && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ho) < 0) {
		int err = -errno;
		close(ctl[0]);
		close(ctl[1]);
		return err;
	}
	p->control = ctl[0];
	p->handoff_peer = ho[0];
	*child = (child_fds){.control = ctl[1], .handoff = ho[1]};
	return 0;
}

static shard_proc *spawn(supervisor *sup, uint32_t index, proc_role role)
{
	shard_slot *slot = metrics_claim(&sup->metrics, index, sup->generation);
	shard_proc *p = slot ? proc_add(sup) : NULL;
	child_fds fds = {-1, -1};
	/* A channel only to a shard that will retire for this one: the one
	 * it replaces on a reload, or the old supervisor's after an upgrade. */
	bool replaces = (role == PROC_INCOMING && proc_in_role(sup, index, PROC_SERVING)) ||
			(sup->upgrade == UPGRADE_INHERITED && !sup->ready_once);
	bool handoff = sup->settings.handoff && replaces;

	if (!p) {
		if (slot)
			metrics_release(&sup->metrics, slot);
		sup_log(sup, SHARD_LOG_ERROR, "cannot start shard", "shard=%u error=%s",
			index, slot ? "out of memory" : "no free metrics slot");
		return NULL;
	}
	int rc = child_sockets(p, handoff, &fds);
	if (rc < 0) {
		proc_remove(sup, p);
		metrics_release(&sup->metrics, slot);
		sup_log(sup, SHARD_LOG_ERROR, "cannot start shard", "shard=%u error=%s",
			index, strerror(-rc));
		return NULL;
	}
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid == 0) {
		close_fd(&p->control);
		close_fd(&p->handoff_peer);
		child_run(sup, index, slot, parent, fds);
	}
	close_fd(&fds.control);
	close_fd(&fds.handoff);
	if (pid < 0) {
		int err = errno;
		proc_remove(sup, p);
		metrics_release(&sup->metrics, slot);
		sup_log(sup, SHARD_LOG_ERROR, "cannot start shard", "shard=%u error=%s",
			index, strerror(err));
		return NULL;
	}
	*p = (shard_proc){.pid = pid, .index = index, .generation = sup->generation,
			  .role = role, .slot = slot, .started_ns = sched_clock_ns(CLOCK_MONOTONIC),
			  .control = p->control, .handoff_peer = p->handoff_peer};
	sup_log(sup, SHARD_LOG_INFO, "shard started",
		"shard=%u pid=%d generation=%u poller=%s cpu=%d", index, (int)pid,
		sup->generation, poll_kind_name(poller_for(sup, index)),
		pinned_cpu(sup, index));
	return p;
}

static void proc_signal(supervisor *sup, shard_proc *p, int sig, proc_role role,
			int64_t grace_ns)
{
	p->role = role;
	p->kill_at = sched_clock_ns(CLOCK_MONOTONIC) + grace_ns;
	if (kill(p->pid, sig) < 0 && errno != ESRCH)
		sup_log(sup, SHARD_LOG_WARN, "cannot signal shard", "shard=%u pid=%d error=%s",
			p->index, (int)p->pid, strerror(errno));
}

/* --- deaths and respawns ------------------------------------------------- */

/* How a shard ended, as a key ("signal" or "status") and its value. */
static const char *describe_status(int status, char *value, size_t len)
{
	if (WIFSIGNALED(status)) {
		const char *name = sigabbrev_np(WTERMSIG(status));
		snprintf(value, len, "%s", name ? name : "?");
		return "signal";
	}
	snprintf(value, len, "%d", WEXITSTATUS(status));
	return "status";
}

static int64_t crash_backoff(shard_seat *seat, int64_t now)
{
	if (seat->crashes && now - seat->last_crash_ns < SUPERVISOR_CRASH_WINDOW_NS)
		seat->crashes++;
	else
		seat->crashes = 1;
	seat->last_crash_ns = now;
	if (seat->crashes == 1)
		return 0; /* first crash: at once, the accept queue is waiting */
	int64_t delay = SUPERVISOR_BACKOFF_FIRST_NS;
	for (uint32_t i = 2; i < seat->crashes && delay < SUPERVISOR_BACKOFF_MAX_NS; i++)
		delay *= 2;
	return delay < SUPERVISOR_BACKOFF_MAX_NS ? delay : SUPERVISOR_BACKOFF_MAX_NS;
}

static void supervisor_stop(supervisor *sup, const char *why, int exit_code);

static void roll_abort(supervisor *sup, uint32_t index)
{
	sup_log(sup, SHARD_LOG_ERROR, "reload stopped: new shard failed to start",
		"shard=%u", index);
	sup->rolling = false;
	process_notify("READY=1");
}

static void shard_died(supervisor *sup, shard_proc *p, int status)
{
	char how[48];
	const char *ended;
	proc_role role = p->role;
	uint32_t index = p->index;
	int pid = (int)p->pid;      /* p is reused once removed */
	bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;

	ended = describe_status(status, how, sizeof(how));
	metrics_release(&sup->metrics, p->slot);
	if (role == PROC_RETIRING || role == PROC_STOPPING) {
		sup_log(sup, SHARD_LOG_INFO, "shard exited", "shard=%u pid=%d %s=%s",
			index, pid, ended, how);
		if (!clean && role == PROC_STOPPING)
			sup->exit_code = 1;
		proc_remove(sup, p);
		return;
	}
	proc_remove(sup, p);
	if (!sup->ready_once) {
		sup_log(sup, SHARD_LOG_ERROR, "shard failed to start", "shard=%u %s=%s",
			index, ended, how);
		supervisor_stop(sup, "startup", 1);
		return;
	}
	if (role == PROC_INCOMING) {
		roll_abort(sup, index);
		return;
	}
	shard_seat *seat = &sup->seats[index];
	int64_t delay = crash_backoff(seat, sched_clock_ns(CLOCK_MONOTONIC));
	sup->restarts++;
	sup_log(sup, SHARD_LOG_WARN, "shard died", "shard=%u pid=%d %s=%s respawn_in=%lldms crashes=%u",
		index, pid, ended, how, (long long)(delay / MS), seat->crashes);
	seat->respawn_at = sched_clock_ns(CLOCK_MONOTONIC) + delay;
}

static void upgrade_child_exited(supervisor *sup, int status);
static void upgrade_send_ready(supervisor *sup);

static void reap(supervisor *sup)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		shard_proc *p = proc_find(sup, pid);
		if (p)
			shard_died(sup, p, status);
		else if (pid == sup->upgrade_pid)
			upgrade_child_exited(sup, status);
	}
}

static void respawn_due(supervisor *sup, int64_t now)
{
	for (uint32_t i = 0; i < sup->shards && !sup->stopping && !sup->handed_over; i++) {
		shard_seat *seat = &sup->seats[i];
		if (!seat->respawn_at || now < seat->respawn_at)
			continue;
		seat->respawn_at = 0;
		if (!spawn(sup, i, PROC_SERVING))
			seat->respawn_at = now + SUPERVISOR_BACKOFF_FIRST_NS;
	}
}

/* --- start, stop, reload ------------------------------------------------- */

static bool all_serving_ready(supervisor *sup)
{
	for (uint32_t i = 0; i < sup->shards; i++) {
		shard_proc *p = proc_in_role(sup, i, PROC_SERVING);
		if (!p || shard_slot_get_state(p->slot) != SHARD_STATE_READY)
			return false;
	}
	return true;
}

static void check_started(supervisor *sup)
{
	if (sup->ready_once || sup->stopping || !all_serving_ready(sup))
		return;
	sup->ready_once = true;
	sup_log(sup, SHARD_LOG_INFO, "ready", "shards=%u pid=%d", sup->shards,
		(int)getpid());
	/* After an upgrade, READY=1 waits until the old one has handed over
	 * and made us systemd's main process. */
	if (sup->upgrade == UPGRADE_INHERITED)
		upgrade_send_ready(sup);
	else
		process_notify("READY=1");
}

static void supervisor_stop(supervisor *sup, const char *why, int exit_code)
{
	if (sup->stopping)
		return;
	sup->stopping = true;
	sup->rolling = false;
	if (exit_code)
		sup->exit_code = exit_code;
	/* Once handed over, systemd's main process is the new supervisor. */
	if (!sup->handed_over)
		process_notify("STOPPING=1");
	sup_log(sup, SHARD_LOG_INFO, "stopping", "reason=%s shards=%u", why,
		sup->proc_count);
	int64_t grace = sup->settings.drain_timeout_ns + SUPERVISOR_KILL_GRACE_NS;
	for (uint32_t i = 0; i < sup->proc_count; i++) {
		shard_proc *p = &sup->procs[i];
		/* A retiring shard is already on its own deadline; SIGTERM turns
		 * it into a drain now. */
		proc_signal(sup, p, SIGTERM, PROC_STOPPING, grace);
	}
}

static void kill_all(supervisor *sup)
{
	for (uint32_t i = 0; i < sup->proc_count; i++)
		kill(sup->procs[i].pid, SIGKILL);
}

/* The retiring shard's end of the channel its successor got at fork
 * (`peer`): sent before the retire signal, so the shard finds it when the
 * signal comes. Without it the old shard retires as without handoff. */
static void pass_channel(supervisor *sup, shard_proc *old, int peer)
{
	if (peer < 0 || old->control < 0)
		return;
	int rc = shard_send_channel(old->control, peer);
	if (rc < 0)
		sup_log(sup, SHARD_LOG_WARN, "cannot pass the handoff channel",
			"shard=%u error=%s", old->index, strerror(-rc));
}

static void roll_step(supervisor *sup)
{
	if (!sup->rolling || sup->stopping)
		return;
	uint32_t index = sup->roll_next;
	shard_proc *incoming = proc_in_role(sup, index, PROC_INCOMING);
	if (!incoming) {
		if (!spawn(sup, index, PROC_INCOMING))
			roll_abort(sup, index);
		return;
	}
	if (shard_slot_get_state(incoming->slot) != SHARD_STATE_READY)
		return;
	shard_proc *old = proc_in_role(sup, index, PROC_SERVING);
	/* Re-find: proc pointers move when the array is compacted. */
	incoming->role = PROC_SERVING;
	if (old && old != incoming) {
		/* Retiring shards serve what they have until drain_timeout,
		 * then drain; the grace covers both. */
		int64_t grace = 2 * sup->settings.drain_timeout_ns + SUPERVISOR_KILL_GRACE_NS;
		pass_channel(sup, old, incoming->handoff_peer);
		proc_signal(sup, old, SHARD_RETIRE_SIGNAL, PROC_RETIRING, grace);
	}
	close_fd(&incoming->handoff_peer);
	if (++sup->roll_next < sup->shards)
		return;
	sup->rolling = false;
	sup_log(sup, SHARD_LOG_INFO, "reload complete", "generation=%u", sup->generation);
	/* A server the new configuration dropped loses its admin state. */
	servers_view servers = servers_of(sup);
	servers_prune(&servers);
	process_notify("READY=1");
}

static void reload(supervisor *sup)
{
	char why[256] = "";
	shard_settings next = sup->settings;

	if (sup->stopping)
		return;
	if (sup->handed_over || sup->upgrade != UPGRADE_NONE) {
		sup_log(sup, SHARD_LOG_WARN, "reload ignored: an upgrade is under way",
			"pid=%d", (int)getpid());
		return;
	}
	if (sup->rolling) {
		sup->reload_again = true;
		return;
	}
	process_notify("RELOADING=1");
	if (sup->ops->reload(sup->ctx, &next, why, sizeof(why)) < 0) {
		sup_log(sup, SHARD_LOG_ERROR, "reload failed: keeping the running configuration",
			"reason=%s", why);
		process_notify("READY=1");
		return;
	}
	/* Sockets, admin and user stay: the reload hook refuses changes. */
	sup->settings.drain_timeout_ns = next.drain_timeout_ns;
	sup->settings.pin = next.pin;
	sup->settings.handoff = next.handoff;
	/* The token file is read again with the rest: a new token takes
	 * effect now, with no restart (the check there refused a bad one). */
	sup->settings.admin_token = next.admin_token;
	if (sup->admin_open &&
	    admin_set_token(&sup->admin, next.admin_token) < 0)
		sup_log(sup, SHARD_LOG_WARN, "admin token too long: writes over "
			"TCP refused", "max=%d", ADMIN_MAX_TOKEN - 1);
	sup->generation++;
	sup->reloads++;
	sup->rolling = true;
	sup->roll_next = 0;
	sup_log(sup, SHARD_LOG_INFO, "reloading", "generation=%u shards=%u",
		sup->generation, sup->shards);
	roll_step(sup);
}

static void enforce_kill_deadlines(supervisor *sup, int64_t now)
{
	for (uint32_t i = 0; i < sup->proc_count; i++) {
		shard_proc *p = &sup->procs[i];
		if (!p->kill_at || now < p->kill_at)
			continue;
		sup_log(sup, SHARD_LOG_WARN, "shard did not exit in time: killing",
			"shard=%u pid=%d", p->index, (int)p->pid);
		kill(p->pid, SIGKILL);
		p->kill_at = 0;
		if (p->role == PROC_STOPPING)
			sup->exit_code = 1;
	}
}

/* --- binary upgrade (shard/upgrade.h) -------------------------------------- */

static const char *upgrade_refusal(const supervisor *sup)
{
	if (!sup->settings.argv || !sup->exe[0])
		return "the binary's path is unknown";
	if (sup->stopping)
		return "stopping";
	if (sup->handed_over)
		return "already handed over to a new supervisor";
	if (sup->upgrade != UPGRADE_NONE)
		return "an upgrade is under way";
	if (sup->rolling)
		return "a reload is under way";
	if (!sup->ready_once)
		return "not started yet";
	return NULL;
}

/* Back to serving as before: the new process (if any) is killed, and its
 * exit is then reaped as an unknown child. */
static void upgrade_fail(supervisor *sup, const char *reason)
{
	if (sup->upgrade == UPGRADE_STARTING && sup->upgrade_pid > 0)
		kill(sup->upgrade_pid, SIGKILL);
	if (sup->upgrade == UPGRADE_CHECKING && sup->upgrade_pid > 0)
		kill(sup->upgrade_pid, SIGKILL);
	sup->upgrade = UPGRADE_NONE;
	sup->upgrade_pid = 0;
	close_fd(&sup->upgrade_sock);
	sup_log(sup, SHARD_LOG_ERROR, "upgrade failed: keeping the running binary",
		"reason=%s binary=%s", reason, sup->exe);
	process_notify("READY=1");
}

static void upgrade_begin(supervisor *sup)
{
	const char *refusal = upgrade_refusal(sup);

	if (refusal) {
		sup_log(sup, SHARD_LOG_WARN, "upgrade refused", "reason=%s", refusal);
		return;
	}
	pid_t pid = upgrade_spawn_check(sup->exe, sup->settings.argv);
	if (pid < 0) {
		sup_log(sup, SHARD_LOG_ERROR, "upgrade failed: keeping the running binary",
			"reason=%s error=%s binary=%s", "cannot run --check",
			strerror((int)-pid), sup->exe);
		return;
	}
	process_notify("RELOADING=1");
	sup->upgrade = UPGRADE_CHECKING;
	sup->upgrade_pid = pid;
	sup->upgrade_deadline = sched_clock_ns(CLOCK_MONOTONIC) +
				sup->settings.upgrade_timeout_ns;
	sup_log(sup, SHARD_LOG_INFO, "upgrading: checking the new binary",
		"binary=%s pid=%d", sup->exe, (int)pid);
}

/* The fds the new supervisor inherits: its end of the peer socket, the
 * admin socket and every listening socket. */
static size_t upgrade_keep(const supervisor *sup, int peer, int *keep)
{
	size_t n = 0, count = (size_t)sup->shards * sup->sockets.listener_count;

	keep[n++] = peer;
	if (sup->admin_open)
		keep[n++] = sup->admin.listen_fd;
	for (size_t i = 0; i < count; i++)
		keep[n++] = sup->sockets.fds[i];
	return n;
}

static void upgrade_exec(supervisor *sup)
{
	size_t count = (size_t)sup->shards * sup->sockets.listener_count;
	size_t env_len = 128 + 12 * count;
	char *env = malloc(env_len);
	int *keep = malloc((count + 2) * sizeof(int));
	int pair[2] = {-1, -1};

	if (!env || !keep ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0 ||
	    upgrade_env_format(env, env_len, pair[1],
			       sup->admin_open ? sup->admin.listen_fd : -1,
			       &sup->sockets) < 0) {
		free(env);
		free(keep);
		close_fd(&pair[0]);
		close_fd(&pair[1]);
		upgrade_fail(sup, "cannot set up the handover");
		return;
	}
	pid_t pid = upgrade_spawn_new(sup->exe, sup->settings.argv, env, keep,
				      upgrade_keep(sup, pair[1], keep));
	free(env);
	free(keep);
	close_fd(&pair[1]);
	sup->upgrade_sock = pair[0];
	if (pid < 0) {
		upgrade_fail(sup, "cannot fork");
		return;
	}
	sup->upgrade = UPGRADE_STARTING;
	sup->upgrade_pid = pid;
	sup->upgrade_deadline = sched_clock_ns(CLOCK_MONOTONIC) +
				sup->settings.upgrade_timeout_ns;
	sup_log(sup, SHARD_LOG_INFO, "upgrading: new supervisor started",
		"pid=%d binary=%s", (int)pid, sup->exe);
}

static void upgrade_child_exited(supervisor *sup, int status)
{
	char how[48], reason[96];
	const char *ended = describe_status(status, how, sizeof(how));
	bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;

	if (sup->upgrade == UPGRADE_CHECKING && ok) {
		sup->upgrade_pid = 0;
		upgrade_exec(sup);
		return;
	}
	snprintf(reason, sizeof(reason), "%s (%s %s)",
		 sup->upgrade == UPGRADE_CHECKING ? "the new binary's --check failed"
						  : "the new supervisor exited",
		 ended, how);
	sup->upgrade_pid = 0;
	upgrade_fail(sup, reason);
}

/* Old side: the new supervisor's shards are up; `peers` are their
 * handoff channels by index (none with handoff off). Our shards retire to
 * them as on a reload, and we go when they have. */
static void upgrade_commit(supervisor *sup, int *peers, size_t n)
{
	pid_t next = sup->upgrade_pid;
	int64_t grace = 2 * sup->settings.drain_timeout_ns + SUPERVISOR_KILL_GRACE_NS;

	for (uint32_t i = 0; i < sup->shards; i++) {
		sup->seats[i].respawn_at = 0;
		shard_proc *old = proc_in_role(sup, i, PROC_SERVING);
		if (!old)
			continue;
		pass_channel(sup, old, i < n ? peers[i] : -1);
		proc_signal(sup, old, SHARD_RETIRE_SIGNAL, PROC_RETIRING, grace);
	}
	for (size_t i = 0; i < n; i++)
		close(peers[i]);
	if (sup->admin_open)
		admin_close(&sup->admin);
	sup->admin_open = false;
	int rc = upgrade_send(sup->upgrade_sock, UPGRADE_COMMITTED, NULL, 0);
	close_fd(&sup->upgrade_sock);
	sup->handed_over = true;
	sup->upgrade = UPGRADE_NONE;
	sup->upgrade_pid = 0;
	char state[32];
	snprintf(state, sizeof(state), "MAINPID=%d", (int)next);
	process_notify(state);
	sup_log(sup, SHARD_LOG_INFO, "upgrade: handed over to the new supervisor",
		"pid=%d channels=%zu confirmed=%s", (int)next, n,
		rc == 0 ? "yes" : strerror(-rc));
}

/* Old side: a message from the new supervisor. */
static void upgrade_old_readable(supervisor *sup)
{
	int peers[UPGRADE_MAX_SHARDS];
	size_t n;
	int kind = upgrade_recv(sup->upgrade_sock, peers, UPGRADE_MAX_SHARDS, &n);

	if (kind == -EAGAIN)
		return;
	if (kind == UPGRADE_READY && n <= sup->shards) {
		upgrade_commit(sup, peers, n);
		return;
	}
	for (size_t i = 0; i < n; i++)
		close(peers[i]);
	/* A closed socket is most often a new supervisor that failed and
	 * exits: its exit status, reaped next, says why; upgrade_timeout
	 * bounds the wait for one that closed it and lives on. */
	if (kind == 0) {
		close_fd(&sup->upgrade_sock);
		return;
	}
	upgrade_fail(sup, "the new supervisor sent a message this one does not know");
}

/* New side: every shard is up; offer their channels to the old one. */
static void upgrade_send_ready(supervisor *sup)
{
	int peers[UPGRADE_MAX_SHARDS];
	size_t n = 0;

	for (uint32_t i = 0; i < sup->shards && i < UPGRADE_MAX_SHARDS; i++) {
		shard_proc *p = proc_in_role(sup, i, PROC_SERVING);
		if (p && p->handoff_peer >= 0)
			peers[n++] = p->handoff_peer;
	}
	/* All or none: channels go by index. */
	if (n != sup->shards)
		n = 0;
	int rc = upgrade_send(sup->upgrade_sock, UPGRADE_READY, peers, n);
	for (uint32_t i = 0; i < sup->proc_count; i++)
		close_fd(&sup->procs[i].handoff_peer);
	sup->upgrade_ready_sent = true;
	if (rc < 0)
		sup_log(sup, SHARD_LOG_ERROR, "cannot tell the old supervisor we are ready",
			"pid=%d error=%s", (int)sup->upgrade_old_pid, strerror(-rc));
}

/* New side: the old supervisor handed over (or went away). */
static void upgrade_new_readable(supervisor *sup)
{
	int fds[1];
	size_t n;
	int kind = upgrade_recv(sup->upgrade_sock, fds, 1, &n);

	if (kind == -EAGAIN)
		return;
	for (size_t i = 0; i < n; i++)
		close(fds[i]);
	close_fd(&sup->upgrade_sock);
	sup->upgrade = UPGRADE_NONE;
	if (kind != UPGRADE_COMMITTED) {
		/* Nobody will retire into our shards: close their channels,
		 * or they would wait on them. */
		for (uint32_t i = 0; i < sup->proc_count; i++)
			close_fd(&sup->procs[i].handoff_peer);
		sup_log(sup, SHARD_LOG_WARN, "the old supervisor went away before handing over",
			"old_pid=%d", (int)sup->upgrade_old_pid);
		return;
	}
	char state[48];
	snprintf(state, sizeof(state), "MAINPID=%d\nREADY=1", (int)getpid());
	process_notify(state);
	sup_log(sup, SHARD_LOG_INFO, "upgrade complete", "pid=%d old_pid=%d version=%s",
		(int)getpid(), (int)sup->upgrade_old_pid,
		sup->settings.version ? sup->settings.version : "unknown");
}

static void upgrade_readable(supervisor *sup)
{
	if (sup->upgrade == UPGRADE_STARTING)
		upgrade_old_readable(sup);
	else if (sup->upgrade == UPGRADE_INHERITED)
		upgrade_new_readable(sup);
}

static void upgrade_due(supervisor *sup, int64_t now)
{
	bool waiting = sup->upgrade == UPGRADE_CHECKING || sup->upgrade == UPGRADE_STARTING;

	if (waiting && now >= sup->upgrade_deadline)
		upgrade_fail(sup, sup->upgrade == UPGRADE_CHECKING ?
			     "--check did not finish within upgrade_timeout" :
			     "the new shards were not ready within upgrade_timeout");
}

/* --- signals ------------------------------------------------------------- */

static int signals_open(supervisor *sup)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SHARD_RETIRE_SIGNAL);
	sigaddset(&set, SHARD_UPGRADE_SIGNAL);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	signal(SIGPIPE, SIG_IGN);
	sup->signal_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	return sup->signal_fd < 0 ? -errno : 0;
}

static void on_stop_signal(supervisor *sup, int signo)
{
	const char *name = sigabbrev_np(signo);

	if (!sup->stopping) {
		supervisor_stop(sup, name, 0);
		return;
	}
	sup_log(sup, SHARD_LOG_WARN, "second signal: exiting now", "signal=%s", name);
	kill_all(sup);
	sup->exit_code = 1;
}

static void signals_read(supervisor *sup)
{
	struct signalfd_siginfo info;

	/* signalfd hands out lower signal numbers first: SIGTERM before
	 * SIGCHLD. A shard that died before the stop is a crash, not a shard
	 * that failed to drain, so reap first. */
	reap(sup);
	while (read(sup->signal_fd, &info, sizeof(info)) == (ssize_t)sizeof(info)) {
		switch (info.ssi_signo) {
		case SIGCHLD:
			reap(sup);
			break;
		case SIGHUP:
			reload(sup);
			break;
		case SHARD_UPGRADE_SIGNAL:
			upgrade_begin(sup);
			break;
		case SIGTERM:
		case SIGINT:
			on_stop_signal(sup, (int)info.ssi_signo);
			break;
		default:
			break;
		}
	}
	reap(sup); /* SIGCHLDs coalesce: look anyway */
}

/* --- admin ---------------------------------------------------------------- */

static void view_fill(supervisor *sup, metrics_view *view)
{
	*view = (metrics_view){
		.shards = sup->shards,
		.app = sup->settings.metrics,
		.pid = getpid(),
		.started_unix_ns = sup->started_unix_ns,
		.reloads = sup->reloads,
		.restarts = sup->restarts,
		.version = sup->settings.version,
	};
}

static servers_view servers_of(supervisor *sup)
{
	return (servers_view){ .metrics = &sup->metrics, .app = sup->settings.metrics,
			       .generation = sup->generation, .board = sup->servers };
}

static int admin_servers(supervisor *sup, const admin_request *req, strbuf *body)
{
	servers_view v = servers_of(sup);

	if (req->route == ADMIN_SERVERS)
		return servers_render(&v, body);
	return servers_post(&v, req, body);
}

/* As SIGUSR2, from run_due; refused at once (409, the reason) when an
 * upgrade could not start now. */
static int admin_upgrade(supervisor *sup, strbuf *body,
			 const char **content_type)
{
	const char *refusal = upgrade_refusal(sup);

	*content_type = "text/plain; charset=utf-8";
	if (refusal) {
		strbuf_printf(body, "upgrade refused: %s\n", refusal);
		return 409;
	}
	sup->upgrade_wanted = true;
	return strbuf_printf(body, "upgrading: binary %s\n", sup->exe);
}

static int admin_render(void *arg, const admin_request *req, strbuf *body,
			const char **content_type)
{
	supervisor *sup = arg;
	metrics_view view;

	view_fill(sup, &view);
	switch (req->route) {
	case ADMIN_METRICS:
		*content_type = "text/plain; version=0.0.4; charset=utf-8";
		return metrics_render_prometheus(&sup->metrics, &view, body);
	case ADMIN_SERVERS:
	case ADMIN_SERVER_SET:
		return admin_servers(sup, req, body);
	case ADMIN_RELOAD:
		/* As SIGHUP: run_due starts it (or after the roll under way). */
		sup->reload_again = true;
		*content_type = "text/plain; charset=utf-8";
		return strbuf_puts(body, "reloading\n");
	case ADMIN_UPGRADE:
		return admin_upgrade(sup, body, content_type);
	default:
		break;
	}
	*content_type = "application/json";
	return metrics_render_json(&sup->metrics, &view, body);
}

static void say_cannot_listen(supervisor *sup, const char *listener,
			      const struct sockaddr *addr, int err)
{
	char where[POLL_ADDR_STRLEN];

	poll_addr_format(addr, where, sizeof(where));
	sup_log(sup, SHARD_LOG_ERROR, "cannot listen", "listener=%s address=%s error=%s",
		listener, where, strerror(err));
}

static int admin_start(supervisor *sup)
{
	char where[POLL_ADDR_STRLEN + sizeof(struct sockaddr_un)];

	int inherited = sup->inherited_admin;

	sup->inherited_admin = -1;
	if (!sup->settings.has_admin) {
		if (inherited >= 0)
			close(inherited);
		return 0;
	}
	int rc = inherited >= 0 ? admin_adopt(&sup->admin, inherited) :
		 admin_open(&sup->admin, (struct sockaddr *)&sup->settings.admin,
			    sup->settings.admin_len, sup->settings.admin_mode);
	if (rc == 0)
		rc = admin_set_token(&sup->admin, sup->settings.admin_token);
	if (rc < 0) {
		say_cannot_listen(sup, "admin", (struct sockaddr *)&sup->settings.admin, -rc);
		return rc;
	}
	sup->admin_open = true;
	poll_addr_format((struct sockaddr *)&sup->settings.admin, where, sizeof(where));
	struct sockaddr_storage bound;
	socklen_t len = sizeof(bound);
	if (admin_bound(&sup->admin, (struct sockaddr *)&bound, &len) == 0)
		poll_addr_format((struct sockaddr *)&bound, where, sizeof(where));
	if (sup->settings.admin.ss_family == AF_UNIX)
		snprintf(where, sizeof(where), "unix:%s",
			 ((struct sockaddr_un *)&sup->settings.admin)->sun_path);
	sup_log(sup, SHARD_LOG_INFO, "admin listening", "address=%s", where);
	return 0;
}

/* --- the loop ------------------------------------------------------------- */

static bool anyone_starting(supervisor *sup)
{
	for (uint32_t i = 0; i < sup->proc_count; i++)
		if (shard_slot_get_state(sup->procs[i].slot) == SHARD_STATE_STARTING)
			return true;
	return false;
}

static int64_t next_wakeup(supervisor *sup, int64_t now)
{
	int64_t next = now + SEC;

	if (anyone_starting(sup) || sup->rolling)
		next = now + SUPERVISOR_READY_TICK_NS;
	for (uint32_t i = 0; i < sup->shards; i++)
		if (sup->seats[i].respawn_at && sup->seats[i].respawn_at < next)
			next = sup->seats[i].respawn_at;
	for (uint32_t i = 0; i < sup->proc_count; i++)
		if (sup->procs[i].kill_at && sup->procs[i].kill_at < next)
			next = sup->procs[i].kill_at;
	bool upgrading = sup->upgrade == UPGRADE_CHECKING || sup->upgrade == UPGRADE_STARTING;
	if (upgrading && sup->upgrade_deadline < next)
		next = sup->upgrade_deadline;
	if (sup->admin_open) {
		int64_t admin_next = admin_next_deadline(&sup->admin);
		if (admin_next && admin_next < next)
			next = admin_next;
	}
	return next;
}

/* Everything that is due: run before computing the next wakeup, so a shard
 * that became ready meanwhile is seen now, not a tick later. */
static void run_due(supervisor *sup)
{
	int64_t now = sched_clock_ns(CLOCK_MONOTONIC);

	respawn_due(sup, now);
	enforce_kill_deadlines(sup, now);
	upgrade_due(sup, now);
	check_started(sup);
	roll_step(sup);
	if (!sup->rolling && sup->reload_again) {
		sup->reload_again = false;
		reload(sup);
	}
	if (sup->upgrade_wanted) {
		sup->upgrade_wanted = false;
		upgrade_begin(sup);
	}
}

/* Stopped, or handed over to a new supervisor, and every shard gone. */
static bool supervisor_done(const supervisor *sup)
{
	return (sup->stopping || sup->handed_over) && sup->proc_count == 0;
}

static void loop_once(supervisor *sup)
{
	struct pollfd fds[SUPERVISOR_MAX_POLLFDS];
	size_t n = 2;

	run_due(sup);
	if (supervisor_done(sup))
		return;
	fds[0] = (struct pollfd){.fd = sup->signal_fd, .events = POLLIN};
	/* poll ignores a negative fd: no upgrade, no entry. */
	fds[1] = (struct pollfd){.fd = sup->upgrade_sock, .events = POLLIN};
	if (sup->admin_open)
		n += admin_pollfds(&sup->admin, fds + 2, SUPERVISOR_MAX_POLLFDS - 2);
	int64_t now = sched_clock_ns(CLOCK_MONOTONIC);
	int64_t wait_ns = next_wakeup(sup, now) - now;
	int timeout_ms = wait_ns <= 0 ? 0 : (int)((wait_ns + MS - 1) / MS);
	if (poll(fds, n, timeout_ms) < 0 && errno != EINTR)
		return;
	if (fds[0].revents)
		signals_read(sup);
	if (fds[1].revents && sup->upgrade_sock >= 0)
		upgrade_readable(sup);
	if (sup->admin_open)
		admin_service(&sup->admin, fds + 2, n - 2, sched_clock_ns(CLOCK_MONOTONIC), admin_render, sup);
}

/* Started by an upgrade: the old supervisor's sockets, checked against
 * our configuration. 0 or -errno (logged). */
static int sockets_inherit(supervisor *sup, upgrade_inherited *from)
{
	char why[256];
	int rc = sockets_adopt(&sup->sockets, sup->settings.listeners,
			       sup->settings.listener_count, sup->shards, from->fds,
			       from->shards, from->listeners, why, sizeof(why));

	if (rc < 0) {
		sup_log(sup, SHARD_LOG_ERROR, "cannot take over from the old supervisor",
			"old_pid=%d reason=%s", (int)from->old_pid, why);
		close(from->peer);
		if (from->admin >= 0)
			close(from->admin);
		return rc;
	}
	sup->upgrade = UPGRADE_INHERITED;
	sup->upgrade_sock = from->peer;
	sup->upgrade_old_pid = from->old_pid;
	sup->inherited_admin = from->admin;
	sup_log(sup, SHARD_LOG_INFO, "upgrading: taking over", "old_pid=%d version=%s",
		(int)from->old_pid, sup->settings.version ? sup->settings.version : "unknown");
	return 0;
}

/* Bind the listeners, or take the old supervisor's after an upgrade. */
static int sockets_start(supervisor *sup, uint32_t *failed)
{
	char why[128];
	upgrade_inherited from;
	int taken = upgrade_take_env(&from, why, sizeof(why));

	*failed = UINT32_MAX;
	if (taken < 0) {
		sup_log(sup, SHARD_LOG_ERROR, "cannot take over from the old supervisor",
			"reason=%s", why);
		return taken;
	}
	if (taken == 0)
		return sockets_open(&sup->sockets, sup->settings.listeners,
				    sup->settings.listener_count, sup->shards, failed);
	int rc = sockets_inherit(sup, &from);
	upgrade_inherited_free(&from);
	return rc;
}

/* sockets_open failed on listener `failed` (listener_count: no memory). */
static void say_sockets_failed(supervisor *sup, uint32_t failed, int rc)
{
	if (failed >= sup->settings.listener_count) {
		sup_log(sup, SHARD_LOG_ERROR, "cannot listen", "error=%s", "out of memory");
		return;
	}
	const shard_listen_spec *spec = &sup->settings.listeners[failed];
	say_cannot_listen(sup, spec->name, (const struct sockaddr *)&spec->addr, -rc);
}

static int supervisor_start(supervisor *sup)
{
	char why[256];
	uint32_t failed;
	long nofile = process_raise_nofile();

	if (nofile < 0)
		sup_log(sup, SHARD_LOG_WARN, "cannot raise the open-file limit",
			"error=%s", strerror((int)-nofile));
	int rc = signals_open(sup);
	if (rc < 0) {
		sup_log(sup, SHARD_LOG_ERROR, "cannot set up signals", "error=%s",
			strerror(-rc));
		return rc;
	}
	rc = sockets_start(sup, &failed);
	if (rc < 0) {
		if (failed != UINT32_MAX)
			say_sockets_failed(sup, failed, rc);
		return rc;
	}
	if (sup->settings.argv && (rc = upgrade_self_path(sup->exe, sizeof(sup->exe))) < 0)
		sup_log(sup, SHARD_LOG_WARN, "binary upgrades off: cannot read the binary's path",
			"error=%s", strerror(-rc));
	for (uint32_t l = 0; l < sup->sockets.listener_count; l++) {
		char where[POLL_ADDR_STRLEN];
		poll_addr_format((struct sockaddr *)&sup->sockets.bound[l], where,
			       sizeof(where));
		sup_log(sup, SHARD_LOG_INFO, "listening", "listener=%s address=%s shards=%u",
			sup->settings.listeners[l].name, where, sup->shards);
	}
	if (sup->settings.steer_by_cpu && sup->shards > shard_cpu_count()) {
		sup_log(sup, SHARD_LOG_ERROR, "steer = cpu needs at most one shard per CPU",
			"shards=%u cpus=%u", sup->shards, shard_cpu_count());
		return -EINVAL;
	}
	if (sup->settings.steer_by_cpu && (rc = sockets_steer_by_cpu(&sup->sockets)) < 0) {
		sup_log(sup, SHARD_LOG_ERROR, "cannot steer connections by CPU",
			"error=%s", strerror(-rc));
		return rc;
	}
	if ((rc = admin_start(sup)) < 0)
		return rc;
	if (sup->settings.user &&
	    (rc = process_drop_to(sup->settings.user, why, sizeof(why))) < 0) {
		sup_log(sup, SHARD_LOG_ERROR, "cannot drop privileges", "user=%s error=%s",
			sup->settings.user, why);
		return rc;
	}
	if ((rc = shard_metrics_check(sup->settings.metrics, why, sizeof(why))) < 0) {
		sup_log(sup, SHARD_LOG_ERROR, "cannot use the metric tables",
			"reason=\"%s\"", why);
		return rc;
	}
	rc = metrics_map(&sup->metrics, 4 * sup->shards + 8);
	if (rc < 0) {
		sup_log(sup, SHARD_LOG_ERROR, "cannot map metrics", "error=%s",
			strerror(-rc));
		return rc;
	}
	sup->health = shard_health_board_map();
	sup->servers = shard_server_board_map();
	if (!sup->health || !sup->servers) {
		sup_log(sup, SHARD_LOG_ERROR, "cannot map the health board", "error=%s",
			strerror(errno));
		return -ENOMEM;
	}
	sup->names = shard_name_board_map();
	if (!sup->names) {
		sup_log(sup, SHARD_LOG_ERROR, "cannot map the name board", "error=%s",
			strerror(errno));
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < sup->shards; i++)
		if (!spawn(sup, i, PROC_SERVING))
			return -ENOMEM;
	return 0;
}

static void supervisor_free(supervisor *sup)
{
	if (sup->admin_open)
		admin_close(&sup->admin);
	sockets_close(&sup->sockets);
	metrics_unmap(&sup->metrics);
	shard_health_board_unmap(sup->health);
	shard_server_board_unmap(sup->servers);
	shard_name_board_unmap(sup->names);
	if (sup->signal_fd >= 0)
		close(sup->signal_fd);
	close_fd(&sup->upgrade_sock);
	close_fd(&sup->inherited_admin);
	for (uint32_t i = 0; i < sup->proc_count; i++) {
		close_fd(&sup->procs[i].control);
		close_fd(&sup->procs[i].handoff_peer);
	}
	free(sup->procs);
	free(sup->seats);
}

int shard_supervise(const shard_settings *settings, const shard_ops *ops,
		    void *ctx)
{
	supervisor sup = {
		.settings = *settings,
		.ops = ops,
		.ctx = ctx,
		.shards = settings->shards ? settings->shards : shard_cpu_count(),
		.signal_fd = -1,
		.upgrade_sock = -1,
		.inherited_admin = -1,
	};
	sup.started_unix_ns = sched_clock_ns(CLOCK_REALTIME);
	sup.seats = calloc(sup.shards, sizeof(*sup.seats));
	int rc = sup.seats ? supervisor_start(&sup) : -ENOMEM;
	if (rc < 0) {
		kill_all(&sup);
		while (sup.proc_count && waitpid(sup.procs[0].pid, NULL, 0) > 0)
			proc_remove(&sup, &sup.procs[0]);
		supervisor_free(&sup);
		return 1;
	}
	while (!supervisor_done(&sup))
		loop_once(&sup);
	sup_log(&sup, SHARD_LOG_INFO, "stopped", "exit=%d", sup.exit_code);
	supervisor_free(&sup);
	return sup.exit_code;
}
