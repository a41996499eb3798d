#pragma once
// The agent's periodic loops (the README's seven, registration and the outbox sender), one
// file each.
#include "loops/command_poll_loop.h"
#include "loops/duration_monitor_loop.h"
#include "loops/gpu_health_loop.h"
#include "loops/gpu_metrics_loop.h"
#include "loops/health_push_loop.h"
#include "loops/heartbeat_loop.h"
#include "loops/metrics_push_loop.h"
#include "loops/outbox_loop.h"
#include "loops/registration_loop.h"
