// The context switch keeps what the ABI says a call preserves: callee-saved
// general registers, callee-saved FP registers and the FP control state.
// Each check loads distinctive values, switches to a coroutine that clobbers
// the same registers, and reads them back after switching home.
#include "helpers.hpp"

#include <cstdint>
#include <cstring>

extern "C" {
// Reached from inline asm by symbol, so no register is needed to find them.
void (*sched_test_yield_fn)(void) = coro_yield;
uint64_t sched_test_regs_out[24];
}

TEST_CASE("sched_switch_name names the linked switch", "[switch]")
{
	const char *want = getenv("SCHED_TEST_IMPL");
	if (want)
		CHECK(std::string(sched_switch_name()) == want);
	CHECK((std::string(sched_switch_name()) == "asm" ||
		std::string(sched_switch_name()) == "ucontext"));
}

#if defined(__x86_64__)

static const uint64_t kMagic[6] = {
	0x1111111111111111ull, 0x2222222222222222ull, 0x3333333333333333ull,
	0x4444444444444444ull, 0x5555555555555555ull, 0x6666666666666666ull,
};

// rbx, rbp, r12-r15 set to kMagic, yield, then stored to sched_test_regs_out.
// rbp may be the frame pointer, so it is saved by hand rather than clobbered;
// the 128-byte skip protects the red zone and the `and` aligns the call.
static void hold_registers_across_yield()
{
	asm volatile(
		"movq %%rsp, %%rax\n\t"
		"subq $128, %%rsp\n\t"
		"andq $-16, %%rsp\n\t"
		"pushq %%rax\n\t"
		"pushq %%rbp\n\t"
		"movabsq $0x1111111111111111, %%rbx\n\t"
		"movabsq $0x2222222222222222, %%rbp\n\t"
		"movabsq $0x3333333333333333, %%r12\n\t"
		"movabsq $0x4444444444444444, %%r13\n\t"
		"movabsq $0x5555555555555555, %%r14\n\t"
		"movabsq $0x6666666666666666, %%r15\n\t"
		"callq *sched_test_yield_fn(%%rip)\n\t"
		"movq %%rbx, sched_test_regs_out+0(%%rip)\n\t"
		"movq %%rbp, sched_test_regs_out+8(%%rip)\n\t"
		"movq %%r12, sched_test_regs_out+16(%%rip)\n\t"
		"movq %%r13, sched_test_regs_out+24(%%rip)\n\t"
		"movq %%r14, sched_test_regs_out+32(%%rip)\n\t"
		"movq %%r15, sched_test_regs_out+40(%%rip)\n\t"
		"popq %%rbp\n\t"
		"popq %%rsp\n\t"
		:
		:
		: "rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11",
		  "rbx", "r12", "r13", "r14", "r15", "memory", "cc",
		  "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",
		  "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14",
		  "xmm15");
}

static void clobber_registers_and_yield()
{
	asm volatile(
		"movq %%rsp, %%rax\n\t"
		"subq $128, %%rsp\n\t"
		"andq $-16, %%rsp\n\t"
		"pushq %%rax\n\t"
		"pushq %%rbp\n\t"
		"movq $-1, %%rbx\n\t"
		"movq $-2, %%rbp\n\t"
		"movq $-3, %%r12\n\t"
		"movq $-4, %%r13\n\t"
		"movq $-5, %%r14\n\t"
		"movq $-6, %%r15\n\t"
		"callq *sched_test_yield_fn(%%rip)\n\t"
		"popq %%rbp\n\t"
		"popq %%rsp\n\t"
		:
		:
		: "rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11",
		  "rbx", "r12", "r13", "r14", "r15", "memory", "cc",
		  "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",
		  "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14",
		  "xmm15");
}

TEST_CASE("callee-saved registers survive a switch (x86-64)", "[switch]")
{
	SchedScope scope;
	Bodies b;
	std::memset(sched_test_regs_out, 0, sizeof(sched_test_regs_out));
	b.spawn(hold_registers_across_yield, "holder");
	b.spawn(clobber_registers_and_yield, "clobberer");
	sched_run();
	CHECK(stats().exited == 2);
	CHECK(sched_test_regs_out[0] == kMagic[0]);  // rbx
	CHECK(sched_test_regs_out[1] == kMagic[1]);  // rbp
	CHECK(sched_test_regs_out[2] == kMagic[2]);  // r12
	CHECK(sched_test_regs_out[3] == kMagic[3]);  // r13
	CHECK(sched_test_regs_out[4] == kMagic[4]);  // r14
	CHECK(sched_test_regs_out[5] == kMagic[5]);  // r15
}

// Control bits only: the low six are sticky exception flags that any FP
// arithmetic (Catch's included) may set.
static uint32_t get_mxcsr()
{
	uint32_t v;
	asm volatile("stmxcsr %0" : "=m"(v));
	return v & ~0x3fu;
}

static void set_mxcsr(uint32_t v)
{
	asm volatile("ldmxcsr %0" : : "m"(v));
}

static uint16_t get_x87_cw()
{
	uint16_t v;
	asm volatile("fnstcw %0" : "=m"(v));
	return v;
}

static void set_x87_cw(uint16_t v)
{
	asm volatile("fldcw %0" : : "m"(v));
}

TEST_CASE("MXCSR and x87 control word are per coroutine (x86-64)", "[switch]")
{
	SchedScope scope;
	Bodies b;
	const uint32_t loop_mxcsr = get_mxcsr();
	const uint16_t loop_cw = get_x87_cw();
	uint32_t a_mxcsr = 0, b_mxcsr = 0, a_start_mxcsr = 0;
	uint16_t a_cw = 0, b_cw = 0, a_start_cw = 0;

	b.spawn([&] {
		a_start_mxcsr = get_mxcsr();
		a_start_cw = get_x87_cw();
		set_mxcsr(0x3f80);   // all masked, round down
		set_x87_cw(0x027f);  // 53-bit precision
		coro_yield();
		a_mxcsr = get_mxcsr();
		a_cw = get_x87_cw();
	});
	b.spawn([&] {
		set_mxcsr(0x7f80);   // all masked, round toward zero
		set_x87_cw(0x0f7f);  // round toward zero
		coro_yield();
		b_mxcsr = get_mxcsr();
		b_cw = get_x87_cw();
	});
	sched_run();
	CHECK(a_start_mxcsr == loop_mxcsr);  // the default, as in the spawner
	CHECK(a_start_cw == loop_cw);
	CHECK(a_mxcsr == 0x3f80);
	CHECK(a_cw == 0x027f);
	CHECK(b_mxcsr == 0x7f80);
	CHECK(b_cw == 0x0f7f);
	CHECK(get_mxcsr() == loop_mxcsr);
	CHECK(get_x87_cw() == loop_cw);
}

#elif defined(__aarch64__)

// x19-x28, x29 and d8-d15 set to distinctive values, yield, then stored to
// sched_test_regs_out[0..18]. x29/x30 are saved by hand around the call.
static void hold_registers_across_yield()
{
	asm volatile(
		"stp x29, x30, [sp, #-16]!\n\t"
		"mov x19, #0x1901\n\t"
		"mov x20, #0x2002\n\t"
		"mov x21, #0x2103\n\t"
		"mov x22, #0x2204\n\t"
		"mov x23, #0x2305\n\t"
		"mov x24, #0x2406\n\t"
		"mov x25, #0x2507\n\t"
		"mov x26, #0x2608\n\t"
		"mov x27, #0x2709\n\t"
		"mov x28, #0x280a\n\t"
		"mov x29, #0x290b\n\t"
		"mov x9, #0x0801\n\t" "fmov d8, x9\n\t"
		"mov x9, #0x0902\n\t" "fmov d9, x9\n\t"
		"mov x9, #0x1003\n\t" "fmov d10, x9\n\t"
		"mov x9, #0x1104\n\t" "fmov d11, x9\n\t"
		"mov x9, #0x1205\n\t" "fmov d12, x9\n\t"
		"mov x9, #0x1306\n\t" "fmov d13, x9\n\t"
		"mov x9, #0x1407\n\t" "fmov d14, x9\n\t"
		"mov x9, #0x1508\n\t" "fmov d15, x9\n\t"
		"adrp x9, sched_test_yield_fn\n\t"
		"ldr x9, [x9, :lo12:sched_test_yield_fn]\n\t"
		"blr x9\n\t"
		"adrp x9, sched_test_regs_out\n\t"
		"add x9, x9, :lo12:sched_test_regs_out\n\t"
		"stp x19, x20, [x9, #0]\n\t"
		"stp x21, x22, [x9, #16]\n\t"
		"stp x23, x24, [x9, #32]\n\t"
		"stp x25, x26, [x9, #48]\n\t"
		"stp x27, x28, [x9, #64]\n\t"
		"str x29, [x9, #80]\n\t"
		"stp d8, d9, [x9, #88]\n\t"
		"stp d10, d11, [x9, #104]\n\t"
		"stp d12, d13, [x9, #120]\n\t"
		"stp d14, d15, [x9, #136]\n\t"
		"ldp x29, x30, [sp], #16\n\t"
		:
		:
		: "x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9",
		  "x10", "x11", "x12", "x13", "x14", "x15", "x16", "x17", "x18",
		  "x19", "x20", "x21", "x22", "x23", "x24", "x25", "x26", "x27",
		  "x28", "x30", "memory", "cc",
		  "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9",
		  "v10", "v11", "v12", "v13", "v14", "v15", "v16", "v17", "v18",
		  "v19", "v20", "v21", "v22", "v23", "v24", "v25", "v26", "v27",
		  "v28", "v29", "v30", "v31");
}

static void clobber_registers_and_yield()
{
	asm volatile(
		"stp x29, x30, [sp, #-16]!\n\t"
		"mov x19, #-1\n\t" "mov x20, #-1\n\t" "mov x21, #-1\n\t"
		"mov x22, #-1\n\t" "mov x23, #-1\n\t" "mov x24, #-1\n\t"
		"mov x25, #-1\n\t" "mov x26, #-1\n\t" "mov x27, #-1\n\t"
		"mov x28, #-1\n\t" "mov x29, #-1\n\t"
		"fmov d8, x19\n\t" "fmov d9, x19\n\t" "fmov d10, x19\n\t"
		"fmov d11, x19\n\t" "fmov d12, x19\n\t" "fmov d13, x19\n\t"
		"fmov d14, x19\n\t" "fmov d15, x19\n\t"
		"adrp x9, sched_test_yield_fn\n\t"
		"ldr x9, [x9, :lo12:sched_test_yield_fn]\n\t"
		"blr x9\n\t"
		"ldp x29, x30, [sp], #16\n\t"
		:
		:
		: "x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9",
		  "x10", "x11", "x12", "x13", "x14", "x15", "x16", "x17", "x18",
		  "x19", "x20", "x21", "x22", "x23", "x24", "x25", "x26", "x27",
		  "x28", "x30", "memory", "cc",
		  "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9",
		  "v10", "v11", "v12", "v13", "v14", "v15", "v16", "v17", "v18",
		  "v19", "v20", "v21", "v22", "v23", "v24", "v25", "v26", "v27",
		  "v28", "v29", "v30", "v31");
}

TEST_CASE("callee-saved registers survive a switch (aarch64)", "[switch]")
{
	SchedScope scope;
	Bodies b;
	std::memset(sched_test_regs_out, 0, sizeof(sched_test_regs_out));
	b.spawn(hold_registers_across_yield, "holder");
	b.spawn(clobber_registers_and_yield, "clobberer");
	sched_run();
	const uint64_t want_x[11] = { 0x1901, 0x2002, 0x2103, 0x2204, 0x2305,
		0x2406, 0x2507, 0x2608, 0x2709, 0x280a, 0x290b };
	const uint64_t want_d[8] = { 0x0801, 0x0902, 0x1003, 0x1104, 0x1205,
		0x1306, 0x1407, 0x1508 };
	for (int i = 0; i < 11; i++)
		CHECK(sched_test_regs_out[i] == want_x[i]);
	for (int i = 0; i < 8; i++)
		CHECK(sched_test_regs_out[11 + i] == want_d[i]);
}

static uint64_t get_fpcr()
{
	uint64_t v;
	asm volatile("mrs %0, fpcr" : "=r"(v));
	return v;
}

static void set_fpcr(uint64_t v)
{
	asm volatile("msr fpcr, %0" : : "r"(v));
}

TEST_CASE("FPCR is per coroutine (aarch64)", "[switch]")
{
	SchedScope scope;
	Bodies b;
	const uint64_t loop_fpcr = get_fpcr();
	uint64_t a_fpcr = 1, b_fpcr = 1;

	b.spawn([&] {
		set_fpcr(1ull << 22);  // RMode = round toward +inf
		coro_yield();
		a_fpcr = get_fpcr();
	});
	b.spawn([&] {
		set_fpcr(3ull << 22);  // RMode = round toward zero
		coro_yield();
		b_fpcr = get_fpcr();
	});
	sched_run();
	CHECK(a_fpcr == (1ull << 22));
	CHECK(b_fpcr == (3ull << 22));
	CHECK(get_fpcr() == loop_fpcr);
}

#endif
