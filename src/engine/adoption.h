#pragma once
// Adoption of a rental container that has no row (the agent's database was lost). Pure: the
// container as Docker reports it and the operator's port config in; the deployment to insert,
// or why it cannot be adopted safely, out.
//
// A container is adopted when it is running and its labels name a valid deployment id, its
// command, its GPUs, its duration and its deadline (`taolie.expires_at`), and its name is
// `deployment-<id>`, and what the agent always sets agrees with what Docker reports: the GPUs
// label lists the container's GPU device requests, env DEPLOYMENT_ID is the deployment, and
// the container is not privileged. The rental keeps running until that deadline (its time is taken
// from the wall clock, once, since its monotonic checkpoint was lost with the database), then ends
// as any other: `terminated` with its usage. Anything else is ended (stopped and removed): a
// container whose labels are incomplete cannot be billed or expired correctly.
//
// Whose labels these are: the agent writes every `taolie.*` label it knows on every container
// it creates ("" meaning none), and a container's labels override its image's, so on a
// container the agent created no label comes from the image (an image's
// `LABEL taolie.price_per_hour=1000000` or `taolie.expires_at=9999-...` is overwritten). A
// container someone else created (only root or the docker group can: the host's owner) can
// carry any label and env, `taolie.managed` and the agent id included: the checks above turn
// away a careless one, but whoever can create containers can make one that passes them. Nor
// can adoption tell which labels of a container created by an older agent (one
// that wrote the price label only for priced rentals) came from the image. Adoption never
// makes up a price: "", absent, or anything but a finite number >= 0 means no price.
#include <optional>
#include <string>

#include "common/result.h"
#include "config/config.h"
#include "docker/docker_client.h"
#include "domain/deployment.h"

namespace taolie::engine {

// The price of a `taolie.price_per_hour` label: a finite number >= 0, the whole label; else none.
std::optional<double> PriceFromLabel(const std::string& label);

Result<domain::Deployment> DeploymentFromContainer(const docker::ContainerInfo& c,
                                                   const config::PortsConfig& ports);

}  // namespace taolie::engine
