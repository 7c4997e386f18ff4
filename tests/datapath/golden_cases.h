// The golden-packet scenarios, shared by the per-case tests and the tshark check: each
// step is an input frame built by the packet builder, the verdict and reason the datapath
// must give, and the exact frame it must emit (built from scratch by the same builder, so
// every checksum in it is computed, not updated).
#ifndef XLB_TESTS_DATAPATH_GOLDEN_CASES_H
#define XLB_TESTS_DATAPATH_GOLDEN_CASES_H

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "builder.h"
#include "lb_fixture.h"

namespace xlb::testing {

struct GoldenStep {
  std::string what;
  pkt::Bytes in;
  uint32_t verdict;           // XDP_PASS / XDP_DROP
  xlb_reason reason;          // the one counter this packet must bump
  std::optional<pkt::Bytes> out;  // expected frame; nullopt = unchanged
  // Runs before the packet (e.g. change the table to prove conntrack keeps the flow).
  std::function<void(XdpDatapath&, ServiceWriter&)> before;
};

struct GoldenCase {
  std::string name;
  std::vector<GoldenStep> steps;
};

// Installs the services every case relies on (see golden_cases.cc for the table).
void InstallGoldenServices(XdpDatapath& dp, ServiceWriter& writer);
std::vector<GoldenCase> GoldenCases();

}  // namespace xlb::testing

#endif  // XLB_TESTS_DATAPATH_GOLDEN_CASES_H
