/* Rate limiting of log lines: at most `burst` a second per call site. */
#include "proxy/log.h"

#include "proxy/log_internal.h"

#define WINDOW_NS INT64_C(1000000000)

void log_ratelimit_flush(log_ratelimit *rl)
{
	if (rl->suppressed == 0)
		return;
	log_line(rl->level, "log lines suppressed", "suppressed=%llu of=%s",
		 (unsigned long long)rl->suppressed, rl->msg);
	rl->suppressed = 0;
}

static void remember(log_ratelimit *rl, log_severity level, const char *msg)
{
	rl->level = level;
	snprintf(rl->msg, sizeof(rl->msg), "%s", msg ? msg : "");
}

bool log_ratelimited(log_ratelimit *rl, log_severity level,
		     const char *msg, const char *kvfmt, ...)
{
	int64_t now = log_monotonic_ns();
	va_list ap;

	if (!log_enabled(level))
		return false;
	if (!rl->started || now - rl->window_start >= WINDOW_NS) {
		log_ratelimit_flush(rl);
		rl->started = true;
		rl->window_start = now;
		rl->emitted = 0;
	}
	remember(rl, level, msg);
	if (rl->emitted >= rl->burst) {
		rl->suppressed++;
		return false;
	}
	rl->emitted++;
	va_start(ap, kvfmt);
	log_vline(level, msg, kvfmt, ap);
	va_end(ap);
	return true;
}
