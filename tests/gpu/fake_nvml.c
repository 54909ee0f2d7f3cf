/*
 * A fake libnvidia-ml.so.1 for tests: exports the NVML symbols nvml-wrapper calls and
 * answers from a script file re-read on every call, so a test changes the "hardware"
 * by rewriting the file.
 *
 * Build: gcc -shared -fPIC -o DIR/libnvidia-ml.so.1 fake_nvml.c [-DFAKE_NVML_DEFAULT_SCRIPT='"path"']
 * Script: $FAKE_NVML_SCRIPT, else the compiled-in default. Lines:
 *   init_error CODE          nvmlInit_v2 returns CODE (9 = driver not loaded)
 *   delay_ms N               every call sleeps N ms (a slow driver)
 *   log PATH                 append "FUNCTION THREADNAME" per call to PATH
 *   gpu UUID TOTAL USED FREE RESERVED UTIL MEMUTIL TEMP POWER_MW NAME...
 *                            one card per line, index = order; "-" = not supported
 *   proc GPU_POSITION PID BYTES
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <time.h>

#define OK 0
#define ERR_INVALID_ARGUMENT 2
#define ERR_NOT_SUPPORTED 3
#define ERR_INSUFFICIENT_SIZE 7
#define ERR_GPU_IS_LOST 15
#define ERR_UNKNOWN 999

#ifndef FAKE_NVML_DEFAULT_SCRIPT
#define FAKE_NVML_DEFAULT_SCRIPT ""
#endif

#define MAX_GPUS 16
#define MAX_PROCS 64

typedef struct { unsigned int version; unsigned long long total, reserved, free, used; } nvmlMemory_v2_t;
typedef struct { unsigned int gpu, memory; } nvmlUtilization_t;
typedef struct { unsigned int pid; unsigned long long usedGpuMemory; unsigned int gpuInstanceId, computeInstanceId; } nvmlProcessInfo_t;
typedef void *nvmlDevice_t;

struct gpu {
    char uuid[128], name[128];
    long long total, used, free, reserved, util, memutil, temp, power;
};
struct proc { int gpu; unsigned int pid; unsigned long long bytes; };
struct script {
    int init_error, delay_ms, ngpu, nproc;
    char log[512];
    struct gpu gpus[MAX_GPUS];
    struct proc procs[MAX_PROCS];
};

static long long num(const char *s) { return strcmp(s, "-") == 0 ? -1 : atoll(s); }

static void load(struct script *s) {
    memset(s, 0, sizeof *s);
    const char *path = getenv("FAKE_NVML_SCRIPT");
    if (!path || !*path) path = FAKE_NVML_DEFAULT_SCRIPT;
    FILE *f = fopen(path, "r");
    if (!f) return;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        char a[9][128];
        int n = 0;
        if (sscanf(line, "init_error %d", &s->init_error) == 1) continue;
        if (sscanf(line, "delay_ms %d", &s->delay_ms) == 1) continue;
        if (sscanf(line, "log %511s", s->log) == 1) continue;
        if (strncmp(line, "gpu ", 4) == 0 && s->ngpu < MAX_GPUS) {
            int got = sscanf(line, "gpu %127s %127s %127s %127s %127s %127s %127s %127s %127s %n",
                             a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], &n);
            if (got != 9 || n == 0) continue;
            struct gpu *g = &s->gpus[s->ngpu++];
            snprintf(g->uuid, sizeof g->uuid, "%s", a[0]);
            snprintf(g->name, sizeof g->name, "%s", line + n);
            g->total = num(a[1]); g->used = num(a[2]); g->free = num(a[3]);
            g->reserved = num(a[4]); g->util = num(a[5]); g->memutil = num(a[6]);
            g->temp = num(a[7]); g->power = num(a[8]);
        } else if (strncmp(line, "proc ", 5) == 0 && s->nproc < MAX_PROCS) {
            struct proc *p = &s->procs[s->nproc];
            if (sscanf(line, "proc %d %u %llu", &p->gpu, &p->pid, &p->bytes) == 3) s->nproc++;
        }
    }
    fclose(f);
}

/* Every entry point: load the script, sleep if asked, log the call and its thread. */
static void enter(struct script *s, const char *fn) {
    load(s);
    if (s->delay_ms > 0) {
        struct timespec ts = { s->delay_ms / 1000, (s->delay_ms % 1000) * 1000000L };
        nanosleep(&ts, NULL);
    }
    if (s->log[0]) {
        FILE *f = fopen(s->log, "a");
        if (f) {
            char tname[32] = "?";
            pthread_getname_np(pthread_self(), tname, sizeof tname);
            fprintf(f, "%s %s\n", fn, tname);
            fclose(f);
        }
    }
}

static struct gpu *dev(struct script *s, nvmlDevice_t d, int *pos) {
    intptr_t i = (intptr_t)d - 1;
    if (i < 0 || i >= s->ngpu) return NULL;
    if (pos) *pos = (int)i;
    return &s->gpus[i];
}

#define ENTER struct script s; enter(&s, __func__)
#define DEV(d) int pos = 0; struct gpu *g = dev(&s, d, &pos); if (!g) return ERR_GPU_IS_LOST; (void)pos

int nvmlInit_v2(void) { ENTER; return s.init_error; }
int nvmlInitWithFlags(unsigned int flags) { (void)flags; ENTER; return s.init_error; }
int nvmlShutdown(void) { ENTER; return OK; }
const char *nvmlErrorString(int r) { (void)r; return "fake NVML error"; }

int nvmlSystemGetDriverVersion(char *buf, unsigned int len) {
    ENTER; snprintf(buf, len, "999.0-fake"); return OK;
}
int nvmlDeviceGetCount_v2(unsigned int *count) { ENTER; *count = (unsigned)s.ngpu; return OK; }
int nvmlDeviceGetHandleByIndex_v2(unsigned int i, nvmlDevice_t *d) {
    ENTER;
    if ((int)i >= s.ngpu) return ERR_INVALID_ARGUMENT;
    *d = (nvmlDevice_t)(intptr_t)(i + 1);
    return OK;
}
int nvmlDeviceGetIndex(nvmlDevice_t d, unsigned int *i) { ENTER; DEV(d); *i = (unsigned)pos; return OK; }
int nvmlDeviceGetName(nvmlDevice_t d, char *buf, unsigned int len) {
    ENTER; DEV(d); snprintf(buf, len, "%s", g->name); return OK;
}
int nvmlDeviceGetUUID(nvmlDevice_t d, char *buf, unsigned int len) {
    ENTER; DEV(d); snprintf(buf, len, "%s", g->uuid); return OK;
}
int nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t d, nvmlMemory_v2_t *m) {
    ENTER; DEV(d);
    if ((m->version >> 24) != 2) return ERR_INVALID_ARGUMENT;
    m->total = g->total; m->used = g->used; m->free = g->free; m->reserved = g->reserved;
    return OK;
}
int nvmlDeviceGetUtilizationRates(nvmlDevice_t d, nvmlUtilization_t *u) {
    ENTER; DEV(d);
    if (g->util < 0) return ERR_NOT_SUPPORTED;
    u->gpu = (unsigned)g->util; u->memory = (unsigned)(g->memutil < 0 ? 0 : g->memutil);
    return OK;
}
int nvmlDeviceGetTemperature(nvmlDevice_t d, int sensor, unsigned int *t) {
    ENTER; DEV(d); (void)sensor;
    if (g->temp < 0) return ERR_NOT_SUPPORTED;
    *t = (unsigned)g->temp; return OK;
}
int nvmlDeviceGetPowerUsage(nvmlDevice_t d, unsigned int *mw) {
    ENTER; DEV(d);
    if (g->power < 0) return ERR_NOT_SUPPORTED;
    *mw = (unsigned)g->power; return OK;
}
int nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t d, unsigned int *count, nvmlProcessInfo_t *out) {
    ENTER; DEV(d);
    unsigned int n = 0;
    for (int i = 0; i < s.nproc; i++) if (s.procs[i].gpu == pos) n++;
    if (!out || *count < n) { *count = n; return n == 0 ? OK : ERR_INSUFFICIENT_SIZE; }
    unsigned int k = 0;
    for (int i = 0; i < s.nproc; i++) {
        if (s.procs[i].gpu != pos) continue;
        out[k].pid = s.procs[i].pid;
        out[k].usedGpuMemory = s.procs[i].bytes;
        out[k].gpuInstanceId = 0xFFFFFFFF;
        out[k].computeInstanceId = 0xFFFFFFFF;
        k++;
    }
    *count = k;
    return OK;
}
