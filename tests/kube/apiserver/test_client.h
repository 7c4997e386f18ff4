// What the test API server's own tests use to look at it from outside: a temp dir, a small
// HTTP/1.1 client written straight on sockets and OpenSSL (independent of the server's Beast
// code, so the two cannot share a framing bug), and kubectl as a child process.
#ifndef XLB_TESTS_KUBE_APISERVER_TEST_CLIENT_H
#define XLB_TESTS_KUBE_APISERVER_TEST_CLIENT_H

#include <chrono>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "tests/pkt/temp_dir.h"

namespace xlb::testing {

// A unique directory under /tmp, removed with everything in it when this goes away.
using TempDir = pkt::TempDir;

// One HTTP/1.1 connection to 127.0.0.1:port, TLS verified against `ca_pem` (empty: plain).
class RawHttpClient {
 public:
  struct Response {
    int status = 0;
    std::map<std::string, std::string> headers;  // lower-case names
    std::string body;
    nlohmann::json Json() const { return nlohmann::json::parse(body); }
  };
  // How a chunked stream ended.
  enum class End { kNone, kClean, kAbrupt, kTimeout };

  RawHttpClient(uint16_t port, const std::string& ca_pem);
  ~RawHttpClient();
  RawHttpClient(const RawHttpClient&) = delete;
  RawHttpClient& operator=(const RawHttpClient&) = delete;

  // A whole request and response (Content-Length or chunked). Throws on transport errors.
  Response Request(const std::string& method, const std::string& target, const std::string& token,
                   const std::string& body = "",
                   std::chrono::milliseconds timeout = std::chrono::seconds(10));

  // Starts a streaming GET (a watch): returns the status and headers; the body then comes
  // through NextEvent().
  Response StartStream(const std::string& target, const std::string& token,
                       std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // The next newline-terminated line of the chunked body, parsed as JSON; nullopt when the
  // stream ended (see end()) or nothing came within `timeout` (end() == kTimeout).
  std::optional<nlohmann::json> NextEvent(std::chrono::milliseconds timeout);
  End end() const { return end_; }
  // Sizes of the chunks received so far and how many of them ended mid-line / held more than
  // one line end.
  const std::vector<size_t>& chunk_sizes() const { return chunk_sizes_; }
  int chunks_split_line() const { return chunks_split_line_; }
  int chunks_with_several_lines() const { return chunks_with_several_lines_; }

 private:
  // Reads at least one byte into in_; false on EOF/error (end_ set) or timeout.
  bool Fill(std::chrono::steady_clock::time_point deadline);
  bool ReadLine(std::string& line, std::chrono::steady_clock::time_point deadline);
  bool ReadExact(size_t n, std::string& out, std::chrono::steady_clock::time_point deadline);
  Response ReadHead(std::chrono::steady_clock::time_point deadline);
  void Send(const std::string& bytes);

  int fd_ = -1;
  void* ssl_ctx_ = nullptr;  // SSL_CTX*
  void* ssl_ = nullptr;      // SSL*
  std::string in_;
  std::string body_;  // decoded chunk data not yet returned as lines
  End end_ = End::kNone;
  std::vector<size_t> chunk_sizes_;
  int chunks_split_line_ = 0;
  int chunks_with_several_lines_ = 0;
};

struct CommandResult {
  int exit_code = -1;  // -1: killed by the timeout
  std::string out, err;
};

// kubectl (XLB_KUBECTL) with --kubeconfig, --cache-dir and a HOME inside `dir`, nothing
// from the environment but PATH.
CommandResult RunKubectl(const TempDir& dir, const std::string& kubeconfig,
                         const std::vector<std::string>& args,
                         std::chrono::milliseconds timeout = std::chrono::seconds(30));

// The command line and environment RunKubectl uses.
std::vector<std::string> KubectlArgv(const TempDir& dir, const std::string& kubeconfig,
                                     const std::vector<std::string>& args);
std::vector<std::string> KubectlEnv(const TempDir& dir);

// A program running in the background (say `kubectl get --watch`): its stdout is read as it
// comes. argv[0] is a path; env is the whole environment.
class ChildProcess {
 public:
  ChildProcess(const std::vector<std::string>& argv, const std::vector<std::string>& env);
  ~ChildProcess();  // kills and reaps it
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  void Signal(int sig);

  // Reads stdout until `done(all stdout so far)` holds or the timeout passes.
  bool WaitForOutput(const std::function<bool(const std::string&)>& done,
                     std::chrono::milliseconds timeout);
  // Whether it exited within the timeout; its exit code then in exit_code().
  bool WaitForExit(std::chrono::milliseconds timeout);
  int exit_code() const { return exit_code_; }
  const std::string& out() const { return out_; }
  std::string err();

 private:
  void Drain(int timeout_ms);
  int pid_ = -1;
  int out_fd_ = -1, err_fd_ = -1;
  std::string out_, err_;
  int exit_code_ = -1;
};

class KubectlProcess : public ChildProcess {
 public:
  KubectlProcess(const TempDir& dir, const std::string& kubeconfig,
                 const std::vector<std::string>& args)
      : ChildProcess(KubectlArgv(dir, kubeconfig, args), KubectlEnv(dir)) {}
};

// The JSON documents of a concatenated stream (kubectl -o json --watch prints one per object).
std::vector<nlohmann::json> JsonDocuments(const std::string& text);

}  // namespace xlb::testing

#endif  // XLB_TESTS_KUBE_APISERVER_TEST_CLIENT_H
