/* Benchmark unit: on start, writes "PID SECONDS.NANOS" (CLOCK_REALTIME) to the file named
 * by argv[1], then sleeps until killed. */
#include <stdio.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc > 1) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", argv[1]);
        FILE *f = fopen(tmp, "w");
        if (f) {
            fprintf(f, "%d %ld.%09ld\n", (int)getpid(), (long)ts.tv_sec, ts.tv_nsec);
            fclose(f);
            rename(tmp, argv[1]);
        }
    }
    for (;;) pause();
}
