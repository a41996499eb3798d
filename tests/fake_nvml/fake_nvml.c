/* Fake libnvidia-ml.so.1: implements the NVML C functions the agent calls, driven by a scenario
 * file named by $TAOLIE_FAKE_NVML_SCENARIO (format: README.md next to this file). The file is
 * re-read whenever it changes, so tests can alter GPUs while a process runs. Thread-safe. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "gpu/nvml_api.h"

#define FAKE_EXPORT __attribute__((visibility("default")))
#define MAX_GPUS 16
#define MAX_LIST 64
#define STR_LEN 96

struct nvmlDevice_st {
  char name[STR_LEN];
  char uuid[STR_LEN];
  char pci_bus_id[32];
  unsigned long long memory_total_mib;
  unsigned long long memory_used_mib;
  unsigned utilization;
  unsigned memory_utilization;
  unsigned temperature;
  double power_draw_w;
  double power_limit_w;
  int fan; /* -1: not supported */
  unsigned sm_clock;
  unsigned mem_clock;
  int ecc_supported;
  unsigned long long ecc_uncorrected;
  unsigned long long ecc_corrected;
  unsigned long long throttle_reasons;
  int cc_major, cc_minor;
  int mig; /* -1 unsupported, 0 disabled, 1 enabled */
  int lost;
  int error; /* every device query returns this when non-zero */
  unsigned hang_ms;
  unsigned pids[MAX_LIST];
  unsigned pid_count;
  unsigned graphics_pids[MAX_LIST];
  unsigned graphics_pid_count;
  unsigned long long xids[MAX_LIST];
  unsigned xid_count;
  unsigned xid_delivered; /* reset whenever the scenario file changes */
  int registered;         /* XID events registered by the caller */
};

struct nvmlEventSet_st {
  int in_use;
};

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static struct nvmlDevice_st g_gpus[MAX_GPUS];
static unsigned g_gpu_count;
static char g_driver_version[STR_LEN];
static char g_nvml_version[STR_LEN];
static int g_cuda_version;
static int g_init_error;
static unsigned g_global_hang_ms;
static int g_init_count;
static int g_loaded; /* scenario parsed at least once */
static struct stat g_last_stat;
static struct nvmlEventSet_st g_event_set;

static void set_str(char* dst, size_t cap, const char* src) { snprintf(dst, cap, "%s", src); }

static void gpu_defaults(struct nvmlDevice_st* g, unsigned i) {
  memset(g, 0, sizeof(*g));
  snprintf(g->name, sizeof(g->name), "Fake GPU %u", i);
  snprintf(g->uuid, sizeof(g->uuid), "GPU-fa4e0000-0000-0000-0000-%012u", i);
  snprintf(g->pci_bus_id, sizeof(g->pci_bus_id), "00000000:%02X:00.0", 0x10 + i);
  g->memory_total_mib = 24576;
  g->memory_used_mib = 0;
  g->temperature = 40;
  g->power_draw_w = 50;
  g->power_limit_w = 300;
  g->fan = 30;
  g->sm_clock = 1500;
  g->mem_clock = 5000;
  g->ecc_supported = 1;
  g->cc_major = 8;
  g->cc_minor = 6;
  g->mig = -1;
}

static void global_defaults(void) {
  g_gpu_count = 1;
  set_str(g_driver_version, sizeof(g_driver_version), "550.54.15");
  set_str(g_nvml_version, sizeof(g_nvml_version), "12.550.54.15");
  g_cuda_version = 12040;
  g_init_error = 0;
  g_global_hang_ms = 0;
  for (unsigned i = 0; i < MAX_GPUS; ++i) gpu_defaults(&g_gpus[i], i);
}

static char* trim(char* s) {
  while (*s == ' ' || *s == '\t') ++s;
  char* end = s + strlen(s);
  while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' || end[-1] == '\n')) {
    *--end = '\0';
  }
  return s;
}

static unsigned parse_list(const char* v, unsigned long long* out) {
  unsigned n = 0;
  const char* p = v;
  while (*p != '\0' && n < MAX_LIST) {
    char* end = NULL;
    unsigned long long x = strtoull(p, &end, 10);
    if (end == p) {
      ++p;
      continue;
    }
    out[n++] = x;
    p = end;
  }
  return n;
}

static void set_gpu_key(struct nvmlDevice_st* g, const char* k, const char* v) {
  unsigned long long list[MAX_LIST];
  if (strcmp(k, "name") == 0)
    set_str(g->name, sizeof(g->name), v);
  else if (strcmp(k, "uuid") == 0)
    set_str(g->uuid, sizeof(g->uuid), v);
  else if (strcmp(k, "pci_bus_id") == 0)
    set_str(g->pci_bus_id, sizeof(g->pci_bus_id), v);
  else if (strcmp(k, "memory_total_mib") == 0)
    g->memory_total_mib = strtoull(v, NULL, 10);
  else if (strcmp(k, "memory_used_mib") == 0)
    g->memory_used_mib = strtoull(v, NULL, 10);
  else if (strcmp(k, "utilization") == 0)
    g->utilization = (unsigned)strtoul(v, NULL, 10);
  else if (strcmp(k, "memory_utilization") == 0)
    g->memory_utilization = (unsigned)strtoul(v, NULL, 10);
  else if (strcmp(k, "temperature") == 0)
    g->temperature = (unsigned)strtoul(v, NULL, 10);
  else if (strcmp(k, "power_draw_w") == 0)
    g->power_draw_w = strtod(v, NULL);
  else if (strcmp(k, "power_limit_w") == 0)
    g->power_limit_w = strtod(v, NULL);
  else if (strcmp(k, "fan") == 0)
    g->fan = strcmp(v, "none") == 0 ? -1 : atoi(v);
  else if (strcmp(k, "sm_clock") == 0)
    g->sm_clock = (unsigned)strtoul(v, NULL, 10);
  else if (strcmp(k, "mem_clock") == 0)
    g->mem_clock = (unsigned)strtoul(v, NULL, 10);
  else if (strcmp(k, "ecc") == 0)
    g->ecc_supported = strcmp(v, "none") != 0;
  else if (strcmp(k, "ecc_uncorrected") == 0)
    g->ecc_uncorrected = strtoull(v, NULL, 10);
  else if (strcmp(k, "ecc_corrected") == 0)
    g->ecc_corrected = strtoull(v, NULL, 10);
  else if (strcmp(k, "throttle_reasons") == 0)
    g->throttle_reasons = strtoull(v, NULL, 0);
  else if (strcmp(k, "compute_capability") == 0) {
    if (sscanf(v, "%d.%d", &g->cc_major, &g->cc_minor) != 2) g->cc_major = g->cc_minor = 0;
  } else if (strcmp(k, "mig") == 0) {
    g->mig = strcmp(v, "enabled") == 0 ? 1 : strcmp(v, "disabled") == 0 ? 0 : -1;
  } else if (strcmp(k, "lost") == 0)
    g->lost = atoi(v);
  else if (strcmp(k, "error") == 0)
    g->error = atoi(v);
  else if (strcmp(k, "hang_ms") == 0)
    g->hang_ms = (unsigned)strtoul(v, NULL, 10);
  else if (strcmp(k, "processes") == 0) {
    g->pid_count = parse_list(v, list);
    for (unsigned i = 0; i < g->pid_count; ++i) g->pids[i] = (unsigned)list[i];
  } else if (strcmp(k, "graphics_processes") == 0) {
    g->graphics_pid_count = parse_list(v, list);
    for (unsigned i = 0; i < g->graphics_pid_count; ++i) g->graphics_pids[i] = (unsigned)list[i];
  } else if (strcmp(k, "xids") == 0) {
    g->xid_count = parse_list(v, g->xids);
  } else {
    fprintf(stderr, "fake_nvml: unknown GPU key '%s'\n", k);
  }
}

static void set_global_key(const char* k, const char* v) {
  if (strcmp(k, "gpu_count") == 0) {
    unsigned long n = strtoul(v, NULL, 10);
    g_gpu_count = n > MAX_GPUS ? MAX_GPUS : (unsigned)n;
  } else if (strcmp(k, "driver_version") == 0) {
    set_str(g_driver_version, sizeof(g_driver_version), v);
  } else if (strcmp(k, "nvml_version") == 0) {
    set_str(g_nvml_version, sizeof(g_nvml_version), v);
  } else if (strcmp(k, "cuda_version") == 0) {
    g_cuda_version = atoi(v);
  } else if (strcmp(k, "init_error") == 0) {
    g_init_error = atoi(v);
  } else if (strcmp(k, "hang_ms") == 0) {
    g_global_hang_ms = (unsigned)strtoul(v, NULL, 10);
  } else {
    fprintf(stderr, "fake_nvml: unknown global key '%s'\n", k);
  }
}

/* Parses the scenario. Returns 0 on success. Caller holds g_mu. */
static int parse_scenario(FILE* f) {
  char line[1024];
  struct nvmlDevice_st* gpu = NULL;
  int explicit_count = 0;
  unsigned max_section = 0;
  global_defaults();
  while (fgets(line, sizeof(line), f) != NULL) {
    char* s = trim(line);
    if (*s == '\0' || *s == '#' || *s == ';') continue;
    if (*s == '[') {
      unsigned idx = 0;
      if (sscanf(s, "[gpu%u]", &idx) != 1 || idx >= MAX_GPUS) {
        fprintf(stderr, "fake_nvml: bad section '%s'\n", s);
        gpu = NULL;
        continue;
      }
      gpu = &g_gpus[idx];
      if (idx + 1 > max_section) max_section = idx + 1;
      continue;
    }
    char* eq = strchr(s, '=');
    if (eq == NULL) continue;
    *eq = '\0';
    char* k = trim(s);
    char* v = trim(eq + 1);
    if (gpu != NULL) {
      set_gpu_key(gpu, k, v);
    } else {
      if (strcmp(k, "gpu_count") == 0) explicit_count = 1;
      set_global_key(k, v);
    }
  }
  if (!explicit_count && max_section > 0) g_gpu_count = max_section;
  return 0;
}

/* Re-reads the scenario when its file changed. Caller holds g_mu. Returns an NVML code. */
static nvmlReturn_t refresh_locked(void) {
  const char* path = getenv("TAOLIE_FAKE_NVML_SCENARIO");
  if (path == NULL || *path == '\0') {
    if (!g_loaded) {
      global_defaults();
      g_loaded = 1;
    }
    return NVML_SUCCESS;
  }
  struct stat st;
  if (stat(path, &st) != 0) {
    if (g_loaded) return NVML_SUCCESS; /* keep the last values while a test swaps the file */
    fprintf(stderr, "fake_nvml: cannot stat scenario %s: %s\n", path, strerror(errno));
    return NVML_ERROR_UNKNOWN;
  }
  if (g_loaded && st.st_ino == g_last_stat.st_ino && st.st_size == g_last_stat.st_size &&
      st.st_mtim.tv_sec == g_last_stat.st_mtim.tv_sec &&
      st.st_mtim.tv_nsec == g_last_stat.st_mtim.tv_nsec) {
    return NVML_SUCCESS;
  }
  FILE* f = fopen(path, "r");
  if (f == NULL) {
    if (g_loaded) return NVML_SUCCESS;
    fprintf(stderr, "fake_nvml: cannot open scenario %s: %s\n", path, strerror(errno));
    return NVML_ERROR_UNKNOWN;
  }
  /* Registration state survives a reload; the XID queues restart from the new file's lists. */
  int registered[MAX_GPUS];
  for (unsigned i = 0; i < MAX_GPUS; ++i) registered[i] = g_gpus[i].registered;
  parse_scenario(f);
  fclose(f);
  for (unsigned i = 0; i < MAX_GPUS; ++i) g_gpus[i].registered = registered[i];
  g_last_stat = st;
  g_loaded = 1;
  return NVML_SUCCESS;
}

static void sleep_ms(unsigned ms) {
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Simulates a hung driver: sleeps while the scenario asks for a hang (global hang_ms, or the
 * GPU's hang_ms when dev != NULL). Re-reads the scenario every 10 ms, so a test can end the
 * hang early by rewriting the file. Called without g_mu held. */
static void maybe_hang(struct nvmlDevice_st* dev) {
  long long start = now_ms();
  for (;;) {
    pthread_mutex_lock(&g_mu);
    refresh_locked();
    unsigned hang = g_global_hang_ms;
    if (dev != NULL && dev->hang_ms > hang) hang = dev->hang_ms;
    pthread_mutex_unlock(&g_mu);
    if (now_ms() - start >= (long long)hang) return;
    sleep_ms(10);
  }
}

static int valid_device(struct nvmlDevice_st* d) {
  return d != NULL && d >= &g_gpus[0] && d < &g_gpus[g_gpu_count];
}

/* Common prologue of device queries: hang, reload, check init/handle/lost/error.
 * On NVML_SUCCESS returns with g_mu held. */
static nvmlReturn_t enter_device(struct nvmlDevice_st* d) {
  maybe_hang(d >= &g_gpus[0] && d < &g_gpus[MAX_GPUS] ? d : NULL);
  pthread_mutex_lock(&g_mu);
  nvmlReturn_t r = refresh_locked();
  if (r == NVML_SUCCESS && g_init_count <= 0) r = NVML_ERROR_UNINITIALIZED;
  if (r == NVML_SUCCESS && !valid_device(d)) r = NVML_ERROR_INVALID_ARGUMENT;
  if (r == NVML_SUCCESS && d->lost) r = NVML_ERROR_GPU_IS_LOST;
  if (r == NVML_SUCCESS && d->error != 0) r = d->error;
  if (r != NVML_SUCCESS) pthread_mutex_unlock(&g_mu);
  return r;
}

static nvmlReturn_t enter_system(void) {
  maybe_hang(NULL);
  pthread_mutex_lock(&g_mu);
  nvmlReturn_t r = refresh_locked();
  if (r == NVML_SUCCESS && g_init_count <= 0) r = NVML_ERROR_UNINITIALIZED;
  if (r != NVML_SUCCESS) pthread_mutex_unlock(&g_mu);
  return r;
}

static nvmlReturn_t leave(nvmlReturn_t r) {
  pthread_mutex_unlock(&g_mu);
  return r;
}

static nvmlReturn_t copy_out(const char* value, char* buf, unsigned length) {
  if (buf == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  if (strlen(value) + 1 > length) return NVML_ERROR_INSUFFICIENT_SIZE;
  memcpy(buf, value, strlen(value) + 1);
  return NVML_SUCCESS;
}

/* ---- exported API ---- */

FAKE_EXPORT nvmlReturn_t nvmlInit_v2(void) {
  maybe_hang(NULL);
  pthread_mutex_lock(&g_mu);
  nvmlReturn_t r = refresh_locked();
  if (r == NVML_SUCCESS && g_init_error != 0) r = g_init_error;
  if (r == NVML_SUCCESS) ++g_init_count;
  return leave(r);
}

FAKE_EXPORT nvmlReturn_t nvmlInit(void) { return nvmlInit_v2(); }

FAKE_EXPORT nvmlReturn_t nvmlShutdown(void) {
  pthread_mutex_lock(&g_mu);
  nvmlReturn_t r = g_init_count > 0 ? NVML_SUCCESS : NVML_ERROR_UNINITIALIZED;
  if (g_init_count > 0 && --g_init_count == 0) {
    g_event_set.in_use = 0;
    for (unsigned i = 0; i < MAX_GPUS; ++i) g_gpus[i].registered = 0;
  }
  return leave(r);
}

FAKE_EXPORT const char* nvmlErrorString(nvmlReturn_t r) {
  switch (r) {
    case NVML_SUCCESS:
      return "Success";
    case NVML_ERROR_UNINITIALIZED:
      return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT:
      return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED:
      return "Not Supported";
    case NVML_ERROR_NO_PERMISSION:
      return "Insufficient Permissions";
    case NVML_ERROR_NOT_FOUND:
      return "Not Found";
    case NVML_ERROR_INSUFFICIENT_SIZE:
      return "Insufficient Size";
    case NVML_ERROR_DRIVER_NOT_LOADED:
      return "Driver Not Loaded";
    case NVML_ERROR_TIMEOUT:
      return "Timeout";
    case NVML_ERROR_GPU_IS_LOST:
      return "GPU is lost";
    case NVML_ERROR_LIB_RM_VERSION_MISMATCH:
      return "Driver/library version mismatch";
    default:
      return "Unknown Error";
  }
}

FAKE_EXPORT nvmlReturn_t nvmlSystemGetDriverVersion(char* buf, unsigned length) {
  nvmlReturn_t r = enter_system();
  if (r != NVML_SUCCESS) return r;
  return leave(copy_out(g_driver_version, buf, length));
}

FAKE_EXPORT nvmlReturn_t nvmlSystemGetNVMLVersion(char* buf, unsigned length) {
  nvmlReturn_t r = enter_system();
  if (r != NVML_SUCCESS) return r;
  return leave(copy_out(g_nvml_version, buf, length));
}

FAKE_EXPORT nvmlReturn_t nvmlSystemGetCudaDriverVersion(int* version) {
  nvmlReturn_t r = enter_system();
  if (r != NVML_SUCCESS) return r;
  if (version == NULL) return leave(NVML_ERROR_INVALID_ARGUMENT);
  *version = g_cuda_version;
  return leave(NVML_SUCCESS);
}

FAKE_EXPORT nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int* version) {
  return nvmlSystemGetCudaDriverVersion(version);
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetCount_v2(unsigned* count) {
  nvmlReturn_t r = enter_system();
  if (r != NVML_SUCCESS) return r;
  if (count == NULL) return leave(NVML_ERROR_INVALID_ARGUMENT);
  *count = g_gpu_count;
  return leave(NVML_SUCCESS);
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned index, nvmlDevice_t* device) {
  nvmlReturn_t r = enter_system();
  if (r != NVML_SUCCESS) return r;
  if (device == NULL || index >= g_gpu_count) return leave(NVML_ERROR_INVALID_ARGUMENT);
  *device = &g_gpus[index];
  return leave(NVML_SUCCESS);
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t d, char* buf, unsigned length) {
  nvmlReturn_t r = enter_device(d);
  if (r != NVML_SUCCESS) return r;
  return leave(copy_out(d->name, buf, length));
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t d, char* buf, unsigned length) {
  nvmlReturn_t r = enter_device(d);
  if (r != NVML_SUCCESS) return r;
  return leave(copy_out(d->uuid, buf, length));
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t d, nvmlPciInfo_t* pci) {
  nvmlReturn_t r = enter_device(d);
  if (r != NVML_SUCCESS) return r;
  if (pci == NULL) return leave(NVML_ERROR_INVALID_ARGUMENT);
  memset(pci, 0, sizeof(*pci));
  unsigned domain = 0, bus = 0, dev = 0, fn = 0;
  sscanf(d->pci_bus_id, "%x:%x:%x.%x", &domain, &bus, &dev, &fn);
  pci->domain = domain;
  pci->bus = bus;
  pci->device = dev;
  pci->pciDeviceId = 0x20B510DE;
  set_str(pci->busId, sizeof(pci->busId), d->pci_bus_id);
  snprintf(pci->busIdLegacy, sizeof(pci->busIdLegacy), "%04X:%02X:%02X.%X", domain & 0xffff,
           bus & 0xff, dev & 0xff, fn & 0xf);
  return leave(NVML_SUCCESS);
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t* mem) {
  nvmlReturn_t r = enter_device(d);
  if (r != NVML_SUCCESS) return r;
  if (mem == NULL) return leave(NVML_ERROR_INVALID_ARGUMENT);
  mem->total = d->memory_total_mib * 1024ULL * 1024ULL;
  mem->used = d->memory_used_mib * 1024ULL * 1024ULL;
  mem->free = mem->total > mem->used ? mem->total - mem->used : 0;
  return leave(NVML_SUCCESS);
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t d, nvmlUtilization_t* u) {
  nvmlReturn_t r = enter_device(d);
  if (r != NVML_SUCCESS) return r;
  if (u == NULL) return leave(NVML_ERROR_INVALID_ARGUMENT);
  u->gpu = d->utilization;
  u->memory = d->memory_utilization;
  return leave(NVML_SUCCESS);
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t d, int sensor, unsigned* temp) {
  nvmlReturn_t r = enter_device(d);
  if (r != NVML_SUCCESS) return r;
  if (temp == NULL || sensor != NVML_TEMPERATURE_GPU) return leave(NVML_ERROR_INVALID_ARGUMENT);
  *temp = d->temperature;
  return leave(NVML_SUCCESS);
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t d, unsigned* mw) {
  nvmlReturn_t r = enter_device(d);
  if (r != NVML_SUCCESS) return r;
  if (mw == NULL) return leave(NVML_ERROR_INVALID_ARGUMENT);
  *mw = (unsigned)(d->power_draw_w * 1000.0 + 0.5);
  return leave(NVML_SUCCESS);
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_t d, unsigned* mw) {
  nvmlReturn_t r = enter_device(d);
  if (r != NVML_SUCCESS) return r;
  if (mw == NULL) return leave(NVML_ERROR_INVALID_ARGUMENT);
  *mw = (unsigned)(d->power_limit_w * 1000.0 + 0.5);
  return leave(NVML_SUCCESS);
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetFanSpeed(nvmlDevice_t d, unsigned* pct) {
  nvmlReturn_t r = enter_device(d);
  if (r != NVML_SUCCESS) return r;
  if (pct == NULL) return leave(NVML_ERROR_INVALID_ARGUMENT);
  if (d->fan < 0) return leave(NVML_ERROR_NOT_SUPPORTED);
  *pct = (unsigned)d->fan;
  return leave(NVML_SUCCESS);
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t d, int type, unsigned* mhz) {
  nvmlReturn_t r = enter_device(d);
  if (r != NVML_SUCCESS) return r;
  if (mhz == NULL) return leave(NVML_ERROR_INVALID_ARGUMENT);
  switch (type) {
    case NVML_CLOCK_GRAPHICS:
    case NVML_CLOCK_SM:
      *mhz = d->sm_clock;
      break;
    case NVML_CLOCK_MEM:
      *mhz = d->mem_clock;
      break;
    default:
      return leave(NVML_ERROR_INVALID_ARGUMENT);
  }
  return leave(NVML_SUCCESS);
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetCudaComputeCapability(nvmlDevice_t d, int* major,
                                                            int* minor) {
  nvmlReturn_t r = enter_device(d);
  if (r != NVML_SUCCESS) return r;
  if (major == NULL || minor == NULL) return leave(NVML_ERROR_INVALID_ARGUMENT);
  *major = d->cc_major;
  *minor = d->cc_minor;
  return leave(NVML_SUCCESS);
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t d, unsigned* current,
                                              unsigned* pending) {
  nvmlReturn_t r = enter_device(d);
  if (r != NVML_SUCCESS) return r;
  if (current == NULL || pending == NULL) return leave(NVML_ERROR_INVALID_ARGUMENT);
  if (d->mig < 0) return leave(NVML_ERROR_NOT_SUPPORTED);
  *current = *pending = (unsigned)d->mig;
  return leave(NVML_SUCCESS);
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetTotalEccErrors(nvmlDevice_t d, int error_type,
                                                     int counter_type, unsigned long long* count) {
  nvmlReturn_t r = enter_device(d);
  if (r != NVML_SUCCESS) return r;
  if (count == NULL) return leave(NVML_ERROR_INVALID_ARGUMENT);
  if (!d->ecc_supported) return leave(NVML_ERROR_NOT_SUPPORTED);
  (void)counter_type; /* volatile and aggregate report the same numbers here */
  *count = error_type == NVML_MEMORY_ERROR_TYPE_UNCORRECTED ? d->ecc_uncorrected : d->ecc_corrected;
  return leave(NVML_SUCCESS);
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetCurrentClocksThrottleReasons(nvmlDevice_t d,
                                                                   unsigned long long* reasons) {
  nvmlReturn_t r = enter_device(d);
  if (r != NVML_SUCCESS) return r;
  if (reasons == NULL) return leave(NVML_ERROR_INVALID_ARGUMENT);
  *reasons = d->throttle_reasons;
  return leave(NVML_SUCCESS);
}

static nvmlReturn_t list_processes(const unsigned* pids, unsigned n, unsigned* count,
                                   nvmlProcessInfo_t* infos) {
  if (count == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  if (*count < n) {
    *count = n;
    return NVML_ERROR_INSUFFICIENT_SIZE;
  }
  if (n > 0 && infos == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  for (unsigned i = 0; i < n; ++i) {
    infos[i].pid = pids[i];
    infos[i].usedGpuMemory = 256ULL * 1024 * 1024;
    infos[i].gpuInstanceId = 0xFFFFFFFFu;
    infos[i].computeInstanceId = 0xFFFFFFFFu;
  }
  *count = n;
  return NVML_SUCCESS;
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t d, unsigned* count,
                                                                 nvmlProcessInfo_t* infos) {
  nvmlReturn_t r = enter_device(d);
  if (r != NVML_SUCCESS) return r;
  return leave(list_processes(d->pids, d->pid_count, count, infos));
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses_v3(nvmlDevice_t d, unsigned* count,
                                                                  nvmlProcessInfo_t* infos) {
  nvmlReturn_t r = enter_device(d);
  if (r != NVML_SUCCESS) return r;
  return leave(list_processes(d->graphics_pids, d->graphics_pid_count, count, infos));
}

FAKE_EXPORT nvmlReturn_t nvmlEventSetCreate(nvmlEventSet_t* set) {
  nvmlReturn_t r = enter_system();
  if (r != NVML_SUCCESS) return r;
  if (set == NULL) return leave(NVML_ERROR_INVALID_ARGUMENT);
  g_event_set.in_use = 1; /* one process-wide set is enough for the agent */
  *set = &g_event_set;
  return leave(NVML_SUCCESS);
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceRegisterEvents(nvmlDevice_t d, unsigned long long types,
                                                  nvmlEventSet_t set) {
  nvmlReturn_t r = enter_device(d);
  if (r != NVML_SUCCESS) return r;
  if (set != &g_event_set || !g_event_set.in_use) return leave(NVML_ERROR_INVALID_ARGUMENT);
  if (types & nvmlEventTypeXidCriticalError) d->registered = 1;
  return leave(NVML_SUCCESS);
}

FAKE_EXPORT nvmlReturn_t nvmlEventSetWait_v2(nvmlEventSet_t set, nvmlEventData_t* data,
                                             unsigned timeout_ms) {
  nvmlReturn_t r = enter_system();
  if (r != NVML_SUCCESS) return r;
  if (set != &g_event_set || !g_event_set.in_use || data == NULL) {
    return leave(NVML_ERROR_INVALID_ARGUMENT);
  }
  (void)timeout_ms; /* events are either pending now or not at all */
  for (unsigned i = 0; i < g_gpu_count; ++i) {
    struct nvmlDevice_st* g = &g_gpus[i];
    if (g->registered && g->xid_delivered < g->xid_count) {
      memset(data, 0, sizeof(*data));
      data->device = g;
      data->eventType = nvmlEventTypeXidCriticalError;
      data->eventData = g->xids[g->xid_delivered++];
      return leave(NVML_SUCCESS);
    }
  }
  return leave(NVML_ERROR_TIMEOUT);
}

FAKE_EXPORT nvmlReturn_t nvmlEventSetFree(nvmlEventSet_t set) {
  pthread_mutex_lock(&g_mu);
  if (set != &g_event_set) return leave(NVML_ERROR_INVALID_ARGUMENT);
  g_event_set.in_use = 0;
  return leave(NVML_SUCCESS);
}
