/* Copied from the team tool library (shared/tools/sipp-fineclock.c). */
/* LD_PRELOAD shim for SIPp 3.6.x timing: SIPp reads CLOCK_MONOTONIC_COARSE, whose resolution
 * is one kernel tick (4 ms at HZ=250), so its RTDs/rtt come in 4 ms steps ("0" = under 4 ms).
 * This maps CLOCK_MONOTONIC_COARSE to CLOCK_MONOTONIC (vDSO, ~20 ns) for the preloaded process.
 * Build: cc -shared -fPIC -O2 -o fineclock.so fineclock.c -ldl ; run: LD_PRELOAD=./fineclock.so sipp ...
 * */
#define _GNU_SOURCE
#include <time.h>
#include <dlfcn.h>

int clock_gettime(clockid_t id, struct timespec *ts)
{
    static int (*real)(clockid_t, struct timespec *);
    if (!real)
        real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
    if (id == CLOCK_MONOTONIC_COARSE)
        id = CLOCK_MONOTONIC;
    return real(id, ts);
}
