// xlb-test-apiserver: the test API server as a process, for demos and for trying kubectl by
// hand:
//   xlb-test-apiserver --port 6443 --kubeconfig-out /tmp/k --load objects.json &
//   kubectl --kubeconfig /tmp/k get endpointslices -A
// It prints the URL on stdout and serves until SIGINT/SIGTERM.
#include <charconv>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <string>

#include "tests/kube/apiserver/test_apiserver.h"

namespace {

// A whole-string integer in [min, max], or std::invalid_argument saying what is wrong.
int ParseInt(const std::string& flag, const std::string& text, int min, int max) {
  int value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < min || value > max) {
    throw std::invalid_argument(flag + ": expected a number from " + std::to_string(min) + " to " +
                                std::to_string(max) + ", got \"" + text + "\"");
  }
  return value;
}

int Usage(const char* argv0, const std::string& error) {
  if (!error.empty()) std::cerr << argv0 << ": " << error << "\n";
  std::cerr << "usage: " << argv0
            << " [--port N] [--token T]... [--kubeconfig-out PATH] [--load FILE.json]...\n"
               "       [--plain-http] [--random-chunks] [--bookmark-interval-ms N]\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  xlb::testing::ApiServerOptions options;
  options.tokens.clear();
  std::string kubeconfig;
  std::vector<std::string> loads;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(arg + " needs a value");
      return argv[++i];
    };
    try {
      if (arg == "--port") {
        options.port = static_cast<uint16_t>(ParseInt(arg, value(), 0, 65535));
      } else if (arg == "--token") {
        options.tokens.push_back(value());
      } else if (arg == "--kubeconfig-out") {
        kubeconfig = value();
      } else if (arg == "--load") {
        loads.push_back(value());
      } else if (arg == "--plain-http") {
        options.tls = false;
      } else if (arg == "--random-chunks") {
        options.random_chunks = true;
      } else if (arg == "--bookmark-interval-ms") {
        options.bookmark_interval_ms = ParseInt(arg, value(), 1, 3'600'000);
      } else if (arg == "--help" || arg == "-h") {
        return Usage(argv[0], "");
      } else {
        return Usage(argv[0], "unknown flag " + arg);
      }
    } catch (const std::exception& e) {
      return Usage(argv[0], e.what());
    }
  }
  if (options.tokens.empty()) options.tokens.push_back("test-token");

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);  // before any thread starts

  try {
    xlb::testing::TestApiServer server(options);
    for (const auto& file : loads) server.LoadFile(file);
    server.Start();
    if (!kubeconfig.empty()) server.WriteKubeconfig(kubeconfig, options.tokens.front());
    std::cout << server.url() << std::endl;
    int sig = 0;
    sigwait(&signals, &sig);
    server.Stop();
  } catch (const std::exception& e) {
    std::cerr << argv[0] << ": " << e.what() << "\n";
    return 1;
  }
  return 0;
}
