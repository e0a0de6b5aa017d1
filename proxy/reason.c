#include "proxy/reason.h"

#define REASON_NAME(name) #name,
static const char *const reason_names[REASON_COUNT] = {REASON_LIST(REASON_NAME)};
#undef REASON_NAME

const char *reason_name(reason_code reason)
{
	return reason < REASON_COUNT ? reason_names[reason] : "unknown";
}
