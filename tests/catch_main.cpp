// The one translation unit that compiles Catch2's runner; every test binary
// links it so catch.hpp's main is built once, not per test file.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
