#pragma once
// A deploy's host volumes, checked on the filesystem where it is admitted (issue 7, item 5):
// each host path is resolved by host::ResolveVolumeHostPath against the allowed roots and the
// paths no rental may reach, must not overlap a path a running rental binds, and is replaced
// by its canonical form, which is what the container binds.
#include <string>
#include <vector>

#include "common/result.h"
#include "config/config.h"
#include "docker/docker_client.h"
#include "domain/deployment.h"
#include "host/volume_guard.h"
#include "rules/deploy_spec.h"

namespace taolie::engine {

// The Docker sockets (the defaults and docker.host's), data_dir, the config file's directory
// and Docker's data root (`docker_root`, from VersionInfo.root_dir; "" = unknown, skipped).
std::vector<host::ProtectedPath> ProtectedHostPaths(const config::Config& cfg,
                                                    const std::string& docker_root);

// Resolves every host path of `spec->volumes` and rewrites it to its canonical form.
// `engine` is the engine's VersionInfo (its root_dir is protected; without it host volumes are
// refused); `active` are the deployments not ended (their spec_json names what they bind).
// InvalidArgument or FailedPrecondition with the reason when a volume is refused.
Status AdmitVolumes(const config::Config& cfg, const Result<docker::VersionInfo>& engine,
                    const std::vector<domain::Deployment>& active, rules::DeploySpec* spec);

}  // namespace taolie::engine
