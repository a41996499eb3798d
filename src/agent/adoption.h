#pragma once
// Adoption of a rental container that has no row (the agent's database was lost). Pure: the
// container as Docker reports it and the operator's port config in; the deployment to insert,
// or why it cannot be adopted safely, out.
//
// A container is adopted when it is running and its labels name a valid deployment id, its
// command, its GPUs, its duration and its deadline (`taolie.expires_at`), and its name is
// `deployment-<id>`. The rental keeps running until that deadline (its time is taken from the
// wall clock, once, since its monotonic checkpoint was lost with the database), then ends as
// any other: `terminated` with its usage. Anything else is ended (stopped and removed): a
// container whose labels are incomplete cannot be billed or expired correctly.
#include <string>

#include "common/result.h"
#include "config/config.h"
#include "docker/docker_client.h"
#include "domain/deployment.h"

namespace taolie::agent {

Result<domain::Deployment> DeploymentFromContainer(const docker::ContainerInfo& c,
                                                   const config::PortsConfig& ports);

}  // namespace taolie::agent
