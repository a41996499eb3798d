/* Fake libnvidia-ml.so.1: implements the NVML C functions the agent calls, driven by a scenario
 * file named by $TAOLIE_FAKE_NVML_SCENARIO (format: README.md next to this file). The file is
 * re-read whenever it changes, so tests can alter GPUs while a process runs. Thread-safe.
 * Built twice: `fake_nvml` exports every name, `fake_nvml_fallback` (FAKE_NVML_FALLBACK_ONLY)
 * leaves out the newer variants the agent prefers, so that its fallbacks are exercised. */
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
#define NAMES_LEN 1024
#define MAX_FANS 8

struct nvmlDevice_st {
  char name[STR_LEN];
  char uuid[STR_LEN];
  char pci_bus_id[32];
  unsigned long long memory_total_mib;
  unsigned long long memory_used_mib;
  unsigned long long memory_reserved_mib; /* nvmlMemory_v2_t.reserved */
  unsigned utilization;
  unsigned memory_utilization;
  unsigned temperature;
  double power_draw_w;
  double power_limit_w;
  unsigned fan_count; /* 0: a fanless card */
  unsigned fans[MAX_FANS];
  unsigned sm_clock;
  unsigned mem_clock;
  int ecc_supported;
  int ecc_enabled;
  unsigned long long ecc_uncorrected;
  unsigned long long ecc_corrected;
  long long ecc_aggregate_uncorrected; /* -1: the volatile value */
  long long ecc_aggregate_corrected;
  unsigned temp_slowdown, temp_shutdown;
  unsigned long long energy_mj;
  unsigned pcie_gen, pcie_width, pcie_max_gen, pcie_max_width, pcie_replay;
  unsigned retired_sbe, retired_dbe, retired_pending;
  unsigned remapped_correctable, remapped_uncorrectable, remap_pending, remap_failure;
  unsigned long long power_violation_ns, thermal_violation_ns;
  unsigned recovery_action;
  unsigned persistence;
  int inforom_valid;
  char serial[STR_LEN];
  char vbios[STR_LEN];
  char inforom_image[STR_LEN];
  char unsupported[NAMES_LEN];    /* ",fn,fn," answered NVML_ERROR_NOT_SUPPORTED */
  char hang_functions[NAMES_LEN]; /* ",fn,fn,": only these hang for hang_ms; "" = all */
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
static char g_unsupported[NAMES_LEN];    /* for every GPU */
static char g_hang_functions[NAMES_LEN]; /* restricts the global hang_ms */
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
  g->fan_count = 1;
  g->fans[0] = 30;
  g->sm_clock = 1500;
  g->mem_clock = 5000;
  g->ecc_supported = 1;
  g->ecc_enabled = 1;
  g->ecc_aggregate_uncorrected = -1;
  g->ecc_aggregate_corrected = -1;
  g->temp_slowdown = 90;
  g->temp_shutdown = 95;
  g->energy_mj = 1000000ULL * (i + 1);
  g->pcie_gen = g->pcie_max_gen = 4;
  g->pcie_width = g->pcie_max_width = 16;
  g->persistence = 1;
  g->inforom_valid = 1;
  snprintf(g->serial, sizeof(g->serial), "13240000000%02u", i);
  set_str(g->vbios, sizeof(g->vbios), "94.02.71.00.01");
  set_str(g->inforom_image, sizeof(g->inforom_image), "G001.0000.03.03");
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
  g_unsupported[0] = '\0';
  g_hang_functions[0] = '\0';
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

/* Stores a comma-separated list of names as ",a,b," (spaces dropped), "" when empty. */
static void set_names(char* dst, size_t cap, const char* v) {
  size_t n = 0;
  dst[0] = '\0';
  if (*v == '\0') return;
  dst[n++] = ',';
  for (const char* p = v; *p != '\0' && n + 2 < cap; ++p) {
    if (*p == ' ' || *p == '\t') continue;
    if (*p == ',' && dst[n - 1] == ',') continue;
    dst[n++] = *p;
  }
  if (dst[n - 1] != ',') dst[n++] = ',';
  dst[n] = '\0';
  if (n == 1) dst[0] = '\0';
}

static int names_have(const char* names, const char* fn) {
  if (names[0] == '\0') return 0;
  char key[128];
  snprintf(key, sizeof(key), ",%s,", fn);
  return strstr(names, key) != NULL;
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
  else if (strcmp(k, "fan") == 0) {
    g->fan_count = strcmp(v, "none") == 0 ? 0 : 1;
    g->fans[0] = (unsigned)atoi(v);
  } else if (strcmp(k, "fans") == 0) {
    unsigned n = parse_list(v, list);
    g->fan_count = n > MAX_FANS ? MAX_FANS : n;
    for (unsigned i = 0; i < g->fan_count; ++i) g->fans[i] = (unsigned)list[i];
  } else if (strcmp(k, "memory_reserved_mib") == 0)
    g->memory_reserved_mib = strtoull(v, NULL, 10);
  else if (strcmp(k, "sm_clock") == 0)
    g->sm_clock = (unsigned)strtoul(v, NULL, 10);
  else if (strcmp(k, "mem_clock") == 0)
    g->mem_clock = (unsigned)strtoul(v, NULL, 10);
  else if (strcmp(k, "ecc") == 0) {
    g->ecc_supported = strcmp(v, "none") != 0;
    g->ecc_enabled = strcmp(v, "disabled") != 0;
  } else if (strcmp(k, "ecc_aggregate_uncorrected") == 0)
    g->ecc_aggregate_uncorrected = strtoll(v, NULL, 10);
  else if (strcmp(k, "ecc_aggregate_corrected") == 0)
    g->ecc_aggregate_corrected = strtoll(v, NULL, 10);
  else if (strcmp(k, "temperature_slowdown") == 0)
    g->temp_slowdown = (unsigned)strtoul(v, NULL, 10);
  else if (strcmp(k, "temperature_shutdown") == 0)
    g->temp_shutdown = (unsigned)strtoul(v, NULL, 10);
  else if (strcmp(k, "energy_mj") == 0)
    g->energy_mj = strtoull(v, NULL, 10);
  else if (strcmp(k, "pcie_gen") == 0)
    g->pcie_gen = (unsigned)strtoul(v, NULL, 10);
  else if (strcmp(k, "pcie_width") == 0)
    g->pcie_width = (unsigned)strtoul(v, NULL, 10);
  else if (strcmp(k, "pcie_max_gen") == 0)
    g->pcie_max_gen = (unsigned)strtoul(v, NULL, 10);
  else if (strcmp(k, "pcie_max_width") == 0)
    g->pcie_max_width = (unsigned)strtoul(v, NULL, 10);
  else if (strcmp(k, "pcie_replay") == 0)
    g->pcie_replay = (unsigned)strtoul(v, NULL, 10);
  else if (strcmp(k, "retired_sbe") == 0)
    g->retired_sbe = (unsigned)strtoul(v, NULL, 10);
  else if (strcmp(k, "retired_dbe") == 0)
    g->retired_dbe = (unsigned)strtoul(v, NULL, 10);
  else if (strcmp(k, "retired_pending") == 0)
    g->retired_pending = (unsigned)strtoul(v, NULL, 10);
  else if (strcmp(k, "remapped_correctable") == 0)
    g->remapped_correctable = (unsigned)strtoul(v, NULL, 10);
  else if (strcmp(k, "remapped_uncorrectable") == 0)
    g->remapped_uncorrectable = (unsigned)strtoul(v, NULL, 10);
  else if (strcmp(k, "remap_pending") == 0)
    g->remap_pending = (unsigned)strtoul(v, NULL, 10);
  else if (strcmp(k, "remap_failure") == 0)
    g->remap_failure = (unsigned)strtoul(v, NULL, 10);
  else if (strcmp(k, "power_violation_ns") == 0)
    g->power_violation_ns = strtoull(v, NULL, 10);
  else if (strcmp(k, "thermal_violation_ns") == 0)
    g->thermal_violation_ns = strtoull(v, NULL, 10);
  else if (strcmp(k, "recovery_action") == 0)
    g->recovery_action = (unsigned)strtoul(v, NULL, 10);
  else if (strcmp(k, "persistence") == 0)
    g->persistence = (unsigned)strtoul(v, NULL, 10);
  else if (strcmp(k, "inforom_valid") == 0)
    g->inforom_valid = atoi(v);
  else if (strcmp(k, "serial") == 0)
    set_str(g->serial, sizeof(g->serial), v);
  else if (strcmp(k, "vbios_version") == 0)
    set_str(g->vbios, sizeof(g->vbios), v);
  else if (strcmp(k, "inforom_image_version") == 0)
    set_str(g->inforom_image, sizeof(g->inforom_image), v);
  else if (strcmp(k, "unsupported") == 0)
    set_names(g->unsupported, sizeof(g->unsupported), v);
  else if (strcmp(k, "hang_functions") == 0)
    set_names(g->hang_functions, sizeof(g->hang_functions), v);
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
  } else if (strcmp(k, "unsupported") == 0) {
    set_names(g_unsupported, sizeof(g_unsupported), v);
  } else if (strcmp(k, "hang_functions") == 0) {
    set_names(g_hang_functions, sizeof(g_hang_functions), v);
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

/* Simulates a hung driver: sleeps while the scenario asks for a hang of `fn` (global hang_ms,
 * or the GPU's hang_ms when dev != NULL; each limited to its hang_functions list when one is
 * given). Re-reads the scenario every 10 ms, so a test can end the hang early by rewriting
 * the file. Called without g_mu held. */
static void maybe_hang(struct nvmlDevice_st* dev, const char* fn) {
  long long start = now_ms();
  for (;;) {
    pthread_mutex_lock(&g_mu);
    refresh_locked();
    unsigned hang = 0;
    if (g_hang_functions[0] == '\0' || names_have(g_hang_functions, fn)) hang = g_global_hang_ms;
    if (dev != NULL && dev->hang_ms > hang &&
        (dev->hang_functions[0] == '\0' || names_have(dev->hang_functions, fn))) {
      hang = dev->hang_ms;
    }
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
static nvmlReturn_t enter_device_fn(struct nvmlDevice_st* d, const char* fn) {
  maybe_hang(d >= &g_gpus[0] && d < &g_gpus[MAX_GPUS] ? d : NULL, fn);
  pthread_mutex_lock(&g_mu);
  nvmlReturn_t r = refresh_locked();
  if (r == NVML_SUCCESS && g_init_count <= 0) r = NVML_ERROR_UNINITIALIZED;
  if (r == NVML_SUCCESS && !valid_device(d)) r = NVML_ERROR_INVALID_ARGUMENT;
  if (r == NVML_SUCCESS && d->lost) r = NVML_ERROR_GPU_IS_LOST;
  if (r == NVML_SUCCESS && d->error != 0) r = d->error;
  if (r == NVML_SUCCESS && (names_have(g_unsupported, fn) || names_have(d->unsupported, fn))) {
    r = NVML_ERROR_NOT_SUPPORTED;
  }
  if (r != NVML_SUCCESS) pthread_mutex_unlock(&g_mu);
  return r;
}
#define enter_device(d) enter_device_fn((d), __func__)

static nvmlReturn_t enter_system_fn(const char* fn) {
  maybe_hang(NULL, fn);
  pthread_mutex_lock(&g_mu);
  nvmlReturn_t r = refresh_locked();
  if (r == NVML_SUCCESS && g_init_count <= 0) r = NVML_ERROR_UNINITIALIZED;
  if (r == NVML_SUCCESS && names_have(g_unsupported, fn)) r = NVML_ERROR_NOT_SUPPORTED;
  if (r != NVML_SUCCESS) pthread_mutex_unlock(&g_mu);
  return r;
}
#define enter_system() enter_system_fn(__func__)

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
  maybe_hang(NULL, __func__);
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

#define MIB 1048576ULL

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t* mem) {
  nvmlReturn_t r = enter_device(d);
  if (r != NVML_SUCCESS) return r;
  if (mem == NULL) return leave(NVML_ERROR_INVALID_ARGUMENT);
  /* The original call counts the reserved memory as used. */
  mem->total = d->memory_total_mib * MIB;
  mem->used = (d->memory_used_mib + d->memory_reserved_mib) * MIB;
  mem->free = mem->total > mem->used ? mem->total - mem->used : 0;
  return leave(NVML_SUCCESS);
}

#ifndef FAKE_NVML_FALLBACK_ONLY
FAKE_EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t d, nvmlMemory_v2_t* mem) {
  nvmlReturn_t r = enter_device(d);
  if (r != NVML_SUCCESS) return r;
  if (mem == NULL) return leave(NVML_ERROR_INVALID_ARGUMENT);
  if (mem->version != nvmlMemory_v2) return leave(NVML_ERROR_ARGUMENT_VERSION_MISMATCH);
  mem->total = d->memory_total_mib * MIB;
  mem->reserved = d->memory_reserved_mib * MIB;
  mem->used = d->memory_used_mib * MIB;
  unsigned long long taken = mem->used + mem->reserved;
  mem->free = mem->total > taken ? mem->total - taken : 0;
  return leave(NVML_SUCCESS);
}
#endif

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
  if (d->fan_count == 0) return leave(NVML_ERROR_NOT_SUPPORTED);
  *pct = d->fans[0];
  return leave(NVML_SUCCESS);
}

#ifndef FAKE_NVML_FALLBACK_ONLY
FAKE_EXPORT nvmlReturn_t nvmlDeviceGetNumFans(nvmlDevice_t d, unsigned* n) {
  nvmlReturn_t r = enter_device(d);
  if (r != NVML_SUCCESS) return r;
  if (n == NULL) return leave(NVML_ERROR_INVALID_ARGUMENT);
  *n = d->fan_count;
  return leave(NVML_SUCCESS);
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetFanSpeed_v2(nvmlDevice_t d, unsigned fan, unsigned* pct) {
  nvmlReturn_t r = enter_device(d);
  if (r != NVML_SUCCESS) return r;
  if (pct == NULL || fan >= d->fan_count) return leave(NVML_ERROR_INVALID_ARGUMENT);
  *pct = d->fans[fan];
  return leave(NVML_SUCCESS);
}
#endif

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
  if (!d->ecc_supported || !d->ecc_enabled) return leave(NVML_ERROR_NOT_SUPPORTED);
  const int unc = error_type == NVML_MEMORY_ERROR_TYPE_UNCORRECTED;
  unsigned long long vol = unc ? d->ecc_uncorrected : d->ecc_corrected;
  long long agg = unc ? d->ecc_aggregate_uncorrected : d->ecc_aggregate_corrected;
  *count = counter_type == NVML_AGGREGATE_ECC && agg >= 0 ? (unsigned long long)agg : vol;
  return leave(NVML_SUCCESS);
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetEccMode(nvmlDevice_t d, unsigned* current,
                                              unsigned* pending) {
  nvmlReturn_t r = enter_device(d);
  if (r != NVML_SUCCESS) return r;
  if (current == NULL || pending == NULL) return leave(NVML_ERROR_INVALID_ARGUMENT);
  if (!d->ecc_supported) return leave(NVML_ERROR_NOT_SUPPORTED);
  *current = *pending = d->ecc_enabled ? NVML_FEATURE_ENABLED : NVML_FEATURE_DISABLED;
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

#ifndef FAKE_NVML_FALLBACK_ONLY
FAKE_EXPORT nvmlReturn_t nvmlDeviceGetCurrentClocksEventReasons(nvmlDevice_t d,
                                                                unsigned long long* reasons) {
  nvmlReturn_t r = enter_device(d);
  if (r != NVML_SUCCESS) return r;
  if (reasons == NULL) return leave(NVML_ERROR_INVALID_ARGUMENT);
  *reasons = d->throttle_reasons;
  return leave(NVML_SUCCESS);
}
#endif

static nvmlReturn_t device_string(const char* value, char* buf, unsigned length) {
  return leave(copy_out(value, buf, length));
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetSerial(nvmlDevice_t d, char* buf, unsigned length) {
  nvmlReturn_t r = enter_device(d);
  return r != NVML_SUCCESS ? r : device_string(d->serial, buf, length);
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetVbiosVersion(nvmlDevice_t d, char* buf, unsigned length) {
  nvmlReturn_t r = enter_device(d);
  return r != NVML_SUCCESS ? r : device_string(d->vbios, buf, length);
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetInforomImageVersion(nvmlDevice_t d, char* buf,
                                                          unsigned length) {
  nvmlReturn_t r = enter_device(d);
  return r != NVML_SUCCESS ? r : device_string(d->inforom_image, buf, length);
}

/* One unsigned value of the device: the shape of many NVML queries. */
#define FAKE_UINT_QUERY(fn_name, expr)                              \
  FAKE_EXPORT nvmlReturn_t fn_name(nvmlDevice_t d, unsigned* out) { \
    nvmlReturn_t r = enter_device(d);                               \
    if (r != NVML_SUCCESS) return r;                                \
    if (out == NULL) return leave(NVML_ERROR_INVALID_ARGUMENT);     \
    *out = (expr);                                                  \
    return leave(NVML_SUCCESS);                                     \
  }

FAKE_UINT_QUERY(nvmlDeviceGetCurrPcieLinkGeneration, d->pcie_gen)
FAKE_UINT_QUERY(nvmlDeviceGetCurrPcieLinkWidth, d->pcie_width)
#ifndef FAKE_NVML_FALLBACK_ONLY
FAKE_UINT_QUERY(nvmlDeviceGetMaxPcieLinkGeneration, d->pcie_max_gen)
#endif
FAKE_UINT_QUERY(nvmlDeviceGetGpuMaxPcieLinkGeneration, d->pcie_max_gen)
FAKE_UINT_QUERY(nvmlDeviceGetMaxPcieLinkWidth, d->pcie_max_width)
FAKE_UINT_QUERY(nvmlDeviceGetPcieReplayCounter, d->pcie_replay)
FAKE_UINT_QUERY(nvmlDeviceGetRetiredPagesPendingStatus,
                d->retired_pending ? NVML_FEATURE_ENABLED : NVML_FEATURE_DISABLED)
FAKE_UINT_QUERY(nvmlDeviceGetPersistenceMode,
                d->persistence ? NVML_FEATURE_ENABLED : NVML_FEATURE_DISABLED)

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetTemperatureThreshold(nvmlDevice_t d, int which,
                                                           unsigned* temp) {
  nvmlReturn_t r = enter_device(d);
  if (r != NVML_SUCCESS) return r;
  if (temp == NULL) return leave(NVML_ERROR_INVALID_ARGUMENT);
  switch (which) {
    case NVML_TEMPERATURE_THRESHOLD_SHUTDOWN:
      *temp = d->temp_shutdown;
      break;
    case NVML_TEMPERATURE_THRESHOLD_SLOWDOWN:
      *temp = d->temp_slowdown;
      break;
    default:
      return leave(NVML_ERROR_NOT_SUPPORTED);
  }
  return leave(NVML_SUCCESS);
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t d,
                                                             unsigned long long* mj) {
  nvmlReturn_t r = enter_device(d);
  if (r != NVML_SUCCESS) return r;
  if (mj == NULL) return leave(NVML_ERROR_INVALID_ARGUMENT);
  *mj = d->energy_mj;
  return leave(NVML_SUCCESS);
}

/* Retired pages of one cause, NVML style: *count in = room, out = pages; fake addresses. */
static nvmlReturn_t retired_pages(struct nvmlDevice_st* d, int cause, unsigned* count,
                                  unsigned long long* addresses, unsigned long long* timestamps) {
  if (count == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  unsigned n;
  if (cause == NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS) {
    n = d->retired_sbe;
  } else if (cause == NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR) {
    n = d->retired_dbe;
  } else {
    return NVML_ERROR_INVALID_ARGUMENT;
  }
  if (*count < n) {
    *count = n;
    return NVML_ERROR_INSUFFICIENT_SIZE;
  }
  if (n > 0 && addresses == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  for (unsigned i = 0; i < n; ++i) {
    addresses[i] = 0x100000ULL * (unsigned long long)(i + 1) + (unsigned long long)cause;
    if (timestamps != NULL) timestamps[i] = 1700000000ULL + i;
  }
  *count = n;
  return NVML_SUCCESS;
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetRetiredPages(nvmlDevice_t d, int cause, unsigned* count,
                                                   unsigned long long* addresses) {
  nvmlReturn_t r = enter_device(d);
  if (r != NVML_SUCCESS) return r;
  return leave(retired_pages(d, cause, count, addresses, NULL));
}

#ifndef FAKE_NVML_FALLBACK_ONLY
FAKE_EXPORT nvmlReturn_t nvmlDeviceGetRetiredPages_v2(nvmlDevice_t d, int cause, unsigned* count,
                                                      unsigned long long* addresses,
                                                      unsigned long long* timestamps) {
  nvmlReturn_t r = enter_device(d);
  if (r != NVML_SUCCESS) return r;
  return leave(retired_pages(d, cause, count, addresses, timestamps));
}
#endif

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetRemappedRows(nvmlDevice_t d, unsigned* corrected,
                                                   unsigned* uncorrected, unsigned* pending,
                                                   unsigned* failure) {
  nvmlReturn_t r = enter_device(d);
  if (r != NVML_SUCCESS) return r;
  if (corrected == NULL || uncorrected == NULL || pending == NULL || failure == NULL) {
    return leave(NVML_ERROR_INVALID_ARGUMENT);
  }
  *corrected = d->remapped_correctable;
  *uncorrected = d->remapped_uncorrectable;
  *pending = d->remap_pending;
  *failure = d->remap_failure;
  return leave(NVML_SUCCESS);
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetViolationStatus(nvmlDevice_t d, int policy,
                                                      nvmlViolationTime_t* v) {
  nvmlReturn_t r = enter_device(d);
  if (r != NVML_SUCCESS) return r;
  if (v == NULL) return leave(NVML_ERROR_INVALID_ARGUMENT);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  v->referenceTime =
      (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000;
  if (policy == NVML_PERF_POLICY_POWER) {
    v->violationTime = d->power_violation_ns;
  } else if (policy == NVML_PERF_POLICY_THERMAL) {
    v->violationTime = d->thermal_violation_ns;
  } else {
    return leave(NVML_ERROR_NOT_SUPPORTED);
  }
  return leave(NVML_SUCCESS);
}

/* Answers the recovery action field; any other field gets NOT_SUPPORTED in its own entry. */
FAKE_EXPORT nvmlReturn_t nvmlDeviceGetFieldValues(nvmlDevice_t d, int n, nvmlFieldValue_t* v) {
  nvmlReturn_t r = enter_device(d);
  if (r != NVML_SUCCESS) return r;
  if (n < 0 || (n > 0 && v == NULL)) return leave(NVML_ERROR_INVALID_ARGUMENT);
  for (int i = 0; i < n; ++i) {
    v[i].timestamp = now_ms() * 1000;
    v[i].latencyUsec = 0;
    if (v[i].fieldId == NVML_FI_DEV_GET_GPU_RECOVERY_ACTION) {
      v[i].valueType = NVML_VALUE_TYPE_UNSIGNED_INT;
      v[i].nvmlReturn = NVML_SUCCESS;
      v[i].value.uiVal = d->recovery_action;
    } else {
      v[i].nvmlReturn = NVML_ERROR_NOT_SUPPORTED;
    }
  }
  return leave(NVML_SUCCESS);
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceValidateInforom(nvmlDevice_t d) {
  nvmlReturn_t r = enter_device(d);
  if (r != NVML_SUCCESS) return r;
  return leave(d->inforom_valid ? NVML_SUCCESS : NVML_ERROR_CORRUPTED_INFOROM);
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
