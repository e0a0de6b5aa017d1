/*
 * Process set-up the supervisor and its shards need from the OS: the file
 * limit, dropping privileges, CPU pinning, and systemd's notify socket.
 */
#ifndef FRAMEPROXY_SHARD_PROCESS_H
#define FRAMEPROXY_SHARD_PROCESS_H

#include <stddef.h>
#include <stdint.h>

/* Soft RLIMIT_NOFILE up to the hard limit; the new soft limit or -errno. */
long process_raise_nofile(void);
/* setgroups + setgid + setuid to `user`; -errno and one reason in `why`. */
int process_drop_to(const char *user, char *why, size_t why_len);
/* Pin the calling process on `cpu` (mod the CPUs it may use). */
int process_pin(int cpu);
/*
 * sd_notify when NOTIFY_SOCKET is set ("READY=1", "STOPPING=1",
 * "RELOADING=1", "STATUS=..."); a no-op otherwise.
 */
void process_notify(const char *state);

#endif
