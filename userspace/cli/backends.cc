// xlbctl backends: the backend entries, valid ones (or all with --all).
#include <arpa/inet.h>

#include <map>
#include <string>
#include <utility>

#include "userspace/cli/commands.h"
#include "userspace/cli/common.h"
#include "userspace/cli/format.h"

namespace xlb::cli {
namespace {

using BackendsResult = std::map<uint32_t, xlb_backend>;  // the ones shown, by id

Result<BackendsResult> ComputeBackends(const PinnedDatapath& dp, bool all) {
  XLB_ASSIGN_OR_RETURN(auto backends, dp.Backends());
  BackendsResult r;
  for (const auto& [id, b] : backends) {
    if ((b.flags & XLB_BE_F_VALID) || all) {
      r[id] = b;
    }
  }
  return r;
}

std::string BackendFlagsText(const xlb_backend& b) {
  std::string out = (b.flags & XLB_BE_F_VALID) ? "valid" : "invalid";
  if (b.flags & XLB_BE_F_TUNNEL) {
    out += ",tunnel";
  }
  return out;
}

json BackendsJson(const BackendsResult& r) {
  json list = json::array();
  for (const auto& [id, b] : r) {
    list.push_back(BackendJson(id, b));
  }
  return json{{"backends", list}};
}

void PrintBackends(const BackendsResult& r) {
  Table t({{"ID", Align::kRight}, {"ADDRESS"}, {"CLUSTER", Align::kRight}, {"PATH"}, {"FLAGS"}});
  for (const auto& [id, b] : r) {
    t.Add({N(id), HostPort(b.addr, b.family, ntohs(b.port)), N(b.cluster_id), BackendPath(b),
           BackendFlagsText(b)});
  }
  t.Print();
}

}  // namespace

int Backends(const InspectOptions& o) {
  return Show(
      o, [&](const PinnedDatapath& dp) { return ComputeBackends(dp, o.all); }, BackendsJson,
      PrintBackends);
}

}  // namespace xlb::cli
