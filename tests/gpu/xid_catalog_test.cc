// The XID classes (issue 8, item 2): DCGM's health severities, NVIDIA's remedies, and which
// XIDs a renter's own program causes.
#include "gpu/xid_catalog.h"

#include <gtest/gtest.h>

namespace taolie::gpu {
namespace {

TEST(XidCatalog, DcgmWarningsStayWarnings) {
  for (uint32_t xid : {63u, 94u, 92u, 60u, 61u, 38u}) {
    EXPECT_EQ(ClassifyXid(xid).severity, XidSeverity::kWarning) << xid;
  }
  EXPECT_EQ(ClassifyXid(94).action, XidAction::kRestartApp);
  EXPECT_FALSE(ClassifyXid(94).application) << "a contained ECC error is the GPU's memory";
  EXPECT_EQ(ClassifyXid(63).action, XidAction::kNone);
}

TEST(XidCatalog, FailuresNeedAResetOrAReboot) {
  // DCGM's always-checked failures, and NVIDIA's reset-GPU XIDs DCGM's watch does not list.
  for (uint32_t xid : {48u, 64u, 74u, 95u, 119u, 120u, 140u, 46u, 62u, 109u, 143u}) {
    const XidClass c = ClassifyXid(xid);
    EXPECT_EQ(c.severity, XidSeverity::kFailure) << xid;
    EXPECT_EQ(c.action, XidAction::kResetGpu) << xid;
    EXPECT_FALSE(c.application) << xid;
  }
  EXPECT_EQ(ClassifyXid(79).severity, XidSeverity::kFailure);
  EXPECT_EQ(ClassifyXid(79).action, XidAction::kRebootHost);
}

TEST(XidCatalog, ApplicationXidsAreTheRentersProgram) {
  for (uint32_t xid : {13u, 31u, 43u, 8u}) {
    const XidClass c = ClassifyXid(xid);
    EXPECT_TRUE(c.application) << xid;
    EXPECT_EQ(c.severity, XidSeverity::kWarning) << xid;
    EXPECT_EQ(c.action, XidAction::kRestartApp) << xid;
  }
}

TEST(XidCatalog, UnlistedXidsAreWarningsWithTheirNumber) {
  const XidClass c = ClassifyXid(9999);
  EXPECT_EQ(c.xid, 9999u);
  EXPECT_EQ(c.severity, XidSeverity::kWarning);
  EXPECT_EQ(c.action, XidAction::kNone);
  EXPECT_FALSE(c.application);
  EXPECT_EQ(c.name, "unlisted XID");
  EXPECT_EQ(ClassifyXid(0).name, "unlisted XID");
  EXPECT_EQ(ClassifyXid(79).name, "GPU has fallen off the bus");
}

TEST(XidCatalog, Names) {
  EXPECT_EQ(XidSeverityName(XidSeverity::kFailure), "failure");
  EXPECT_EQ(XidSeverityName(XidSeverity::kWarning), "warning");
  EXPECT_EQ(XidActionName(XidAction::kResetGpu), "reset_gpu");
  EXPECT_EQ(XidActionName(XidAction::kRebootHost), "reboot");
  EXPECT_EQ(XidActionName(XidAction::kRestartApp), "restart_app");
  EXPECT_EQ(XidActionName(XidAction::kNone), "none");
}

}  // namespace
}  // namespace taolie::gpu
