// The volume run (integration_volume.cpp), shared by the plain case and the
// TLS one (integration_tls.cpp): framebench drives frames of random sizes
// from 0 to 256 KiB over 100 connections through frameproxy to frameecho,
// every reply verified byte for byte, in order, and the proxy's access
// lines must account for every frame and byte.
#pragma once

#include <string>
#include <vector>

namespace itest {

struct VolumeRun {
	const char *label;                   // for the timing line
	long frames;
	long timeout_s;
	std::vector<std::string> proxy_args; // besides --server
	std::vector<std::string> bench_args; // besides target, sizes, count
};

void volume_run(const VolumeRun &run);

} // namespace itest
