/* Fake nvidia-smi for tests: answers the selective queries the agent's SmiGpuProbe makes
 * (--query-gpu, --query-compute-apps, --query-remapped-rows with --format=csv,...) and a plain
 * run (the banner with the CUDA version) from a scenario file in the fake NVML's format
 * (tests/fake_nvml/README.md) plus a few keys of its own (README.md next to this file).
 *
 * The scenario is the file named like the program plus ".ini" (argv[0], else
 * /proc/self/exe): a test links or copies this program as <dir>/nvidia-smi and writes
 * <dir>/nvidia-smi.ini. The agent runs tools with a reduced environment, so no variable is
 * used. */
#define _GNU_SOURCE
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_GPUS 16
#define MAX_KEYS 96
#define LEN 256

struct section {
  int used;
  char keys[MAX_KEYS][64];
  char values[MAX_KEYS][LEN];
  int count;
};

static struct section g_global;
static struct section g_gpus[MAX_GPUS];

static char* trim(char* s) {
  while (*s == ' ' || *s == '\t') s++;
  size_t n = strlen(s);
  while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
    s[--n] = '\0';
  return s;
}

static void put(struct section* sec, const char* k, const char* v) {
  if (sec->count >= MAX_KEYS) return;
  snprintf(sec->keys[sec->count], sizeof(sec->keys[0]), "%s", k);
  snprintf(sec->values[sec->count], sizeof(sec->values[0]), "%s", v);
  sec->count++;
  sec->used = 1;
}

static const char* get(const struct section* sec, const char* k, const char* fallback) {
  for (int i = sec->count - 1; i >= 0; i--) {
    if (strcmp(sec->keys[i], k) == 0) return sec->values[i];
  }
  return fallback;
}

static void load(const char* path) {
  FILE* f = fopen(path, "r");
  if (f == NULL) return; /* no scenario: one GPU with the defaults */
  char line[1024];
  struct section* cur = &g_global;
  while (fgets(line, sizeof line, f) != NULL) {
    char* s = trim(line);
    if (*s == '\0' || *s == '#' || *s == ';') continue;
    if (*s == '[') {
      int n = -1;
      if (sscanf(s, "[gpu%d]", &n) == 1 && n >= 0 && n < MAX_GPUS) {
        cur = &g_gpus[n];
        cur->used = 1;
      }
      continue;
    }
    char* eq = strchr(s, '=');
    if (eq == NULL) continue;
    *eq = '\0';
    put(cur, trim(s), trim(eq + 1));
  }
  fclose(f);
}

static int gpu_count(void) {
  const char* c = get(&g_global, "gpu_count", NULL);
  if (c != NULL) return atoi(c);
  int n = 0;
  for (int i = 0; i < MAX_GPUS; i++)
    if (g_gpus[i].used) n = i + 1;
  return n > 0 ? n : 1;
}

/* Is `item` in the comma-separated `list`? */
static int in_list(const char* list, const char* item) {
  if (list == NULL) return 0;
  size_t n = strlen(item);
  const char* p = list;
  while (*p) {
    while (*p == ' ' || *p == ',') p++;
    const char* e = p;
    while (*e && *e != ',') e++;
    const char* t = e;
    while (t > p && t[-1] == ' ') t--;
    if ((size_t)(t - p) == n && strncmp(p, item, n) == 0) return 1;
    p = e;
  }
  return 0;
}

static const char* yes_no(const char* v) { return atoi(v) ? "Yes" : "No"; }
static const char* enabled(const char* v) { return atoi(v) ? "Enabled" : "Disabled"; }

/* The value nvidia-smi would print for `field` of GPU `i` (nounits), or NULL for a field this
 * program does not know. */
static const char* value(int i, const char* field, char* buf, size_t len) {
  const struct section* g = &g_gpus[i];
  if (in_list(get(g, "smi_not_supported", NULL), field)) return "[Not Supported]";
  int ecc = strcmp(get(g, "ecc", "supported"), "none") != 0;
  char def[LEN];
#define IS(name) (strcmp(field, name) == 0)
#define OUT(...) (snprintf(buf, len, __VA_ARGS__), buf)
  if (IS("index")) return OUT("%d", i);
  if (IS("uuid") || IS("gpu_uuid")) {
    snprintf(def, sizeof def, "GPU-fa4e0000-0000-0000-0000-%012d", i);
    return OUT("%s", get(g, "uuid", def));
  }
  if (IS("name")) {
    snprintf(def, sizeof def, "Fake GPU %d", i);
    return OUT("%s", get(g, "name", def));
  }
  if (IS("pci.bus_id") || IS("gpu_bus_id")) {
    snprintf(def, sizeof def, "00000000:1%X:00.0", i);
    return OUT("%s", get(g, "pci_bus_id", def));
  }
  if (IS("serial")) return OUT("%s", get(g, "serial", "[N/A]"));
  if (IS("vbios_version")) return OUT("%s", get(g, "vbios", "96.00.74.00.01"));
  if (IS("inforom.img")) return OUT("%s", get(g, "inforom_image", "G520.0200.00.05"));
  if (IS("compute_cap")) return OUT("%s", get(g, "compute_capability", "8.6"));
  if (IS("mig.mode.current")) {
    const char* m = get(g, "mig", "unsupported");
    return strcmp(m, "enabled") == 0    ? "Enabled"
           : strcmp(m, "disabled") == 0 ? "Disabled"
                                        : "[N/A]";
  }
  if (IS("memory.total")) return OUT("%s", get(g, "memory_total_mib", "24576"));
  if (IS("memory.used")) return OUT("%s", get(g, "memory_used_mib", "0"));
  if (IS("memory.free")) {
    return OUT("%lld",
               atoll(get(g, "memory_total_mib", "24576")) - atoll(get(g, "memory_used_mib", "0")));
  }
  if (IS("utilization.gpu")) return OUT("%s", get(g, "utilization", "0"));
  if (IS("utilization.memory")) return OUT("%s", get(g, "memory_utilization", "0"));
  if (IS("temperature.gpu")) return OUT("%s", get(g, "temperature", "40"));
  if (IS("power.draw")) return OUT("%.2f", atof(get(g, "power_draw_w", "50")));
  if (IS("enforced.power.limit") || IS("power.limit")) {
    return OUT("%.2f", atof(get(g, "power_limit_w", "300")));
  }
  if (IS("fan.speed")) {
    const char* fan = get(g, "fan", "30");
    return strcmp(fan, "none") == 0 ? "[N/A]" : OUT("%s", fan);
  }
  if (IS("clocks.sm")) return OUT("%s", get(g, "sm_clock", "1500"));
  if (IS("clocks.mem")) return OUT("%s", get(g, "mem_clock", "5000"));
  if (IS("pcie.link.gen.gpucurrent") || IS("pcie.link.gen.current")) {
    return OUT("%s", get(g, "pcie_gen", "4"));
  }
  if (IS("pcie.link.gen.max")) return OUT("%s", get(g, "pcie_max_gen", "4"));
  if (IS("pcie.link.width.current")) return OUT("%s", get(g, "pcie_width", "16"));
  if (IS("pcie.link.width.max")) return OUT("%s", get(g, "pcie_max_width", "16"));
  if (IS("ecc.mode.current")) return ecc ? "Enabled" : "[N/A]";
  if (IS("ecc.errors.corrected.volatile.total")) {
    return ecc ? OUT("%s", get(g, "ecc_corrected", "0")) : "[N/A]";
  }
  if (IS("ecc.errors.uncorrected.volatile.total")) {
    return ecc ? OUT("%s", get(g, "ecc_uncorrected", "0")) : "[N/A]";
  }
  if (IS("ecc.errors.corrected.aggregate.total")) {
    return ecc ? OUT("%s", get(g, "ecc_aggregate_corrected", "0")) : "[N/A]";
  }
  if (IS("ecc.errors.uncorrected.aggregate.total")) {
    return ecc ? OUT("%s", get(g, "ecc_aggregate_uncorrected", "0")) : "[N/A]";
  }
  if (IS("retired_pages.sbe")) return ecc ? OUT("%s", get(g, "retired_sbe", "0")) : "[N/A]";
  if (IS("retired_pages.dbe")) return ecc ? OUT("%s", get(g, "retired_dbe", "0")) : "[N/A]";
  if (IS("retired_pages.pending")) return ecc ? yes_no(get(g, "retired_pending", "0")) : "[N/A]";
  if (IS("clocks_event_reasons.active") || IS("clocks_throttle_reasons.active")) {
    return OUT("0x%016llx", strtoull(get(g, "throttle_reasons", "0"), NULL, 0));
  }
  if (IS("persistence_mode")) return enabled(get(g, "persistence", "1"));
  if (IS("reset_status.reset_required")) return yes_no(get(g, "reset_required", "0"));
  if (IS("reset_status.drain_and_reset_recommended")) {
    return yes_no(get(g, "drain_and_reset", "0"));
  }
  if (IS("driver_version")) return OUT("%s", get(&g_global, "driver_version", "550.54.15"));
  if (IS("remapped_rows.correctable")) return OUT("%s", get(g, "remapped_correctable", "0"));
  if (IS("remapped_rows.uncorrectable")) return OUT("%s", get(g, "remapped_uncorrectable", "0"));
  if (IS("remapped_rows.pending")) return yes_no(get(g, "remapped_pending", "0"));
  if (IS("remapped_rows.failure")) return yes_no(get(g, "remapped_failure", "0"));
  if (IS("pid")) return NULL; /* per process, printed by the caller */
#undef IS
#undef OUT
  return NULL;
}

static int known_field(const char* field) {
  if (in_list(get(&g_global, "smi_unknown_fields", NULL), field)) return 0;
  char buf[LEN];
  return value(0, field, buf, sizeof buf) != NULL;
}

/* Splits the comma-separated list after '=' into fields; returns their count. */
static int split_fields(const char* list, char fields[][64], int max) {
  int n = 0;
  const char* p = list;
  while (*p && n < max) {
    const char* e = strchr(p, ',');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if (len >= 64) len = 63;
    memcpy(fields[n], p, len);
    fields[n][len] = '\0';
    n++;
    if (e == NULL) break;
    p = e + 1;
  }
  return n;
}

static int check_fields(char fields[][64], int n, int apps) {
  for (int k = 0; k < n; k++) {
    int ok = apps ? (strcmp(fields[k], "gpu_uuid") == 0 || strcmp(fields[k], "pid") == 0)
                  : known_field(fields[k]);
    if (!ok) {
      printf("Field \"%s\" is not a valid field to query.\n\n", fields[k]);
      return 0;
    }
  }
  return 1;
}

/* The lost GPU's line, as nvidia-smi prints a GPU it cannot open. */
static void print_lost(int i) {
  char buf[LEN];
  const char* bus = value(i, "pci.bus_id", buf, sizeof buf);
  printf("Unable to determine the device handle for GPU%s: Unknown Error\n",
         strlen(bus) > 4 ? bus + 4 : bus);
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

int main(int argc, char** argv) {
  char path[PATH_MAX];
  if (strchr(argv[0], '/') != NULL) {
    snprintf(path, sizeof path, "%s.ini", argv[0]);
  } else {
    char exe[PATH_MAX - 8];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = '\0';
    snprintf(path, sizeof path, "%s.ini", exe);
  }
  load(path);

  long hang = atol(get(&g_global, "hang_ms", "0"));
  if (hang > 0) sleep_ms(hang);
  const char* fail = get(&g_global, "smi_fail", NULL);
  if (fail != NULL) {
    printf(
        "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure "
        "that the latest NVIDIA driver is installed and running.\n\n");
    return atoi(fail) > 0 ? atoi(fail) : 9;
  }

  const char* query = NULL;
  int kind = 0; /* 1 gpu, 2 compute apps, 3 remapped rows */
  int has_format = 0;
  for (int a = 1; a < argc; a++) {
    if (strncmp(argv[a], "--query-gpu=", 12) == 0) {
      query = argv[a] + 12;
      kind = 1;
    } else if (strncmp(argv[a], "--query-compute-apps=", 21) == 0) {
      query = argv[a] + 21;
      kind = 2;
    } else if (strncmp(argv[a], "--query-remapped-rows=", 22) == 0) {
      query = argv[a] + 22;
      kind = 3;
    } else if (strncmp(argv[a], "--format=", 9) == 0) {
      has_format = strstr(argv[a], "csv") != NULL;
    } else {
      printf("Invalid combination of input arguments. Please run 'nvidia-smi -h' for help.\n");
      return 2;
    }
  }
  const int count = gpu_count();
  if (kind == 0) { /* plain run: the banner's first lines */
    const char* cuda = get(&g_global, "cuda_version", "12040");
    int c = atoi(cuda);
    printf("+------------------------------------------------------------------------------+\n");
    printf("| NVIDIA-SMI %s   Driver Version: %s   CUDA Version: %d.%d     |\n",
           get(&g_global, "driver_version", "550.54.15"),
           get(&g_global, "driver_version", "550.54.15"), c / 1000, (c % 1000) / 10);
    printf("+------------------------------------------------------------------------------+\n");
    return 0;
  }
  if (!has_format) {
    printf("--format is mandatory with --query-*\n");
    return 2;
  }
  if (kind == 3 && strcmp(get(&g_global, "smi_remapped_rows", "supported"), "unsupported") == 0) {
    printf("This query is not supported on this system.\n");
    return 3;
  }
  char fields[128][64];
  int n = split_fields(query, fields, 128);
  if (!check_fields(fields, n, kind == 2)) return 2;

  int any_lost = 0;
  for (int i = 0; i < count; i++) {
    const struct section* g = &g_gpus[i];
    long gpu_hang = atol(get(g, "hang_ms", "0"));
    if (gpu_hang > 0) sleep_ms(gpu_hang);
    if (atoi(get(g, "lost", "0"))) {
      any_lost = 1;
      if (kind == 1) print_lost(i);
      continue;
    }
    char buf[LEN];
    if (kind == 2) { /* one row per process */
      const char* pids = get(g, "processes", "");
      const char* p = pids;
      while (*p) {
        while (*p == ',' || *p == ' ') p++;
        if (!*p) break;
        long pid = strtol(p, (char**)&p, 10);
        for (int k = 0; k < n; k++) {
          if (k) printf(", ");
          if (strcmp(fields[k], "pid") == 0) {
            printf("%ld", pid);
          } else {
            printf("%s", value(i, fields[k], buf, sizeof buf));
          }
        }
        printf("\n");
      }
      continue;
    }
    for (int k = 0; k < n; k++) {
      if (k) printf(", ");
      printf("%s", value(i, fields[k], buf, sizeof buf));
    }
    printf("\n");
  }
  return any_lost && kind == 1 ? 15 : 0;
}
