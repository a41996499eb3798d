#include "store/migrations.h"

namespace taolie::store {
namespace {

// Migration 1: the initial schema.
constexpr std::string_view kInitialSchema = R"sql(
CREATE TABLE agent_state (
  key        text PRIMARY KEY,
  value      text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE deployments (
  id               text PRIMARY KEY,
  command_id       text UNIQUE,
  user_id          text NOT NULL DEFAULT '',
  template_id      text NOT NULL DEFAULT '',
  image            text NOT NULL DEFAULT '',
  state            text NOT NULL CHECK (state IN ('accepted', 'pulling', 'creating', 'starting',
                                                  'readiness', 'running', 'stopping', 'ended')),
  spec_json        text NOT NULL DEFAULT '{}',
  container_id     text NOT NULL DEFAULT '',
  container_name   text NOT NULL DEFAULT '',
  gpu_uuids        text[] NOT NULL DEFAULT '{}',
  duration_minutes integer NOT NULL,
  price_per_hour   double precision,
  ssh_username     text NOT NULL DEFAULT '',
  ssh_password     text,
  jupyter_token    text NOT NULL DEFAULT '',
  created_at       timestamptz NOT NULL DEFAULT now(),
  started_at       timestamptz,
  expires_at       timestamptz,
  warned_at        timestamptz,
  ended_at         timestamptz,
  end_status       text NOT NULL DEFAULT ''
                   CHECK (end_status IN ('', 'terminated', 'expired', 'failed')),
  end_reason       text NOT NULL DEFAULT '',
  error_stage      text NOT NULL DEFAULT '',
  error            text NOT NULL DEFAULT '',
  updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX deployments_active_idx ON deployments (created_at) WHERE state <> 'ended';
CREATE INDEX deployments_created_idx ON deployments (created_at DESC);

CREATE TABLE gpu_status (
  uuid            text PRIMARY KEY,
  index           integer NOT NULL,
  name            text NOT NULL DEFAULT '',
  memory_total_mb bigint NOT NULL DEFAULT 0,
  pci_bus_id      text NOT NULL DEFAULT '',
  health          text NOT NULL DEFAULT 'healthy'
                  CHECK (health IN ('healthy', 'warning', 'unhealthy', 'lost')),
  present         boolean NOT NULL DEFAULT true,
  deployment_id   text REFERENCES deployments (id) ON DELETE SET NULL,
  claimed_at      timestamptz,
  updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX gpu_status_deployment_idx ON gpu_status (deployment_id)
  WHERE deployment_id IS NOT NULL;

CREATE TABLE port_allocations (
  host_port      integer PRIMARY KEY CHECK (host_port BETWEEN 1 AND 65535),
  deployment_id  text NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
  container_port integer NOT NULL CHECK (container_port BETWEEN 1 AND 65535),
  role           text NOT NULL,
  position       integer NOT NULL DEFAULT 0,
  allocated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX port_allocations_deployment_idx ON port_allocations (deployment_id, position);

CREATE TABLE command_queue (
  command_id    text PRIMARY KEY,
  seq           bigserial NOT NULL,
  command_type  text NOT NULL,
  payload       text NOT NULL DEFAULT '',
  state         text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done')),
  result        text NOT NULL DEFAULT '',
  error         text NOT NULL DEFAULT '',
  deployment_id text NOT NULL DEFAULT '',
  times_seen    integer NOT NULL DEFAULT 1,
  received_at   timestamptz NOT NULL DEFAULT now(),
  last_seen_at  timestamptz NOT NULL DEFAULT now(),
  processed_at  timestamptz,
  acked_at      timestamptz
);
CREATE INDEX command_queue_pending_idx ON command_queue (received_at, seq) WHERE state = 'pending';
CREATE INDEX command_queue_done_idx ON command_queue (processed_at) WHERE state = 'done';

CREATE TABLE outbox (
  id              bigserial PRIMARY KEY,
  deployment_id   text NOT NULL DEFAULT '',
  kind            text NOT NULL,
  path            text NOT NULL,
  body            text NOT NULL DEFAULT '',
  ext             boolean NOT NULL DEFAULT false,
  created_at      timestamptz NOT NULL DEFAULT now(),
  attempts        integer NOT NULL DEFAULT 0,
  last_error      text NOT NULL DEFAULT '',
  last_attempt_at timestamptz,
  done_at         timestamptz,
  outcome         text CHECK (outcome IN ('delivered', 'unsupported', 'rejected'))
);
CREATE INDEX outbox_pending_idx ON outbox (id) WHERE done_at IS NULL;
CREATE INDEX outbox_done_idx ON outbox (done_at) WHERE done_at IS NOT NULL;
CREATE INDEX outbox_deployment_idx ON outbox (deployment_id);

CREATE TABLE metric_samples (
  id                  bigserial PRIMARY KEY,
  taken_at            timestamptz NOT NULL,
  cpu_utilization     double precision NOT NULL DEFAULT 0,
  ram_used_gb         double precision NOT NULL DEFAULT 0,
  storage_used_gb     double precision NOT NULL DEFAULT 0,
  network_utilization double precision NOT NULL DEFAULT 0,
  upload_mbps         double precision NOT NULL DEFAULT 0,
  download_mbps       double precision NOT NULL DEFAULT 0,
  uptime_hours        bigint NOT NULL DEFAULT 0,
  pushed_at           timestamptz
);
CREATE INDEX metric_samples_unpushed_idx ON metric_samples (id) WHERE pushed_at IS NULL;
CREATE INDEX metric_samples_taken_idx ON metric_samples (taken_at);

CREATE TABLE gpu_metrics (
  id                bigserial PRIMARY KEY,
  sample_id         bigint NOT NULL REFERENCES metric_samples (id) ON DELETE CASCADE,
  gpu_uuid          text NOT NULL,
  gpu_index         integer NOT NULL,
  utilization       double precision,
  memory_used_mb    bigint,
  memory_total_mb   bigint,
  temperature_c     double precision,
  power_draw_watts  double precision,
  power_limit_watts double precision,
  fan_speed_percent double precision,
  sm_clock_mhz      bigint,
  mem_clock_mhz     bigint,
  deployment_id     text NOT NULL DEFAULT '',
  taken_at          timestamptz NOT NULL
);
CREATE INDEX gpu_metrics_sample_idx ON gpu_metrics (sample_id);
CREATE INDEX gpu_metrics_gpu_time_idx ON gpu_metrics (gpu_uuid, taken_at);

CREATE TABLE health_checks (
  id                     bigserial PRIMARY KEY,
  checked_at             timestamptz NOT NULL,
  is_healthy             boolean NOT NULL,
  status                 text NOT NULL DEFAULT '',
  temperature_ok         boolean NOT NULL,
  power_ok               boolean NOT NULL,
  network_ok             boolean NOT NULL,
  storage_ok             boolean NOT NULL,
  gpu_performance_score  double precision NOT NULL,
  system_stability_score double precision NOT NULL,
  details                jsonb,
  pushed_at              timestamptz
);
CREATE INDEX health_checks_unpushed_idx ON health_checks (id) WHERE pushed_at IS NULL;
CREATE INDEX health_checks_checked_idx ON health_checks (checked_at);

CREATE TABLE gpu_health_history (
  id         bigserial PRIMARY KEY,
  report_id  bigint NOT NULL REFERENCES health_checks (id) ON DELETE CASCADE,
  gpu_uuid   text NOT NULL,
  health     text NOT NULL,
  checks     jsonb,
  checked_at timestamptz NOT NULL
);
CREATE INDEX gpu_health_history_report_idx ON gpu_health_history (report_id);
CREATE INDEX gpu_health_history_gpu_idx ON gpu_health_history (gpu_uuid, checked_at);
)sql";

// Migration 2: the outbox keeps order per deployment, not globally (platform-api.md §7), and
// retries each failed event on its own schedule. next_attempt_at: earliest next try after a
// failure (agent's wall clock); first_failed_at: when the event first failed (ext events are
// given up after server.ext_event_give_up_hours). New outcomes: "superseded" (an `expiring`
// that could not be delivered before the deployment's ending was due) and "failed" (given up).
constexpr std::string_view kOutboxPerDeployment = R"sql(
ALTER TABLE outbox
  ADD COLUMN next_attempt_at timestamptz,
  ADD COLUMN first_failed_at timestamptz;
ALTER TABLE outbox DROP CONSTRAINT outbox_outcome_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_outcome_check
  CHECK (outcome IN ('delivered', 'unsupported', 'rejected', 'superseded', 'failed'));
CREATE INDEX outbox_pending_deployment_idx ON outbox (deployment_id, id) WHERE done_at IS NULL;
)sql";

// Migration 3: each rental's clock, on the monotonic clock with the boot it was measured in
// (agent/rules/rental_clock.h), so that expiry and billing never read the wall clock.
constexpr std::string_view kRentalClock = R"sql(
ALTER TABLE deployments
  ADD COLUMN clock_boot_id    text NOT NULL DEFAULT '',
  ADD COLUMN clock_mono_ns    bigint NOT NULL DEFAULT 0,
  ADD COLUMN clock_wall       timestamptz,
  ADD COLUMN elapsed_ms       bigint NOT NULL DEFAULT 0,
  ADD COLUMN ready_elapsed_ms bigint;
)sql";

// Migration 4: a GPU released by an ended rental is dirty (never claimed) until NVML shows it
// idle again (agent/gpu_cleanliness.h); kept here so that a crash never makes it clean.
constexpr std::string_view kGpuDirty = R"sql(
ALTER TABLE gpu_status
  ADD COLUMN dirty_since timestamptz,
  ADD COLUMN dirty_after text NOT NULL DEFAULT '';
)sql";

// Migration 5: quarantine (issue 8 item 3). A quarantined GPU is not claimed nor offered
// until the health loop releases it; needs_reset: its fault needs a GPU reset first.
constexpr std::string_view kGpuQuarantine = R"sql(
ALTER TABLE gpu_status
  ADD COLUMN quarantined_since timestamptz,
  ADD COLUMN quarantine_reason text NOT NULL DEFAULT '',
  ADD COLUMN needs_reset boolean NOT NULL DEFAULT false;
)sql";

// Every GPU signal issue 8 reads, per sample; and per-rental running totals of the samples taken
// while a rental held the GPU (energy-counter deltas, utilization), so that retention pruning
// gpu_metrics loses nothing of a long rental's metering.
constexpr std::string_view kGpuSignals = R"sql(
ALTER TABLE gpu_metrics
  ADD COLUMN memory_utilization          double precision,
  ADD COLUMN memory_free_mb              bigint,
  ADD COLUMN energy_joules               double precision,
  ADD COLUMN pcie_gen                    bigint,
  ADD COLUMN pcie_width                  bigint,
  ADD COLUMN pcie_replay_count           bigint,
  ADD COLUMN throttle_reasons            bigint,
  ADD COLUMN ecc_volatile_corrected      bigint,
  ADD COLUMN ecc_volatile_uncorrected    bigint,
  ADD COLUMN ecc_aggregate_corrected     bigint,
  ADD COLUMN ecc_aggregate_uncorrected   bigint,
  ADD COLUMN retired_pages_sbe           bigint,
  ADD COLUMN retired_pages_dbe           bigint,
  ADD COLUMN retired_pages_pending       boolean,
  ADD COLUMN remapped_rows_correctable   bigint,
  ADD COLUMN remapped_rows_uncorrectable bigint,
  ADD COLUMN remapped_rows_pending       boolean,
  ADD COLUMN remapped_rows_failure       boolean,
  ADD COLUMN power_violation_ns          bigint,
  ADD COLUMN thermal_violation_ns        bigint,
  ADD COLUMN process_count               integer NOT NULL DEFAULT 0;

CREATE TABLE rental_metering (
  deployment_id      text NOT NULL,
  gpu_uuid           text NOT NULL,
  samples            bigint NOT NULL DEFAULT 0,
  util_samples       bigint NOT NULL DEFAULT 0,
  util_sum           double precision NOT NULL DEFAULT 0,
  energy_joules      double precision,
  last_energy_joules double precision,
  last_at            timestamptz NOT NULL,
  PRIMARY KEY (deployment_id, gpu_uuid)
);
)sql";

// XIDs kept across restarts, attributed to the rental holding the GPU; the kernel-log cursor.
constexpr std::string_view kXidEvents = R"sql(
CREATE TABLE xid_events (
  id            bigserial PRIMARY KEY,
  gpu_uuid      text NOT NULL DEFAULT '',
  pci_bus_id    text NOT NULL DEFAULT '',
  xid           bigint NOT NULL,
  source        text NOT NULL CHECK (source IN ('nvml', 'kmsg')),
  at            timestamptz NOT NULL,
  deployment_id text NOT NULL DEFAULT '',
  severity      text NOT NULL DEFAULT '',
  action        text NOT NULL DEFAULT '',
  message       text NOT NULL DEFAULT '',
  pid           bigint,
  process_name  text NOT NULL DEFAULT ''
);
CREATE INDEX xid_events_at_idx ON xid_events (at);
CREATE INDEX xid_events_deployment_idx ON xid_events (deployment_id) WHERE deployment_id <> '';

ALTER TABLE gpu_status ADD COLUMN reset_at timestamptz;

CREATE TABLE kmsg_cursor (
  only_row   boolean PRIMARY KEY DEFAULT true CHECK (only_row),
  boot_id    text NOT NULL,
  next_seq   bigint NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
)sql";

// Secrets not kept (issue 17 item 5): a command's registry_auth is never stored (only that there
// was one); done commands and ended rentals keep their environment variables' names, not their
// values. What an older agent kept is removed here. The ack of a command is found again by its
// path when the command is delivered again (re-sent from the same row).
constexpr std::string_view kSecretsNotKept = R"sql(
ALTER TABLE command_queue ADD COLUMN registry_auth_withheld boolean NOT NULL DEFAULT false;
CREATE INDEX outbox_ack_path_idx ON outbox (path) WHERE kind = 'ack';

DO $$
DECLARE
  r record;
  j jsonb;
  withheld boolean;
BEGIN
  FOR r IN SELECT command_id, payload, state FROM command_queue WHERE payload <> '' LOOP
    BEGIN
      j := r.payload::jsonb;
    EXCEPTION WHEN others THEN
      CONTINUE;  -- not JSON: no key to remove
    END;
    CONTINUE WHEN jsonb_typeof(j) <> 'object';
    withheld := j ? 'registry_auth';
    j := j - 'registry_auth';
    IF r.state = 'done' AND jsonb_typeof(j -> 'environment') = 'object' THEN
      j := jsonb_set(j, '{environment}',
                     (SELECT coalesce(jsonb_object_agg(k, ''::text), '{}'::jsonb)
                      FROM jsonb_object_keys(j -> 'environment') AS k));
    END IF;
    IF j IS DISTINCT FROM r.payload::jsonb THEN
      UPDATE command_queue SET payload = j::text, registry_auth_withheld = withheld
      WHERE command_id = r.command_id;
    END IF;
  END LOOP;

  FOR r IN SELECT id, spec_json FROM deployments WHERE state = 'ended' LOOP
    BEGIN
      j := r.spec_json::jsonb;
    EXCEPTION WHEN others THEN
      CONTINUE;
    END;
    CONTINUE WHEN jsonb_typeof(j) <> 'object' OR jsonb_typeof(j -> 'env') <> 'array'
                  OR jsonb_array_length(j -> 'env') = 0;
    j := jsonb_set(j, '{env}',
                   (SELECT jsonb_agg(CASE WHEN jsonb_typeof(e) = 'array'
                                               AND jsonb_array_length(e) = 2
                                          THEN jsonb_build_array(e -> 0, ''::text) ELSE e END
                                     ORDER BY n)
                    FROM jsonb_array_elements(j -> 'env') WITH ORDINALITY AS t (e, n)));
    UPDATE deployments SET spec_json = j::text WHERE id = r.id;
  END LOOP;
END
$$;
)sql";

}  // namespace

const std::vector<Migration>& Migrations() {
  static const std::vector<Migration> kMigrations = {
      {1, "initial schema", kInitialSchema},
      {2, "outbox order per deployment, retry schedule", kOutboxPerDeployment},
      {3, "rental clock on monotonic time", kRentalClock},
      {4, "dirty GPUs after a rental", kGpuDirty},
      {5, "GPU quarantine", kGpuQuarantine},
      {6, "every GPU signal per sample, rental metering", kGpuSignals},
      {7, "XIDs with their rental, kernel-log cursor, GPU reset time", kXidEvents},
      {8, "secrets not kept: registry_auth, ended rentals' environment values", kSecretsNotKept},
  };
  return kMigrations;
}

}  // namespace taolie::store
